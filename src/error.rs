//! The one error type of the domain.
//!
//! Every layer returns [`Error`]; the API maps it to a gRPC status in exactly one place
//! (`api::status`). Each variant says what a caller can do about it, and [`Error::reason`]
//! gives the stable machine-readable code that goes into `google.rpc.ErrorInfo`.

use std::fmt;

/// What sort of resource an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Article,
    Entity,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Article => "article",
            Resource::Entity => "entity",
        })
    }
}

/// Why an argument was refused; each becomes an ErrorInfo reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// A required field is empty.
    Missing,
    /// A field is longer or larger than the configured limit.
    TooLarge,
    /// A field's value is not of the accepted form.
    Malformed,
    /// A number is outside the accepted range.
    OutOfRange,
    /// A page token is not one this server issued for this request.
    PageToken,
    /// A page token's search snapshot is no longer kept.
    PageTokenExpired,
    /// An `update_mask` names a field that cannot be updated.
    UpdateMask,
    /// A search query cannot be parsed.
    Query,
    /// A request id was already used for a different request.
    RequestIdReused,
}

/// Which state stood in the way, and of what; each becomes an ErrorInfo reason, and the ids
/// go into its metadata so a client can act without parsing the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// The entity is blocked.
    EntityBlocked { entity_id: String },
    /// The entity was merged into another one, which stands for it now.
    EntityMerged {
        entity_id: String,
        survivor_id: String,
    },
    /// The article is deleted (its history remains).
    ArticleDeleted { article_id: String },
}

