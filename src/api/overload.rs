//! Load shedding: past a number of calls in flight, new calls are refused at once with
//! RESOURCE_EXHAUSTED instead of queueing without bound.
//!
//! Queued calls only add latency until every caller times out; refusing early lets clients
//! back off and retry, keeps memory bounded and keeps the server answering. Health checks
//! are never shed, so a load balancer sees a busy server as alive. A streaming call counts
//! until its response starts, so open change feeds do not hold slots.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tonic::Status;

use super::BoxFuture;
use crate::error::Error;

/// The delay a shed call's `google.rpc.RetryInfo` suggests: long enough for calls in flight
/// to finish (most take milliseconds), short enough not to idle a client; clients add
/// their own backoff and jitter on top.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// The tower layer; `max_in_flight` 0 turns shedding off.
#[derive(Debug, Clone)]
pub struct ShedLayer {
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
}

impl ShedLayer {
    pub fn new(max_in_flight: usize) -> ShedLayer {
        ShedLayer {
            in_flight: Arc::default(),
            max_in_flight,
        }
    }
}

impl<S> tower::Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            inner,
            in_flight: self.in_flight.clone(),
            max_in_flight: self.max_in_flight,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Shed<S> {
    inner: S,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
}

/// Gives the slot back when the call's response has started (or the call was dropped).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Shed<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let exempt = self.max_in_flight == 0 || request.uri().path().starts_with("/grpc.health.");
        if exempt {
            return Box::pin(self.inner.call(request));
        }
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.in_flight.clone());
        if before >= self.max_in_flight {
            drop(slot);
            crate::metrics::call_shed(super::call_metrics::rpc(request.uri().path()));
            let status = Status::from(Error::Overloaded {
                message: format!(
                    "the server is at its limit of {} calls in flight; retry with backoff",
                    self.max_in_flight
                ),
                retry_after: RETRY_AFTER,
            });
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            drop(slot);
            response
        })
    }
}
