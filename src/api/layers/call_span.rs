//! A trace id and a tracing span around every call, so each log line of a call can be
//! found together.
//!
//! The trace id travels in the `x-request-id` header and is logged as `request_id`: it is
//! not the AIP-155 `request_id` field of mutating requests, which makes retries idempotent
//! (`api/idempotency.rs`). It is the caller's `x-request-id` when it sends a sane one (so a
//! call can be followed across services), otherwise a new UUIDv7; it is echoed in the
//! response's `x-request-id`. Everything the call logs in its task carries the span's `method` and
//! `request_id` fields (in both the text and the JSON log formats). It is the outermost
//! layer, so a call refused by any layer inside it still has its id.
//!
//! It also puts a [`CallContext`] in the request's extensions: the trace id and, once the
//! auth layer has checked it, the token's name, for the access log and the audit trail.

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tracing::Instrument;

use super::{BoxFuture, Layer, Layered};

const HEADER: &str = "x-request-id";

/// The span's target: the module's path before it was named for the call, kept because
/// `RUST_LOG` filters name it (tests/server/logs.rs keeps only these spans).
const SPAN_TARGET: &str = "newsstore::api::request_span";

/// Who is calling, as far as the layers know: shared by the layers and the handlers of
/// one call through the request's extensions.
#[derive(Debug)]
pub struct CallContext {
    /// The call's `x-request-id`.
    pub trace_id: String,
    token: OnceLock<String>,
}

impl CallContext {
    /// The name of the token the call was admitted with; `None` when none was needed.
    pub fn token(&self) -> Option<&str> {
        self.token.get().map(String::as_str)
    }

    pub fn set_token(&self, name: &str) {
        let _ = self.token.set(name.to_string());
    }

    /// The context of a request that passed through this layer.
    pub fn of<B>(request: &http::Request<B>) -> Option<Arc<CallContext>> {
        request.extensions().get::<Arc<CallContext>>().cloned()
    }

    /// The same, as a service handler sees the request.
    pub fn of_call<T>(request: &tonic::Request<T>) -> Option<Arc<CallContext>> {
        request.extensions().get::<Arc<CallContext>>().cloned()
    }

    /// (token name, trace id) for a log line, `-` for what is not known.
    pub fn log_fields(context: Option<&CallContext>) -> (&str, &str) {
        match context {
            Some(context) => (context.token().unwrap_or("-"), context.trace_id.as_str()),
            None => ("-", "-"),
        }
    }
}

/// The tower layer that opens the span.
pub type CallSpanLayer = Layer<CallSpan>;

/// The call span's name; its calls share nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallSpan;

/// The caller's id when it is short printable ASCII (it goes into logs), else a new one.
fn trace_id<B>(request: &http::Request<B>) -> String {
    request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_string)
}

impl<S, B, R> tower::Service<http::Request<B>> for Layered<S, CallSpan>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let id = trace_id(&request);
        request.extensions_mut().insert(Arc::new(CallContext {
            trace_id: id.clone(),
            token: OnceLock::new(),
        }));
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "rpc",
            method = %request.uri().path(),
            request_id = %id
        );
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let mut response = future.await?;
                if let Ok(value) = http::HeaderValue::from_str(&id) {
                    response.headers_mut().insert(HEADER, value);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}
