//! SearchArticles: turning the request into a search, and the results into a response.

use std::time::Duration;

use super::convert::{self, View};
use super::page_token::{self, Listing};
use super::proto;
use crate::error::{Error, Invalid, Result};
use crate::search::{
    FacetField, FacetRequest, Highlight, MAX_SEARCH_DEPTH, PagePosition, SearchOrder,
    SearchRequest, SearchResults,
};

const DEFAULT_PAGE: usize = 10;
const MAX_PAGE: usize = 100;
const MAX_QUERY_CHARS: usize = 1000;
const MAX_FACETS: usize = 8;
const MAX_FACET_LIMIT: usize = 100;
const MAX_MARKER_BYTES: usize = 32;
const DEFAULT_HALF_LIFE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A century: longer half lives are surely mistakes.
const MAX_HALF_LIFE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The search a request asks for (without its page, which comes from the token).
pub fn request_from_proto(request: &proto::SearchArticlesRequest) -> Result<SearchRequest> {
    let query = request.query.trim().to_string();
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::invalid(
            "query",
            Invalid::TooLarge,
            format!("query may have at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let filter = convert::filter_from_proto(request.filter.as_ref())?;
    if query.is_empty() && filter == crate::model::ArticleFilter::default() {
        return Err(Error::invalid(
            "query",
            Invalid::Missing,
            "query is required unless filter is set (to list everything, use ListArticles)",
        ));
    }
    let order = match proto::SearchOrder::try_from(request.order) {
        Ok(proto::SearchOrder::Unspecified | proto::SearchOrder::Relevance) => {
            SearchOrder::Relevance
        }
        Ok(proto::SearchOrder::PublishedDesc) => SearchOrder::PublishedDesc,
        Ok(proto::SearchOrder::PublishedAsc) => SearchOrder::PublishedAsc,
        Ok(proto::SearchOrder::RelevanceRecency) => SearchOrder::RelevanceRecency {
            half_life: half_life(request.recency_half_life.as_ref())?,
        },
        Err(_) => {
            return Err(Error::invalid(
                "order",
                Invalid::Malformed,
                format!("{} is not a SearchOrder", request.order),
            ));
        }
    };
    let highlight = highlight(request.highlight.as_ref())?;
    let facets = facets(&request.facets)?;
    let limit = super::page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)?;
    Ok(SearchRequest {
        query,
        filter,
        order,
        typo_tolerance: request.typo_tolerance,
        highlight,
        facets,
        limit,
        page: None,
    })
}

fn half_life(value: Option<&prost_types::Duration>) -> Result<Duration> {
    let Some(value) = value else {
        return Ok(DEFAULT_HALF_LIFE);
    };
    let valid = value.seconds >= 0 && (0..1_000_000_000).contains(&value.nanos);
    let duration = Duration::new(
        u64::try_from(value.seconds).unwrap_or(0),
        value.nanos.max(0) as u32,
    );
    if !valid || duration.is_zero() || duration > MAX_HALF_LIFE {
        return Err(Error::invalid(
            "recency_half_life",
            Invalid::OutOfRange,
            "recency_half_life must be positive and at most a century",
        ));
    }
    Ok(duration)
}

fn highlight(value: Option<&proto::HighlightOptions>) -> Result<Highlight> {
    let mut highlight = Highlight::default();
    let Some(value) = value else {
        return Ok(highlight);
    };
    for (field, tag, target) in [
        ("highlight.pre_tag", &value.pre_tag, &mut highlight.pre),
        ("highlight.post_tag", &value.post_tag, &mut highlight.post),
    ] {
        if tag.len() > MAX_MARKER_BYTES {
            return Err(Error::invalid(
                field,
                Invalid::TooLarge,
                format!("{field} may have at most {MAX_MARKER_BYTES} bytes"),
            ));
        }
        if !tag.is_empty() {
            target.clone_from(tag);
        }
    }
    highlight.snippet_chars = match value.snippet_chars {
        0 => highlight.snippet_chars,
        n @ 20..=1000 => n as usize,
        n => {
            return Err(Error::invalid(
                "highlight.snippet_chars",
                Invalid::OutOfRange,
                format!(
                    "highlight.snippet_chars must be between 20 and 1000 (0 means 240); got {n}"
                ),
            ));
        }
    };
    Ok(highlight)
}

fn facets(requests: &[proto::FacetRequest]) -> Result<Vec<FacetRequest>> {
    if requests.len() > MAX_FACETS {
        return Err(Error::invalid(
            "facets",
            Invalid::TooLarge,
            format!("at most {MAX_FACETS} facets may be asked for"),
        ));
    }
    requests
        .iter()
        .map(|request| {
            let field = match proto::FacetField::try_from(request.field) {
                Ok(proto::FacetField::Entity) => FacetField::Entity,
                Ok(proto::FacetField::Source) => FacetField::Source,
                Ok(proto::FacetField::Tag) => FacetField::Tag,
                Ok(proto::FacetField::Month) => FacetField::Month,
                _ => {
                    return Err(Error::invalid(
                        "facets.field",
                        Invalid::Malformed,
                        "facets.field must be ENTITY, SOURCE, TAG or MONTH",
                    ));
                }
            };
            let limit = super::page_size(request.limit, 10, MAX_FACET_LIMIT).map_err(|_| {
                Error::invalid(
                    "facets.limit",
                    Invalid::OutOfRange,
                    format!("facets.limit must be between 0 and {MAX_FACET_LIMIT} (0 means 10)"),
                )
            })?;
            Ok(FacetRequest { field, limit })
        })
        .collect()
}

/// What page tokens are bound to: everything that decides which hits come in which order.
pub fn fingerprint(request: &proto::SearchArticlesRequest, search: &SearchRequest) -> [u8; 8] {
    let order = format!("{:?}", search.order);
    page_token::fingerprint(&[
        search.query.as_bytes(),
        &convert::filter_fingerprint_parts(&search.filter),
        order.as_bytes(),
        &[u8::from(request.typo_tolerance)],
    ])
}

/// The page position inside a search page token.
pub fn decode_position(bytes: &[u8]) -> Result<PagePosition> {
    let invalid = || Error::invalid("page_token", Invalid::PageToken, "page_token is invalid");
    let snapshot: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(invalid)?;
    let offset: [u8; 8] = bytes
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(invalid)?;
    let offset = usize::try_from(u64::from_be_bytes(offset)).map_err(|_| invalid())?;
    if bytes.len() != 16 || offset > MAX_SEARCH_DEPTH {
        return Err(invalid());
    }
    Ok(PagePosition {
        snapshot: u64::from_be_bytes(snapshot),
        offset,
    })
}

fn encode_position(position: PagePosition) -> Vec<u8> {
    let mut bytes = position.snapshot.to_be_bytes().to_vec();
    bytes.extend_from_slice(&(position.offset as u64).to_be_bytes());
    bytes
}

/// How hits are shown: a view, or a read mask of top-level fields.
pub struct Output {
    view: View,
    mask: Option<Vec<String>>,
}

/// The Article fields a read mask may name.
const ARTICLE_FIELDS: &[&str] = &[
    "id",
    "headline",
    "lead",
    "body",
    "paragraphs",
    "subheadings",
    "captions",
    "byline",
    "source",
    "language",
    "published_time",
    "create_time",
    "update_time",
    "tags",
    "etag",
    "revision",
    "content_hash",
    "word_count",
    "entity_tags",
    "entities",
    "quotes",
];

impl Output {
    pub fn from_proto(request: &proto::SearchArticlesRequest) -> Result<Output> {
        let view = convert::view_from_proto(request.view, View::Basic)?;
        let mask = match &request.read_mask {
            Some(mask) if !mask.paths.is_empty() => {
                for path in super::mask_paths("read_mask", mask)? {
                    if !ARTICLE_FIELDS.contains(&path.as_str()) {
                        return Err(Error::invalid(
                            "read_mask",
                            Invalid::Malformed,
                            format!("read_mask path {path:?} is not a field of Article"),
                        ));
                    }
                }
                Some(mask.paths.clone())
            }
            _ => None,
        };
        Ok(Output { view, mask })
    }

    fn article(&self, article: &crate::model::Article) -> proto::Article {
        match &self.mask {
            None => convert::article_to_proto(article, self.view),
            Some(paths) => masked(convert::article_to_proto(article, View::Full), paths),
        }
    }

    pub fn response(
        &self,
        results: SearchResults,
        fingerprint: [u8; 8],
    ) -> proto::SearchArticlesResponse {
        proto::SearchArticlesResponse {
            hits: results
                .hits
                .iter()
                .map(|hit| proto::SearchHit {
                    article: Some(self.article(&hit.article)),
                    score: f64::from(hit.score),
                    snippet: hit.snippet.clone(),
                    headline_snippet: hit.headline.clone(),
                })
                .collect(),
            next_page_token: results
                .next
                .map(|next| {
                    page_token::encode(Listing::Search, fingerprint, &encode_position(next))
                })
                .unwrap_or_default(),
            total_size: i64::try_from(results.total).unwrap_or(i64::MAX),
            total_size_exact: true,
            facets: results
                .facets
                .into_iter()
                .map(|facet| proto::FacetResult {
                    field: match facet.field {
                        FacetField::Entity => proto::FacetField::Entity,
                        FacetField::Source => proto::FacetField::Source,
                        FacetField::Tag => proto::FacetField::Tag,
                        FacetField::Month => proto::FacetField::Month,
                    } as i32,
                    buckets: facet
                        .buckets
                        .into_iter()
                        .map(|bucket| proto::FacetBucket {
                            value: bucket.value,
                            label: bucket.label,
                            count: i64::try_from(bucket.count).unwrap_or(i64::MAX),
                            kind: bucket
                                .kind
                                .map_or(proto::EntityKind::Unspecified, convert::kind_to_proto)
                                as i32,
                        })
                        .collect(),
                })
                .collect(),
            index_sequence: i64::try_from(results.index_seq).unwrap_or(i64::MAX),
        }
    }
}

/// `article` with only the fields in `paths`.
fn masked(article: proto::Article, paths: &[String]) -> proto::Article {
    let keep = |name: &str| paths.iter().any(|p| p == name);
    let mut out = proto::Article::default();
    macro_rules! copy {
        ($($field:ident),*) => {
            $( if keep(stringify!($field)) { out.$field = article.$field.clone(); } )*
        };
    }
    copy!(
        id,
        headline,
        lead,
        body,
        paragraphs,
        subheadings,
        captions,
        byline,
        source,
        language,
        published_time,
        create_time,
        update_time,
        tags,
        etag,
        revision,
        content_hash,
        word_count,
        entity_tags,
        entities,
        quotes
    );
    out
}
