//! How records are encoded on disk: one version byte, then MessagePack via serde.
//!
//! The disk format belongs to the store, not to the API: protobuf never reaches sled, so the
//! wire format can change without a data migration and vice versa. Records are MessagePack
//! arrays of their fields in declaration order; fields are only appended, each new one with
//! `#[serde(default)]`, which keeps old records readable. A change that cannot be expressed
//! that way bumps [`VERSION`] and adds a migration here.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The record format this build writes.
pub const VERSION: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![VERSION];
    rmp_serde::encode::write(&mut out, value)
        .map_err(|e| Error::internal("encoding a record", e))?;
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&VERSION, body)) => {
            rmp_serde::from_slice(body).map_err(|e| Error::internal("decoding a record", e))
        }
        Some((version, _)) => Err(Error::Internal(format!(
            "a record has format version {version}, which this build cannot read (it reads \
             version {VERSION}); run a newer newsstore"
        ))),
        None => Err(Error::Internal("an empty record was found".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Old {
        a: u32,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct New {
        a: u32,
        #[serde(default)]
        b: String,
    }

    #[test]
    fn appended_fields_keep_old_records_readable() {
        let old = encode(&Old { a: 7 }).unwrap();
        let new: New = decode(&old).unwrap();
        assert_eq!(
            new,
            New {
                a: 7,
                b: String::new()
            }
        );
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors_not_panics() {
        assert!(decode::<Old>(&[]).is_err());
        assert!(decode::<Old>(&[9, 1, 2]).is_err());
        assert!(decode::<Old>(&[VERSION, 0xc1]).is_err());
    }
}
