//! The store's record decoder, as a damaged disk would feed it: arbitrary bytes decode to
//! an error or to a record that encodes and decodes back to itself, never to a panic or an
//! allocation the size of a corrupt length field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use newsstore::model::{Article, Change, Entity};
use newsstore::store::Outcome;
use newsstore::store::codec;

fn round_trip<T>(bytes: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if let Ok(record) = codec::decode::<T>(bytes) {
        let encoded = codec::encode(&record).expect("a decoded record encodes");
        let again: T = codec::decode(&encoded).expect("an encoded record decodes");
        assert_eq!(format!("{record:?}"), format!("{again:?}"));
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Article>(data);
    round_trip::<Entity>(data);
    round_trip::<Change>(data);
    round_trip::<Outcome>(data);
});
