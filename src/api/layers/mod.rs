//! The tower layers in front of the services, outermost first as `app.rs` stacks them:
//! `call_span.rs` (the call's tracing span and trace id, and the `CallContext` the later
//! layers and the handlers share), `overload.rs` (load shedding by calls in flight),
//! `call_metrics.rs` (counts, times and the access log, inside the gRPC-Web translation),
//! `wire_errors.rs` (tonic's own request errors given our codes), `auth.rs` (bearer tokens
//! and the scope each method needs), `read_limit.rs` (a small request limit for read
//! calls) and `consistency.rs` (the consistency token: the position each answer carries, and
//! the wait for the one a call asks for). They see HTTP requests and responses, never a decoded message.

pub mod auth;
pub mod call_metrics;
pub mod call_span;
pub mod consistency;
pub mod overload;
pub mod read_limit;
pub mod wire_errors;

/// The future type of the layers' services.
type BoxFuture<T, E> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send>>;

/// A tower layer made of what its calls share (`shared`: configuration, counters, or only
/// a name for a layer that needs neither). Every layer here has this one shape, so each
/// file writes only its `tower::Service` for [`Layered`] with its own shared type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layer<T>(T);

impl<S, T: Clone> tower::Layer<S> for Layer<T> {
    type Service = Layered<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Layered {
            inner,
            shared: self.0.clone(),
        }
    }
}

/// The service a [`Layer`] puts in front of `inner`.
#[derive(Debug, Clone)]
pub struct Layered<S, T> {
    inner: S,
    shared: T,
}
