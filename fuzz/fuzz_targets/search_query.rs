//! The search query language, end to end: the parser, then (for what parses) compilation
//! against a real index of the seed articles, execution, facets and highlighting, through
//! `SearchArticles`. Printing a parsed query must give text that parses to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use newsstore::api::proto::article_service_server::ArticleService;
use newsstore::api::proto::{FacetField, FacetRequest, SearchArticlesRequest};
use newsstore::search::query;
use newsstore_fuzz::Harness;

fuzz_target!(|data: &[u8]| {
    let Some((&options, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let parsed = query::parse(text);
    if let Ok(Some(tree)) = &parsed {
        let printed = tree.to_string();
        match query::parse(&printed) {
            Ok(Some(again)) => assert_eq!(
                again.without_positions(),
                tree.without_positions(),
                "{text:?} printed as {printed:?}, which parses to another tree"
            ),
            other => panic!("{text:?} printed as {printed:?}, which parses as {other:?}"),
        }
    }
    let harness = Harness::get();
    let request = SearchArticlesRequest {
        query: text.to_string(),
        page_size: i32::from(options & 0x1f),
        typo_tolerance: options & 0x20 != 0,
        facets: if options & 0x40 != 0 {
            [FacetField::Entity, FacetField::Source, FacetField::Month]
                .into_iter()
                .map(|field| FacetRequest {
                    field: field as i32,
                    limit: 5,
                })
                .collect()
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let result = harness.runtime.block_on(
        harness
            .articles
            .search_articles(tonic::Request::new(request)),
    );
    // A query the parser refuses is refused by the API, as a bad argument.
    if parsed.is_err() {
        let status = result.expect_err("a query the parser refuses was served");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
});
