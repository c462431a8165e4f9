//! Counts and times every gRPC call for the metrics, by its final code.
//!
//! An error before any message comes in the response headers ("trailers-only"); otherwise
//! the code comes in the trailers after the last message, so a stream is counted, and timed,
//! when it ends, and a unary call when its answer has gone out. A body dropped before its
//! trailers is a caller that hung up: CANCELLED. The layer sits inside the gRPC-Web
//! translation, where trailers are real HTTP trailers for both kinds of caller; calls shed
//! before they get here are counted by the shedding layer.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};

use super::BoxFuture;
use super::health::Findings;

/// The tower layer that counts calls, and tells the health monitor what their codes say
/// about the store.
#[derive(Debug, Clone, Default)]
pub struct CallMetricsLayer {
    findings: Arc<Findings>,
}

impl CallMetricsLayer {
    pub fn new(findings: Arc<Findings>) -> Self {
        CallMetricsLayer { findings }
    }
}

impl<S> tower::Layer<S> for CallMetricsLayer {
    type Service = CallMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallMetrics {
            inner,
            findings: self.findings.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CallMetrics<S> {
    inner: S,
    findings: Arc<Findings>,
}

impl<S, B, R> tower::Service<http::Request<B>> for CallMetrics<S>
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
        let mut call = Call {
            method: method_label(request.uri().path()).to_string(),
            started: Instant::now(),
            // The request span opened outside; the answer is logged in it.
            span: tracing::Span::current(),
            findings: self.findings.clone(),
            done: false,
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = match future.await {
                Ok(response) => response,
                Err(err) => {
                    call.finish("13");
                    return Err(err);
                }
            };
            if let Some(status) = grpc_status(response.headers()) {
                call.finish(status);
            }
            Ok(response.map(|body| Observed { body, call }))
        })
    }
}

/// The metrics label for a call to `path`: the path of a method this server serves, or
/// `unknown` for anything else, so that callers cannot add series by making paths up.
fn method_label(path: &str) -> &str {
    use std::collections::HashSet;
    use std::sync::OnceLock;
    static SERVED: OnceLock<HashSet<String>> = OnceLock::new();
    let served = SERVED.get_or_init(|| {
        use prost::Message;
        [
            super::proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ]
        .into_iter()
        .filter_map(|bytes| prost_types::FileDescriptorSet::decode(bytes).ok())
        .flat_map(|set| set.file)
        .flat_map(|file| {
            let package = file.package().to_string();
            file.service.into_iter().flat_map(move |service| {
                let prefix = format!("/{package}.{}/", service.name());
                service
                    .method
                    .into_iter()
                    .map(move |method| format!("{prefix}{}", method.name()))
            })
        })
        .collect()
    });
    if served.contains(path) {
        path
    } else {
        "unknown"
    }
}

/// One call being answered, counted once when its final code is known.
struct Call {
    method: String,
    started: Instant,
    span: tracing::Span,
    findings: Arc<Findings>,
    done: bool,
}

impl Call {
    fn finish(&mut self, status: &str) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        crate::metrics::record_call(&self.method, status, seconds);
        self.findings.answered(status);
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
            // Not a gRPC answer (no code in headers or trailers): nothing went wrong.
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

#[cfg(test)]
mod tests {
    use super::method_label;

    #[test]
    fn only_served_methods_get_a_label_of_their_own() {
        for path in [
            "/newsstore.v1.ArticleService/CreateArticle",
            "/newsstore.v1.ChangeService/WatchChanges",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(method_label(path), path);
        }
        for path in [
            "/made.up/Thing",
            "/newsstore.v1.ArticleService/Nope",
            "/",
            "",
        ] {
            assert_eq!(method_label(path), "unknown", "{path:?}");
        }
    }
}
