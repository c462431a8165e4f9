//! How records are encoded on disk: one format byte, then MessagePack via serde, compressed
//! with LZ4 when the record is large.
//!
//! The disk format belongs to the store, not to the API: protobuf never reaches sled, so the
//! wire format can change without a data migration and vice versa. Records are MessagePack
//! arrays of their fields in declaration order; fields are only appended, each new one with
//! `#[serde(default)]`, which keeps old records readable. A change that cannot be expressed
//! that way adds a format byte and a migration here.
//!
//! Compression: article records (the body, its layout, mentions and quotes) are most of the
//! data, and sled writes every record several times before its log segments are cleaned, so
//! taking a third off them shrinks the files, the log replayed at start and the cache misses of
//! `GetArticle`. LZ4 because decoding must stay cheap on the read path (about 2 µs for an
//! article; zstd took eight times as long for a fifth less space). Small records (index
//! entries, counters, most entities) stay plain: there is nothing to gain on them.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Plain MessagePack; what every earlier build wrote, and still used for small records.
pub const PLAIN: u8 = 1;
/// The encoded length (u32, little-endian), then an LZ4 block of the MessagePack.
pub const LZ4: u8 = 2;
/// Records at least this long are compressed.
const COMPRESS_FROM: usize = 512;
/// No record decodes to more than this: a damaged length field must not allocate gigabytes.
const MAX_DECODED: usize = 256 * 1024 * 1024;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![PLAIN];
    rmp_serde::encode::write(&mut out, value)
        .map_err(|e| Error::internal("encoding a record", e))?;
    if out.len() < COMPRESS_FROM {
        return Ok(out);
    }
    let plain = &out[1..];
    // What decode would refuse must not be written.
    if plain.len() > MAX_DECODED {
        return Err(Error::Internal(format!(
            "a record of {} bytes is too large to store",
            plain.len()
        )));
    }
    let length = u32::try_from(plain.len())
        .map_err(|_| Error::Internal(format!("a record of {} bytes is too large", plain.len())))?;
    let mut compressed =
        Vec::with_capacity(5 + lz4_flex::block::get_maximum_output_size(plain.len()));
    compressed.push(LZ4);
    compressed.extend_from_slice(&length.to_le_bytes());
    compressed.extend_from_slice(&lz4_flex::block::compress(plain));
    Ok(compressed)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    // sled checksums what it stores, so a record that does not decode was written damaged
    // or changed on disk in a way the checksum missed: damage either way.
    let malformed = |e: &dyn std::fmt::Display| {
        Error::DataLoss(format!(
            "a stored record is damaged and cannot be decoded: {e}"
        ))
    };
    match bytes.split_first() {
        Some((&PLAIN, body)) => rmp_serde::from_slice(body).map_err(|e| malformed(&e)),
        Some((&LZ4, rest)) => {
            let (length, block) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| Error::DataLoss("a compressed stored record is truncated".into()))?;
            let length = u32::from_le_bytes(*length) as usize;
            // LZ4 expands at most 255 to 1; a larger length is damage, not data.
            if length > MAX_DECODED || length > block.len().saturating_mul(255) + 16 {
                return Err(Error::DataLoss(format!(
                    "a compressed stored record claims {length} bytes from {}; it is damaged",
                    block.len()
                )));
            }
            let plain = lz4_flex::block::decompress(block, length).map_err(|e| malformed(&e))?;
            rmp_serde::from_slice(&plain).map_err(|e| malformed(&e))
        }
        Some((format, _)) => Err(Error::Internal(format!(
            "a record has format {format}, which this build cannot read (it reads formats \
             {PLAIN} and {LZ4}); run a newer newsstore"
        ))),
        None => Err(Error::DataLoss("an empty stored record was found".into())),
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
        assert!(decode::<Old>(&[PLAIN, 0xc1]).is_err());
        assert!(decode::<Old>(&[LZ4, 1, 2]).is_err());
        // A length field claiming 4 GiB from three bytes is refused before allocating.
        assert!(decode::<Old>(&[LZ4, 0xff, 0xff, 0xff, 0xff, 0, 0, 0]).is_err());
        assert!(decode::<Old>(&[LZ4, 16, 0, 0, 0, 0xff, 0xff]).is_err());
    }

    #[test]
    fn large_records_are_compressed_and_small_ones_stay_plain() {
        let small = encode(&New {
            a: 1,
            b: "short".into(),
        })
        .unwrap();
        assert_eq!(small[0], PLAIN);
        let text = "The minister said the talks would resume on Monday. ".repeat(40);
        let large = New {
            a: 2,
            b: text.clone(),
        };
        let encoded = encode(&large).unwrap();
        assert_eq!(encoded[0], LZ4);
        assert!(encoded.len() * 4 < text.len(), "{} bytes", encoded.len());
        assert_eq!(decode::<New>(&encoded).unwrap(), large);
    }

    #[test]
    fn plain_large_records_from_earlier_builds_still_decode() {
        let large = New {
            a: 3,
            b: "x".repeat(4000),
        };
        let mut plain = vec![PLAIN];
        rmp_serde::encode::write(&mut plain, &large).unwrap();
        assert_eq!(decode::<New>(&plain).unwrap(), large);
    }
}
