//! Load shedding: past a number of calls in flight, new calls are refused at once with
//! RESOURCE_EXHAUSTED instead of queueing without bound.
//!
//! Queued calls only add latency until every caller times out; refusing early lets clients
//! back off and retry, keeps memory bounded and keeps the server answering. Health checks
//! are never shed, so a load balancer sees a busy server as alive. A call holds its slot
//! until its response body is finished or dropped, so an open change feed counts for as
//! long as it is open: streams cannot pile up past the limit either (each holds a task and
//! a buffer).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tonic::Status;

use super::{BoxFuture, Layer, Layered};
use crate::error::Error;

/// The delay a shed call's `google.rpc.RetryInfo` suggests: long enough for calls in flight
/// to finish (most take milliseconds), short enough not to idle a client; clients add
/// their own backoff and jitter on top.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// The tower layer; `max_in_flight` 0 turns shedding off.
pub type ShedLayer = Layer<Shedding>;

impl ShedLayer {
    pub fn new(max_in_flight: usize) -> ShedLayer {
        Layer(Shedding {
            in_flight: Arc::default(),
            max_in_flight,
        })
    }
}

/// The count every call of the server shares, and its limit.
#[derive(Debug, Clone)]
pub struct Shedding {
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
}

/// Gives the slot back when the call's response is over (or the call was dropped).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Layered<S, Shedding>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<Held<R>>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let exempt =
            self.shared.max_in_flight == 0 || request.uri().path().starts_with("/grpc.health.");
        if exempt {
            let future = self.inner.call(request);
            return Box::pin(
                async move { Ok(future.await?.map(|body| Held { body, slot: None })) },
            );
        }
        let before = self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.shared.in_flight.clone());
        if before >= self.shared.max_in_flight {
            drop(slot);
            crate::metrics::call_shed(super::call_metrics::rpc(request.uri().path()));
            let status = Status::from(Error::Overloaded {
                message: format!(
                    "the server is at its limit of {} calls in flight; retry with backoff",
                    self.shared.max_in_flight
                ),
                retry_after: RETRY_AFTER,
            });
            return Box::pin(async move {
                Ok(status
                    .into_http::<R>()
                    .map(|body| Held { body, slot: None }))
            });
        }
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|body| Held {
                body,
                slot: Some(slot),
            }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds its call's slot until it is dropped.
    pub struct Held<R> {
        #[pin]
        body: R,
        slot: Option<Slot>,
    }
}

impl<R: http_body::Body> http_body::Body for Held<R> {
    type Data = R::Data;
    type Error = R::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        // The end of the body is the end of the call: the slot is free from here.
        if let Poll::Ready(None) = polled {
            this.slot.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
