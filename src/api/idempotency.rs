//! Idempotency keys (AIP-155): a mutating request's `request_id` and what identifies the
//! request it came with.
//!
//! The fingerprint is a hash of the method and the request encoded without its
//! `request_id`, so a retry (same bytes) is recognised and a different request that reuses
//! the key is refused instead of silently answered with another call's result.
//!
//! This `request_id` is a request field; the `x-request-id` header is another thing, a
//! trace id for logs (`layers/call_span.rs`).

use prost::Message;
use sha2::{Digest, Sha256};

use crate::error::{Error, Invalid, Result};
use crate::model::RequestTag;

/// The longest accepted request id.
const MAX_LEN: usize = 128;

/// The tag of `request` (of gRPC method `method`) when its `request_id` is set. `request`
/// must have its `request_id` cleared.
pub fn tag(method: &str, request_id: &str, request: &impl Message) -> Result<Option<RequestTag>> {
    if request_id.is_empty() {
        return Ok(None);
    }
    if request_id.len() > MAX_LEN
        || !request_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'#')
    {
        return Err(Error::invalid(
            "request_id",
            Invalid::Malformed,
            format!(
                "request_id must be 1 to {MAX_LEN} printable ASCII characters without spaces \
                 or '#', for example a UUID"
            ),
        ));
    }
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(request.encode_to_vec());
    Ok(Some(RequestTag {
        id: request_id.to_string(),
        fingerprint: hex::encode(&hasher.finalize()[..16]),
    }))
}

/// The tag of item `index` of a batch tagged `batch`: each item is recorded on its own, so
/// a retry after a partial failure applies only what is missing.
pub fn item_tag(batch: &RequestTag, index: usize) -> RequestTag {
    RequestTag {
        id: format!("{}#{index}", batch.id),
        fingerprint: batch.fingerprint.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto;

    #[test]
    fn same_request_same_tag_other_request_other_fingerprint() {
        let request = proto::DeleteArticleRequest {
            id: "a".into(),
            ..Default::default()
        };
        let first = tag("Delete", "req-1", &request).unwrap().unwrap();
        assert_eq!(first, tag("Delete", "req-1", &request).unwrap().unwrap());
        let other = proto::DeleteArticleRequest {
            id: "b".into(),
            ..Default::default()
        };
        assert_ne!(
            first.fingerprint,
            tag("Delete", "req-1", &other).unwrap().unwrap().fingerprint
        );
        assert_ne!(
            first.fingerprint,
            tag("Purge", "req-1", &request)
                .unwrap()
                .unwrap()
                .fingerprint
        );
        assert_eq!(tag("Delete", "", &request).unwrap(), None);
        assert!(tag("Delete", "has space", &request).is_err());
        assert!(tag("Delete", &"x".repeat(129), &request).is_err());
        assert_eq!(item_tag(&first, 3).id, "req-1#3");
    }
}
