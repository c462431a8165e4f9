//! The one mapping from domain errors to gRPC statuses.
//!
//! Every status carries a `google.rpc.ErrorInfo` with a stable reason (see
//! [`Error::reason`]) in the `newsstore.v1` domain; invalid arguments add a
//! `google.rpc.BadRequest` naming the field. Internal failures are logged here in full and
//! reported to the caller without internals.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{Denied, Error, Precondition};

/// The ErrorInfo domain of every error this service returns.
pub const ERROR_DOMAIN: &str = "newsstore.v1";

/// The gRPC code for an error. Exhaustive on purpose: a new variant must choose one.
pub fn code(error: &Error) -> Code {
    match error {
        Error::InvalidArgument { .. } => Code::InvalidArgument,
        Error::NotFound { .. } | Error::RevisionNotFound { .. } => Code::NotFound,
        Error::OutOfRange { .. } => Code::OutOfRange,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        // AIP-154: a failed etag precondition is ABORTED, so clients re-read and retry.
        Error::EtagMismatch { .. } => Code::Aborted,
        Error::ResourceExhausted(_)
        | Error::StorageFull(_)
        | Error::Overloaded { .. }
        | Error::ReaderTooSlow { .. } => Code::ResourceExhausted,
        Error::Denied {
            why: Denied::TokenMissing | Denied::TokenInvalid,
            ..
        } => Code::Unauthenticated,
        Error::Denied {
            why: Denied::ScopeInsufficient { .. },
            ..
        } => Code::PermissionDenied,
        Error::FailedPrecondition { .. } => Code::FailedPrecondition,
        Error::Conflict(_) => Code::Aborted,
        // The write itself succeeded; only its visibility in search is late.
        Error::IndexLagging(_)
        | Error::ShuttingDown { .. }
        | Error::LogUnavailable(_)
        | Error::NotCaughtUp(_) => Code::Unavailable,
        Error::DataLoss(_) => Code::DataLoss,
        Error::Internal(_) => Code::Internal,
    }
}

/// The longest message a status carries, in bytes: gRPC metadata limits are often 8 KiB.
const MAX_MESSAGE_BYTES: usize = 1024;

/// `message`, cut to [`MAX_MESSAGE_BYTES`] at a character boundary.
fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES - 3;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// The message a caller sees.
pub fn message(error: &Error) -> String {
    match error {
        Error::Internal(detail) => {
            tracing::error!(error = %detail, "internal error");
            "internal error; the server log has the details".to_string()
        }
        Error::DataLoss(detail) => {
            crate::metrics::data_loss_met();
            if first_report(detail) {
                tracing::error!(error = %detail, "damaged data met");
            }
            detail.clone()
        }
        other => other.to_string(),
    }
}

/// Whether the damage `detail` describes is reported for the first time: it is logged once
/// per place (sled names the file offset; every record of a damaged page shares it), not
/// once per read or per record. Past a bound, every report counts as first, so the log
/// never goes quiet about new damage.
fn first_report(detail: &str) -> bool {
    let place = detail
        .split(crate::error::RECORD_SUFFIX)
        .next()
        .unwrap_or(detail);
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if seen.len() >= 1_000 {
        return true;
    }
    seen.insert(place.to_string())
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        let mut details = ErrorDetails::new();
        let mut metadata = HashMap::new();
        match &error {
            Error::InvalidArgument { field, message, .. } => {
                details.add_bad_request_violation(
                    crate::error::shortened(field),
                    bounded(message.clone()),
                );
                metadata.insert("field".to_string(), field.clone());
            }
            Error::NotFound { resource, id } | Error::AlreadyExists { resource, id } => {
                metadata.insert("resource".to_string(), resource.to_string());
                metadata.insert("id".to_string(), id.clone());
            }
            Error::RevisionNotFound { id, revision, .. } => {
                metadata.insert("id".to_string(), id.clone());
                metadata.insert("revision".to_string(), revision.to_string());
            }
            Error::OutOfRange { oldest, .. } => {
                metadata.insert("oldest_sequence".to_string(), oldest.to_string());
            }
            Error::EtagMismatch { id, current, .. } => {
                metadata.insert("id".to_string(), id.clone());
                metadata.insert("current_etag".to_string(), current.clone());
            }
            Error::FailedPrecondition { reason, .. } => match reason {
                Precondition::EntityBlocked { entity_id } => {
                    metadata.insert("entity_id".to_string(), entity_id.clone());
                }
                Precondition::EntityMerged {
                    entity_id,
                    survivor_id,
                } => {
                    metadata.insert("entity_id".to_string(), entity_id.clone());
                    metadata.insert("survivor_id".to_string(), survivor_id.clone());
                }
                Precondition::ArticleDeleted { article_id } => {
                    metadata.insert("id".to_string(), article_id.clone());
                }
            },
            Error::Denied { why, .. } => {
                if let Denied::ScopeInsufficient { needed, held } = why {
                    metadata.insert("scope_needed".to_string(), needed.to_string());
                    metadata.insert("scope_held".to_string(), held.to_string());
                }
            }
            Error::Overloaded { retry_after, .. } => {
                details.set_retry_info(Some(*retry_after));
            }
            Error::ReaderTooSlow { resume_after, .. }
            | Error::ShuttingDown {
                resume_after: Some(resume_after),
                ..
            } => {
                metadata.insert(
                    "resume_after_sequence".to_string(),
                    resume_after.to_string(),
                );
            }
            Error::ResourceExhausted(_)
            | Error::Conflict(_)
            | Error::IndexLagging(_)
            | Error::LogUnavailable(_)
            | Error::NotCaughtUp(_)
            | Error::ShuttingDown {
                resume_after: None, ..
            }
            | Error::StorageFull(_)
            | Error::DataLoss(_)
            | Error::Internal(_) => {}
        }
        // Whatever a caller sent, what comes back stays small.
        for value in metadata.values_mut() {
            *value = crate::error::shortened(value);
        }
        details.set_error_info(error.reason(), ERROR_DOMAIN, metadata);
        Status::with_error_details(code(&error), bounded(message(&error)), details)
    }
}

