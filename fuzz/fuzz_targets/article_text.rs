//! The plain-text article parser (seed and import files) and the extraction that follows
//! it: no panic on any text, and every range and span extraction reports lies inside the
//! text it describes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use newsstore::extract::{analyze, document};
use newsstore::model::ArticleInput;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = document::parse(text) else {
        return;
    };
    assert!(
        !doc.headline.trim().is_empty(),
        "an empty headline from {text:?}"
    );
    let input = ArticleInput {
        headline: doc.headline,
        body: doc.body,
        byline: doc.byline,
        source: doc.source,
        ..Default::default()
    };
    let extraction = analyze(&input);
    let body = input.body.as_str();
    let chars = body.chars().count() as u32;
    for range in extraction.paragraphs.iter().chain(&extraction.subheadings) {
        assert!(range.start <= range.end, "{range:?} in {body:?}");
        assert!(
            body.get(range.start as usize..range.end as usize).is_some(),
            "{range:?} is not a slice of {body:?}"
        );
    }
    for entity in &extraction.entities {
        assert!(
            !entity.name.trim().is_empty(),
            "an unnamed entity in {body:?}"
        );
        for span in &entity.spans {
            assert!(
                span.start < span.end && span.end <= chars,
                "{span:?} in {body:?}"
            );
        }
    }
    for quote in &extraction.quotes {
        assert!(quote.span.start <= quote.span.end && quote.span.end <= chars);
        if let Some(speaker) = quote.speaker {
            assert!(
                speaker < extraction.entities.len(),
                "quote speaker out of range"
            );
        }
    }
});
