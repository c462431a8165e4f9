//! The audit trail: one INFO line in the `newsstore::audit` target for every call that
//! changed something (or took a backup), saying who (the token's name), what (the method and
//! the ids it touched), when (the line's time) and which request (its `x-request-id`), so a
//! purge, merge or block can be traced to the caller that made it.
//!
//! Handlers take an [`Audit`] from the request before consuming it and record once the
//! change is durable; a refused or failed call writes no audit line (the access log, target
//! `newsstore::access`, has every call).

use std::fmt::Display;
use std::sync::Arc;

use super::layers::call_span::CallContext;

/// How many ids one audit line lists before it says how many more there were.
const MAX_IDS: usize = 100;

/// The audit record of one call, written by [`Audit::record`].
pub struct Audit {
    method: &'static str,
    context: Option<Arc<CallContext>>,
}

impl Audit {
    pub fn of<T>(request: &tonic::Request<T>, method: &'static str) -> Audit {
        Audit {
            method,
            context: CallContext::of_call(request),
        }
    }

    /// The change is made: `resource` says what it touched ("article geneva-talks
    /// revision 3").
    pub fn record(&self, resource: impl Display) {
        let (token, request_id) = CallContext::log_fields(self.context.as_deref());
        tracing::info!(
            target: "newsstore::audit",
            token,
            method = self.method,
            request_id,
            "{token} {} {resource}",
            self.method
        );
    }
}

/// `ids` for an audit line: all of them up to [`MAX_IDS`], then how many more.
pub fn ids<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = ids.len();
    let mut text: Vec<&str> = ids.take(MAX_IDS).collect();
    let more = total - text.len();
    let more = (more > 0).then(|| format!("and {more} more"));
    if let Some(more) = &more {
        text.push(more);
    }
    text.join(", ")
}