/// Why a call was not let in (UNAUTHENTICATED or PERMISSION_DENIED).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No bearer token where one is needed.
    TokenMissing,
    /// A token the server does not know.
    TokenInvalid,
    /// A known token whose scope does not cover the method.
    ScopeInsufficient {
        needed: &'static str,
        held: &'static str,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        field: String,
        kind: Invalid,
        message: String,
    },

    #[error("{resource} {} not found", quoted(id))]
    NotFound { resource: Resource, id: String },

    #[error("revision {revision} of article {} {why}", quoted(id))]
    RevisionNotFound {
        id: String,
        revision: u64,
        why: &'static str,
    },

    /// A position before the oldest one kept (a compacted change log).
    #[error("{message}")]
    OutOfRange { message: String, oldest: u64 },

    #[error("{resource} {} already exists", quoted(id))]
    AlreadyExists { resource: Resource, id: String },

    #[error(
        "article {} has changed since it was read: its etag is now {current}, the request \
         carried {}; read it again and retry",
        quoted(id),
        shortened(given)
    )]
    EtagMismatch {
        id: String,
        current: String,
        given: String,
    },

    #[error("{0}")]
    ResourceExhausted(String),

    /// The resource is in a state that does not allow the operation (merging a blocked
    /// entity, for example); the caller must change that state first.
    #[error("{message}")]
    FailedPrecondition {
        reason: Precondition,
        message: String,
    },

    /// The caller is not let in: no token, an unknown one, or too small a scope.
    #[error("{message}")]
    Denied { why: Denied, message: String },

    /// Shed before any work: the server is at its limit of calls in flight. Retrying after
    /// `retry_after` (with backoff) is expected to succeed.
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after: std::time::Duration,
    },

    /// A change stream the caller did not read for too long was ended; it resumes after
    /// `resume_after`.
    #[error("{message}")]
    ReaderTooSlow { message: String, resume_after: u64 },

    /// Concurrent writers kept invalidating this one's precondition.
    #[error("{0}")]
    Conflict(String),

    /// The write succeeded but the search index has not caught up in time.
    #[error("{0}")]
    IndexLagging(String),

    /// The server is stopping; the call may be retried against it once it is back (a change
    /// stream from just after `resume_after`).
    #[error("{message}")]
    ShuttingDown {
        message: String,
        resume_after: Option<u64>,
    },

    /// Cluster mode: the replicated log did not acknowledge a write in time (no stream
    /// leader, no quorum, NATS unreachable). The write may or may not be in the log; a
    /// retry with the same request id is safe.
    #[error("{0}")]
    LogUnavailable(String),

    /// Cluster mode: the call asked for a log position (a consistency token) this node has
    /// not applied within the call's deadline. Another node, or a retry, may have it.
    #[error("{0}")]
    NotCaughtUp(String),

    /// The disk holding the data is full (or below the configured free-space reserve):
    /// writes are refused until space is freed; reads go on.
    #[error("{0}")]
    StorageFull(String),

    /// Stored data is damaged or acknowledged data is missing: the message names what and
    /// what the operator can do. Never retried into success; never served as if whole.
    #[error("{0}")]
    DataLoss(String),

    /// Storage, index or I/O failures. The message is logged in full; callers get a summary.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, kind: Invalid, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            kind,
            message: message.into(),
        }
    }

    pub fn missing(field: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field} is required");
        Error::invalid(field, Invalid::Missing, message)
    }

    pub fn internal(context: &str, err: impl fmt::Display) -> Self {
        Error::Internal(format!("{context}: {err}"))
    }

    /// Names the stored key (`key`, as the store shows keys) a [`Error::DataLoss`] was met
    /// at; other errors pass through.
    pub fn at_key(self, key: &str) -> Self {
        match self {
            Error::DataLoss(message) => {
                Error::DataLoss(format!("{message}{RECORD_SUFFIX}{})", quoted(key)))
            }
            other => other,
        }
    }

    /// An I/O failure while `context`: a full disk is [`Error::StorageFull`], the rest
    /// internal.
    pub fn from_io(context: &str, err: std::io::Error) -> Self {
        if is_storage_full(&err) {
            Error::StorageFull(format!(
                "the disk holding the data is full ({context}: {err}); free space, and \
                 writes resume by themselves"
            ))
        } else {
            Error::internal(context, err)
        }
    }

    /// The stable UPPER_SNAKE_CASE reason for `google.rpc.ErrorInfo` (AIP-193). Clients may
    /// match on these; they never change meaning.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidArgument { kind, .. } => match kind {
                Invalid::Missing => "REQUIRED_FIELD_MISSING",
                Invalid::TooLarge => "FIELD_TOO_LARGE",
                Invalid::Malformed => "INVALID_FIELD_VALUE",
                Invalid::OutOfRange => "VALUE_OUT_OF_RANGE",
                Invalid::PageToken => "INVALID_PAGE_TOKEN",
                Invalid::PageTokenExpired => "PAGE_TOKEN_EXPIRED",
                Invalid::UpdateMask => "INVALID_UPDATE_MASK",
                Invalid::Query => "INVALID_QUERY",
                Invalid::RequestIdReused => "REQUEST_ID_REUSED",
            },
            Error::NotFound { resource, .. } => match resource {
                Resource::Article => "ARTICLE_NOT_FOUND",
                Resource::Entity => "ENTITY_NOT_FOUND",
            },
            Error::RevisionNotFound { .. } => "REVISION_NOT_FOUND",
            Error::OutOfRange { .. } => "CHANGES_COMPACTED",
            Error::AlreadyExists { resource, .. } => match resource {
                Resource::Article => "ARTICLE_ALREADY_EXISTS",
                Resource::Entity => "ENTITY_ALREADY_EXISTS",
            },
            Error::EtagMismatch { .. } => "ETAG_MISMATCH",
            Error::ResourceExhausted(_) => "LIMIT_EXCEEDED",
            Error::FailedPrecondition { reason, .. } => match reason {
                Precondition::EntityBlocked { .. } => "ENTITY_BLOCKED",
                Precondition::EntityMerged { .. } => "ENTITY_MERGED",
                Precondition::ArticleDeleted { .. } => "ARTICLE_DELETED",
            },
            Error::Denied { why, .. } => match why {
                Denied::TokenMissing => "TOKEN_MISSING",
                Denied::TokenInvalid => "TOKEN_INVALID",
                Denied::ScopeInsufficient { .. } => "SCOPE_INSUFFICIENT",
            },
            Error::Overloaded { .. } => "OVERLOADED",
            Error::ReaderTooSlow { .. } => "LIMIT_EXCEEDED",
            Error::Conflict(_) => "CONCURRENT_MODIFICATION",
            Error::IndexLagging(_) => "INDEX_LAGGING",
            Error::ShuttingDown { .. } => "SHUTTING_DOWN",
            Error::LogUnavailable(_) => "LOG_UNAVAILABLE",
            Error::NotCaughtUp(_) => "NOT_CAUGHT_UP",
            Error::StorageFull(_) => "STORAGE_FULL",
            Error::DataLoss(_) => "DATA_LOSS",
            Error::Internal(_) => "INTERNAL",
        }
    }
}

/// How much of a caller's value an error message repeats.
const SHOWN_CHARS: usize = 64;

/// `text` quoted for an error message, shortened to its first 64 characters: a message
/// must stay small whatever a caller sent (some clients cannot read large status
/// metadata), while still showing which value was meant.
pub fn quoted(text: &str) -> String {
    let (shown, rest) = cut(text);
    format!("{shown:?}{rest}")
}

/// `text` shortened as [`quoted`] does, without the quotes.
pub fn shortened(text: &str) -> String {
    let (shown, rest) = cut(text);
    format!("{shown}{rest}")
}

/// The part of `text` an error message repeats, and what to say of the rest.
fn cut(text: &str) -> (&str, String) {
    match text.char_indices().nth(SHOWN_CHARS) {
        None => (text, String::new()),
        Some((end, _)) => (&text[..end], format!("… ({} bytes in all)", text.len())),
    }
}

/// What [`Error::at_key`] appends to a damage message before the record's key.
pub const RECORD_SUFFIX: &str = " (record ";

/// Whether an I/O error says the disk (or the quota) is full.
pub fn is_storage_full(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}
