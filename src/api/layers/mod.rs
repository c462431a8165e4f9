//! The tower layers in front of the services, outermost first as `app.rs` stacks them:
//! `call_span.rs` (the call's tracing span and trace id, and the `CallContext` the later
//! layers and the handlers share), `overload.rs` (load shedding by calls in flight),
//! `call_metrics.rs` (counts, times and the access log, inside the gRPC-Web translation),
//! `wire_errors.rs` (tonic's own request errors given our codes), `auth.rs` (bearer tokens
//! and the scope each method needs) and `read_limit.rs` (a small request limit for read
//! calls). They see HTTP requests and responses, never a decoded message.

pub mod auth;
pub mod call_metrics;
pub mod call_span;
pub mod overload;
pub mod read_limit;
pub mod wire_errors;

/// The future type of the layers' services.
type BoxFuture<T, E> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send>>;
