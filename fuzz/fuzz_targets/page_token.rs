//! Page tokens: any string a caller sends is either refused with INVALID_ARGUMENT or
//! yields the position it was made from; a token made for one listing and request is never
//! accepted for another.
#![no_main]

use libfuzzer_sys::fuzz_target;
use newsstore::api::page_token::{self, Listing};

const LISTINGS: [Listing; 5] = Listing::ALL;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let listing = LISTINGS[usize::from(selector) % LISTINGS.len()];
    let fingerprint = page_token::fingerprint(&[&[selector]]);
    // Arbitrary text as a token.
    if let Ok(token) = std::str::from_utf8(rest)
        && let Err(error) = page_token::decode(token, listing, fingerprint)
    {
        assert!(error.to_string().contains("page_token"), "{error}");
    }
    // Arbitrary bytes as a position: a round trip, and no other listing or filter takes it.
    let token = page_token::encode(listing, fingerprint, rest);
    assert_eq!(
        page_token::decode(&token, listing, fingerprint).ok(),
        Some(Some(rest.to_vec()))
    );
    let other = LISTINGS[(usize::from(selector) + 1) % LISTINGS.len()];
    assert!(page_token::decode(&token, other, fingerprint).is_err());
    let changed = page_token::fingerprint(&[&[selector.wrapping_add(1)]]);
    assert!(page_token::decode(&token, listing, changed).is_err());
});
