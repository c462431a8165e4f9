//! A request id and a tracing span around every call, so each log line of a request can be
//! found together.
//!
//! The id is the caller's `x-request-id` when it sends a sane one (so a request can be
//! followed across services), otherwise a new UUIDv7; it is echoed in the response's
//! `x-request-id`. Everything the call logs in its task carries the span's `method` and
//! `request_id` fields (in both the text and the JSON log formats). It also counts and times
//! the call for the metrics by its final gRPC code: an error before any message is in the
//! response headers ("trailers-only"); otherwise the code comes in the trailers after the
//! last message, so a stream is counted, and timed, when it ends. A stream the caller hangs
//! up on counts as CANCELLED.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};

use tracing::Instrument;

use super::BoxFuture;

const HEADER: &str = "x-request-id";

/// The tower layer that opens the span.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpanLayer;

impl<S> tower::Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSpan { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RequestSpan<S> {
    inner: S,
}

/// The caller's id when it is short printable ASCII (it goes into logs), else a new one.
fn request_id<B>(request: &http::Request<B>) -> String {
    request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_string)
}

impl<S, B, R> tower::Service<http::Request<B>> for RequestSpan<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Observed<R>>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let id = request_id(&request);
        let method = request.uri().path().to_string();
        let span = tracing::info_span!("rpc", method = %method, request_id = %id);
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        let mut call = Call {
            method,
            started: Instant::now(),
            span: span.clone(),
            done: false,
        };
        Box::pin(
            async move {
                let mut response = future.await?;
                if let Ok(value) = http::HeaderValue::from_str(&id) {
                    response.headers_mut().insert(HEADER, value);
                }
                if let Some(status) = grpc_status(response.headers()) {
                    call.finish(status);
                }
                Ok(response.map(|body| Observed { body, call }))
            }
            .instrument(span),
        )
    }
}

/// One call being answered, counted once when its final code is known.
struct Call {
    method: String,
    started: Instant,
    span: tracing::Span,
    done: bool,
}

impl Call {
    fn finish(&mut self, status: &str) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        crate::metrics::record_call(&self.method, status, seconds);
        let _entered = self.span.enter();
        tracing::debug!(grpc_status = %status, elapsed_ms = seconds * 1e3, "call answered");
    }
}

impl Drop for Call {
    /// A body dropped before its trailers: the caller hung up, or the connection broke.
    fn drop(&mut self) {
        self.finish("1");
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<&str> {
    headers.get("grpc-status").and_then(|v| v.to_str().ok())
}

pin_project_lite::pin_project! {
    /// A response body that reports the call's final code when the trailers go out.
    pub struct Observed<R> {
        #[pin]
        body: R,
        call: Call,
    }
}

impl<R: Body> Body for Observed<R> {
    type Data = R::Data;
    type Error = R::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(status) = frame.trailers_ref().and_then(grpc_status) {
                    this.call.finish(status);
                }
            }
            // A body that ends without a code (gRPC-Web, plain HTTP) answered normally.
            Poll::Ready(None) => this.call.finish("0"),
            Poll::Ready(Some(Err(_))) => this.call.finish("13"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