/// Every (code, reason) pair the server answers with: one error of each kind, and the
/// request errors `wire_errors` gives our codes. docs/api.md's errors table is checked
/// against it (tests/server/docs.rs); a new `Error` variant or kind belongs here too.
pub fn every_code_and_reason() -> Vec<(Code, &'static str)> {
    use crate::error::{Denied, Invalid, Precondition, Resource};
    let text = String::new;
    let mut errors = vec![
        Error::NotFound {
            resource: Resource::Article,
            id: text(),
        },
        Error::NotFound {
            resource: Resource::Entity,
            id: text(),
        },
        Error::RevisionNotFound {
            id: text(),
            revision: 1,
            why: "",
        },
        Error::OutOfRange {
            message: text(),
            oldest: 1,
        },
        Error::AlreadyExists {
            resource: Resource::Article,
            id: text(),
        },
        Error::AlreadyExists {
            resource: Resource::Entity,
            id: text(),
        },
        Error::EtagMismatch {
            id: text(),
            current: text(),
            given: text(),
        },
        Error::ResourceExhausted(text()),
        Error::Conflict(text()),
        Error::IndexLagging(text()),
        Error::LogUnavailable(text()),
        Error::NotCaughtUp(text()),
        Error::ShuttingDown {
            message: text(),
            resume_after: None,
        },
        Error::StorageFull(text()),
        Error::DataLoss(text()),
        Error::Internal(text()),
        Error::Overloaded {
            message: text(),
            retry_after: std::time::Duration::ZERO,
        },
        Error::ReaderTooSlow {
            message: text(),
            resume_after: 0,
        },
    ];
    for kind in [
        Invalid::Missing,
        Invalid::TooLarge,
        Invalid::Malformed,
        Invalid::OutOfRange,
        Invalid::PageToken,
        Invalid::PageTokenExpired,
        Invalid::UpdateMask,
        Invalid::Query,
        Invalid::RequestIdReused,
    ] {
        errors.push(Error::invalid("field", kind, ""));
    }
    for reason in [
        Precondition::EntityBlocked { entity_id: text() },
        Precondition::EntityMerged {
            entity_id: text(),
            survivor_id: text(),
        },
        Precondition::ArticleDeleted { article_id: text() },
    ] {
        errors.push(Error::FailedPrecondition {
            reason,
            message: text(),
        });
    }
    for why in [
        Denied::TokenMissing,
        Denied::TokenInvalid,
        Denied::ScopeInsufficient {
            needed: "",
            held: "",
        },
    ] {
        errors.push(Error::Denied {
            why,
            message: text(),
        });
    }
    let mut pairs: Vec<(Code, &'static str)> =
        errors.iter().map(|e| (code(e), e.reason())).collect();
    pairs.extend(super::layers::wire_errors::REASONS);
    pairs.sort_by_key(|&(code, reason)| (code as i32, reason));
    pairs.dedup();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Invalid, Resource};

    #[test]
    fn statuses_carry_code_reason_and_field() {
        let status = Status::from(Error::invalid(
            "article.headline",
            Invalid::Missing,
            "needed",
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        assert_eq!(
            details.error_info().map(|i| i.reason.as_str()),
            Some("REQUIRED_FIELD_MISSING")
        );
        let violation = &details.bad_request().unwrap().field_violations[0];
        assert_eq!(violation.field, "article.headline");

        let status = Status::from(Error::NotFound {
            resource: Resource::Article,
            id: "x".into(),
        });
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "article \"x\" not found");
    }

    #[test]
    fn internal_details_stay_in_the_log() {
        let status = Status::from(Error::Internal("sled: io error at /secret/path".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("/secret/path"));
    }
}
