//! Counts and times every gRPC call for the metrics, by its final code.
//!
//! Each finished call is also one line of the access log (INFO, target `newsstore::access`,
//! off unless `--access-log`): method, code, time taken, request id and token name.
//!
//! A call's labels come from the served methods' descriptors, never from the path a caller
//! sent, so made-up paths all count as `unknown` and cannot add series.
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

use super::call_span::CallContext;
use super::{BoxFuture, Layer, Layered};
use crate::api::health::Findings;
use crate::metrics::Rpc;

/// The tower layer that counts calls, and tells the health monitor what their codes say
/// about the store.
pub type CallMetricsLayer = Layer<Arc<Findings>>;

impl CallMetricsLayer {
    pub fn new(findings: Arc<Findings>) -> Self {
        Layer(findings)
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Layered<S, Arc<Findings>>
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
        let rpc = rpc(request.uri().path());
        crate::metrics::call_started(rpc);
        let mut call = Call {
            rpc,
            context: CallContext::of(&request),
            started: Instant::now(),
            // The request span opened outside; the answer is logged in it.
            span: tracing::Span::current(),
            findings: self.shared.clone(),
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

/// The metrics labels of a call to `path`: those of a method this server serves, or
/// [`Rpc::UNKNOWN`] for anything else.
pub fn rpc(path: &str) -> Rpc {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    /// Path → (service, method, type).
    static SERVED: OnceLock<HashMap<String, (String, String, &'static str)>> = OnceLock::new();
    let served = SERVED.get_or_init(|| {
        use prost::Message;
        [
            crate::api::proto::FILE_DESCRIPTOR_SET,
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
                let service_name = format!("{package}.{}", service.name());
                service.method.into_iter().map(move |method| {
                    let kind = match (method.client_streaming(), method.server_streaming()) {
                        (false, false) => "unary",
                        (false, true) => "server_stream",
                        (true, false) => "client_stream",
                        (true, true) => "bidi_stream",
                    };
                    (
                        format!("/{service_name}/{}", method.name()),
                        (service_name.clone(), method.name().to_string(), kind),
                    )
                })
            })
        })
        .collect()
    });
    match served.get(path) {
        Some((service, method, kind)) => Rpc {
            service,
            method,
            kind,
        },
        None => Rpc::UNKNOWN,
    }
}

/// One call being answered, counted once when its final code is known.
struct Call {
    rpc: Rpc,
    context: Option<Arc<CallContext>>,
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
        crate::metrics::call_handled(self.rpc, status, seconds);
        self.findings.answered(status);
        let _entered = self.span.enter();
        let (token, request_id) = CallContext::log_fields(self.context.as_deref());
        tracing::info!(
            target: "newsstore::access",
            service = self.rpc.service,
            method = self.rpc.method,
            grpc_code = crate::metrics::code_name(status),
            elapsed_ms = (seconds * 1e4).round() / 10.0,
            request_id,
            token,
            "call answered"
        );
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
    use super::{Rpc, rpc};

    #[test]
    fn only_served_methods_get_labels_of_their_own() {
        assert_eq!(
            rpc("/newsstore.v1.ArticleService/CreateArticle"),
            Rpc {
                service: "newsstore.v1.ArticleService",
                method: "CreateArticle",
                kind: "unary"
            }
        );
        assert_eq!(
            rpc("/newsstore.v1.ChangeService/WatchChanges").kind,
            "server_stream"
        );
        assert_eq!(rpc("/grpc.health.v1.Health/Check").kind, "unary");
        assert_eq!(
            rpc("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo").kind,
            "bidi_stream"
        );
        assert_eq!(
            rpc("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo").service,
            "grpc.reflection.v1alpha.ServerReflection"
        );
        for path in [
            "/made.up/Thing",
            "/newsstore.v1.ArticleService/Nope",
            "/",
            "",
        ] {
            assert_eq!(rpc(path), Rpc::UNKNOWN, "{path:?}");
        }
    }
}
