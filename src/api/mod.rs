//! The gRPC API: the only layer that knows protobuf.
//!
//! Services are thin: they validate what is API-specific, convert with [`convert`], call the
//! layer below and map errors with [`status`]. Everything else (rules on articles,
//! extraction, storage) lives below and is shared with the seeder and the CLI.
//!
//! The service handlers are the `*_service.rs` files here; the tower layers every call
//! passes through before a handler (call span, load shedding, call metrics, auth, the read
//! limit, tonic's own errors rewritten) are in [`layers`].

mod admin_service;
mod article_service;
mod audit;
mod change_service;
mod convert;
mod entity_service;
pub mod health;
mod idempotency;
pub mod layers;
pub mod page_token;
mod search;
pub mod status;

pub use admin_service::AdminApi;
pub use article_service::ArticleApi;
pub use change_service::ChangeApi;
pub use entity_service::EntityApi;

use crate::error::{Error, Invalid, Result};

/// Generated protobuf types, clients and servers of `newsstore.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("newsstore.v1");

    /// Encoded descriptors of every newsstore message and service, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/newsstore_descriptor.bin"));
}

/// A page size from a request: 0 means `default`; negative or above `max` is refused.
fn page_size(requested: i32, default: usize, max: usize) -> Result<usize> {
    match usize::try_from(requested) {
        Ok(0) => Ok(default),
        Ok(n) if n <= max => Ok(n),
        _ => Err(Error::invalid(
            "page_size",
            Invalid::OutOfRange,
            format!("page_size must be between 0 and {max} (0 means {default}); got {requested}"),
        )),
    }
}

/// Most paths a field mask may hold: every resource here has fewer fields than this, so a
/// longer mask is a mistake or an attempt to make the server work.
const MAX_MASK_PATHS: usize = 32;

/// The paths of field mask `field`, refused past [`MAX_MASK_PATHS`].
fn mask_paths<'a>(field: &str, mask: &'a prost_types::FieldMask) -> Result<&'a [String]> {
    if mask.paths.len() > MAX_MASK_PATHS {
        return Err(Error::invalid(
            field,
            Invalid::TooLarge,
            format!(
                "{field} may name at most {MAX_MASK_PATHS} paths, this one names {}",
                mask.paths.len()
            ),
        ));
    }
    Ok(&mask.paths)
}

/// An id field that must be present and sane before it is looked up.
fn require_id(field: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::missing(field));
    }
    if id.len() > 256 || id.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            Invalid::Malformed,
            format!("{field} is not a valid id"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0, 50, 1000).unwrap(), 50);
        assert_eq!(page_size(1000, 50, 1000).unwrap(), 1000);
        assert!(page_size(1001, 50, 1000).is_err());
        assert!(page_size(-1, 50, 1000).is_err());
    }
}
