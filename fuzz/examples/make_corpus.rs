//! Writes the starting corpus of every fuzz target into `fuzz/corpus/<target>/`: the seed
//! articles as text, ninjs and store records, a mix of search queries, page tokens, and a
//! well-formed request for every gRPC method that takes parameters, naming articles and
//! entities that exist in the harness. Coverage-guided fuzzing gets much further from valid inputs than from
//! nothing. Run with `cargo run -p newsstore-fuzz --example make_corpus`.

use std::fs;
use std::path::{Path, PathBuf};

use newsstore::api::page_token::{self, Listing};
use newsstore::api::proto::{self};
use newsstore::ninjs;
use newsstore::store::codec;
use newsstore_fuzz::{Harness, METHODS};
use prost::Message;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let harness = Harness::get();
    let store = &harness.store;
    let articles: Vec<_> = store.articles().filter_map(Result::ok).collect();
    let entities = store
        .list_entities(None, "", 20, None)
        .map(|page| page.items)
        .unwrap_or_default();
    let changes = store.changes_after(0, 20).unwrap_or_default();

    let mut out = Corpus::new(&root);
    for article in &articles {
        let text = format!(
            "{}\n\n{}\n\nSource: {}\n",
            article.input.headline, article.input.body, article.input.source
        );
        out.add("article_text", text.as_bytes())?;
        out.add("ninjs", ninjs::to_json(&ninjs::export(article)).as_bytes())?;
        out.add("store_records", &codec::encode(article).unwrap_or_default())?;
    }
    for entity in &entities {
        out.add("store_records", &codec::encode(entity).unwrap_or_default())?;
    }
    for change in &changes {
        out.add("store_records", &codec::encode(change).unwrap_or_default())?;
    }

    // The shapes the plain-text reader knows: byline, BOM and CRLF, subheadings, captions,
    // quotes, a source line.
    for text in [
        "Ministers agree budget\nBy Jane Smith, Political Correspondent\n\nThe cabinet agreed \
         the budget on Monday.\n\n\"It is fair,\" said Chancellor Rishi Sunak.\n\nSource: BBC\n",
        "\u{feff}Storm hits coast\r\n\r\nHeavy rain fell in Cornwall.\r\n\r\nMore to follow\r\n\r\n\
         Residents of St Ives were evacuated, police said.\r\n",
        "Election night\n\nVoters in Ohio went to the polls.\n\nImage caption: A polling \
         station in Columbus\n\nResults are expected by midnight, the Associated Press said.\n",
        "One line only\n",
    ] {
        out.add("article_text", text.as_bytes())?;
    }

    let queries = [
        "kerry lavrov",
        "syria OR iraq",
        "\"peace talks\" -geneva",
        "headline:(syria OR \"ceasefire deal\") kerr*",
        "entity:\"John Kerry\" source:reuters",
        "kind:person NOT (tag:sport lang:en)",
        "tag:politics && body:minister || caption:photo",
        "10:30 +rebels",
    ];
    for (i, query) in queries.iter().enumerate() {
        let mut bytes = vec![(i as u8).wrapping_mul(37)];
        bytes.extend_from_slice(query.as_bytes());
        out.add("search_query", &bytes)?;
    }

    for (i, listing) in Listing::ALL.into_iter().enumerate() {
        let selector = i as u8;
        let token = page_token::encode(
            listing,
            page_token::fingerprint(&[&[selector]]),
            b"\x00\x00\x01\x62position",
        );
        let mut bytes = vec![selector];
        bytes.extend_from_slice(token.as_bytes());
        out.add("page_token", &bytes)?;
    }

    let article_id = articles.first().map(|a| a.id.clone()).unwrap_or_default();
    let entity_id = entities.first().map(|e| e.id.clone()).unwrap_or_default();
    let other_entity = entities.get(1).map(|e| e.id.clone()).unwrap_or_default();
    let new_article = proto::Article {
        headline: "Kerry and Lavrov meet in Geneva".into(),
        body: "US Secretary of State John Kerry met Russian Foreign Minister Sergei Lavrov \
               in Geneva on Friday.\n\n\"We have work to do,\" Kerry said."
            .into(),
        source: "Reuters".into(),
        language: "en".into(),
        tags: vec!["politics".into()],
        entity_tags: vec![proto::EntityTag {
            name: "Geneva".into(),
            kind: proto::EntityKind::Location as i32,
            entity_id: String::new(),
        }],
        ..Default::default()
    };
    let filter = proto::ArticleFilter {
        entity_ids: vec![entity_id.clone()],
        sources: vec!["Reuters".into()],
        ..Default::default()
    };
    let create = proto::CreateArticleRequest {
        article: Some(new_article.clone()),
        article_id: "fuzz-1".into(),
        request_id: "00000000-0000-4000-8000-000000000001".into(),
        ..Default::default()
    };
    let requests: Vec<(&str, Vec<u8>)> = vec![
        ("CreateArticle", create.encode_to_vec()),
        (
            "GetArticle",
            proto::GetArticleRequest {
                id: article_id.clone(),
                view: proto::ArticleView::Full as i32,
                revision: 0,
            }
            .encode_to_vec(),
        ),
        (
            "UpdateArticle",
            proto::UpdateArticleRequest {
                article: Some(proto::Article {
                    id: article_id.clone(),
                    tags: vec!["updated".into()],
                    ..Default::default()
                }),
                update_mask: Some(prost_types_mask(&["tags"])),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "DeleteArticle",
            proto::DeleteArticleRequest {
                id: "fuzz-1".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "ListArticles",
            proto::ListArticlesRequest {
                page_size: 3,
                filter: Some(filter.clone()),
                order: proto::ListArticlesOrder::Salience as i32,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "SearchArticles",
            proto::SearchArticlesRequest {
                query: "kerry OR syria".into(),
                page_size: 5,
                typo_tolerance: true,
                facets: vec![proto::FacetRequest {
                    field: proto::FacetField::Entity as i32,
                    limit: 3,
                }],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "BatchCreateArticles",
            proto::BatchCreateArticlesRequest {
                requests: vec![create.clone(), create],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "ListArticleRevisions",
            proto::ListArticleRevisionsRequest {
                article_id: article_id.clone(),
                page_size: 2,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "CompareArticleRevisions",
            proto::CompareArticleRevisionsRequest {
                article_id: article_id.clone(),
                from_revision: 1,
                to_revision: 0,
            }
            .encode_to_vec(),
        ),
        (
            "PurgeArticle",
            proto::PurgeArticleRequest {
                id: "fuzz-1".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "GetEntity",
            proto::GetEntityRequest {
                id: entity_id.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "ListEntities",
            proto::ListEntitiesRequest {
                page_size: 5,
                name_prefix: "Ke".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "ListRelatedEntities",
            proto::ListRelatedEntitiesRequest {
                id: entity_id.clone(),
                page_size: 5,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "ListQuotes",
            proto::ListQuotesRequest {
                speaker_id: entity_id.clone(),
                page_size: 5,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "UpdateEntity",
            proto::UpdateEntityRequest {
                entity: Some(proto::Entity {
                    id: entity_id.clone(),
                    aliases: vec!["Sec. Kerry".into()],
                    ..Default::default()
                }),
                update_mask: Some(prost_types_mask(&["aliases"])),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "MergeEntities",
            proto::MergeEntitiesRequest {
                survivor_id: entity_id.clone(),
                merged_ids: vec![other_entity],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "BlockEntity",
            proto::BlockEntityRequest {
                id: entity_id.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "UnblockEntity",
            proto::UnblockEntityRequest {
                id: entity_id.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "WatchChanges",
            proto::WatchChangesRequest {
                after_sequence: 1,
                entity_ids: vec![entity_id],
                query: "kerry".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ];
    for (method, message) in requests {
        let index = METHODS
            .iter()
            .position(|m| *m == method)
            .expect("a method of the table");
        let mut bytes = vec![index as u8];
        bytes.extend_from_slice(&message);
        out.add("requests", &bytes)?;
    }
    println!("wrote {} inputs under {}", out.written, root.display());
    Ok(())
}

fn prost_types_mask(paths: &[&str]) -> prost_types::FieldMask {
    prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    }
}

/// Corpus folders, one file per input, named by a hash of the content as libFuzzer does.
struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn new(root: &Path) -> Corpus {
        Corpus {
            root: root.to_path_buf(),
            written: 0,
        }
    }

    fn add(&mut self, target: &str, bytes: &[u8]) -> std::io::Result<()> {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir)?;
        let name = format!("seed-{:016x}", fnv(bytes));
        fs::write(dir.join(name), bytes)?;
        self.written += 1;
        Ok(())
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
