//! A small request-size limit for read calls.
//!
//! `--max-message-bytes` (16 MiB by default) is sized for writes: a batch of articles. A
//! read request is a few ids and a query, yet tonic decodes whatever size the limit lets in
//! before any handler looks at it, and repeated fields decode into one allocation per item
//! (8 M empty `read_mask` paths from one 16 MiB SearchArticles took 400 MB). Calls whose
//! method needs only the read scope therefore get [`READ_MESSAGE_BYTES`]: their request
//! body is cut off past it with RESOURCE_EXHAUSTED, reason `MESSAGE_TOO_LARGE`, the same
//! answer as a write over the server's limit.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

use super::auth::{Scope, required_scope};
use super::{Layer, Layered};

/// The largest request a read call takes, gRPC framing included.
pub const READ_MESSAGE_BYTES: usize = 1024 * 1024;

/// The tower layer that limits read calls' request bodies.
pub type ReadLimitLayer = Layer<ReadLimit>;

/// The read limit's name; its calls share nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadLimit;

impl<S, B> tower::Service<http::Request<B>> for Layered<S, ReadLimit>
where
    S: tower::Service<http::Request<tonic::body::Body>>,
    B: Body<Data = hyper::body::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let read = required_scope(request.uri().path()) == Some(Scope::Read);
        self.inner.call(request.map(|body| {
            if read {
                tonic::body::Body::new(Limited {
                    body,
                    left: READ_MESSAGE_BYTES,
                })
            } else {
                tonic::body::Body::new(body)
            }
        }))
    }
}

pin_project_lite::pin_project! {
    /// A request body that fails once more than `left` bytes have come.
    struct Limited<B> {
        #[pin]
        body: B,
        left: usize,
    }
}

impl<B> Body for Limited<B>
where
    B: Body<Data = hyper::body::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = hyper::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        match this.body.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if data.len() > *this.left {
                        // tonic passes a Status found in a body error on to the caller.
                        return Poll::Ready(Some(Err(Box::new(super::wire_errors::too_large(
                            format!(
                                "a read request is at most {} KiB; this one is larger (send \
                                 fewer ids or a shorter query)",
                                READ_MESSAGE_BYTES / 1024
                            ),
                        )))));
                    }
                    *this.left -= data.len();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
