//! Concurrent writes on every node leave every node with the same state.

use newsstore::api::proto::{
    self, Article, BatchCreateArticlesRequest, BlockEntityRequest, DeleteArticleRequest,
    ListEntitiesRequest, MergeEntitiesRequest, PurgeArticleRequest, SearchArticlesRequest,
    SearchOrder, UpdateArticleRequest,
};
use prost_types::FieldMask;
use tonic::Code;

use crate::nats::NatsCluster;
use crate::node::{Node, at_least, create_request as create, position_of};

const PEOPLE: [&str; 4] = [
    "Angela Merkel met Barack Obama in Berlin on Tuesday.",
    "Bill Clinton spoke to the United Nations in New York.",
    "William Clinton addressed reporters at the White House.",
    "Vladimir Putin and Angela Merkel talked by telephone from Moscow.",
];

/// One node's share of the workload: creates, a batch, updates under etags (one stale),
/// a delete and a purge. Returns the highest position its answers carried.
async fn workload(node: &Node, n: usize) -> u64 {
    let mut articles = node.articles();
    let mut position = 0;
    let mut created = Vec::new();
    for k in 0..8 {
        let mut body = format!(
            "{} Report {k} from node {n}.",
            PEOPLE[(n + k) % PEOPLE.len()]
        );
        if k == 0 && n < 2 {
            // The same new name, first seen on two nodes at once.
            body.push_str(" Zorblat Quenfield, the new envoy, said the talks would go on.");
        }
        let response = articles
            .create_article(create(&format!("n{n}-a{k}"), &format!("Story {k}"), &body))
            .await
            .expect("create succeeds");
        position = position.max(position_of(&response));
        created.push(response.into_inner().article.expect("article"));
    }
    let batch = BatchCreateArticlesRequest {
        requests: (0..5)
            .map(|k| {
                create(
                    &format!("n{n}-b{k}"),
                    &format!("Batch {k}"),
                    &format!("{} Batch item {k} of node {n}.", PEOPLE[k % PEOPLE.len()]),
                )
            })
            .collect(),
        ..Default::default()
    };
    let response = articles
        .batch_create_articles(batch)
        .await
        .expect("batch succeeds");
    position = position.max(position_of(&response));
    let results = response.into_inner().results;
    assert_eq!(results.len(), 5);
    assert!(
        results.iter().all(|r| matches!(
            r.outcome,
            Some(proto::batch_create_articles_result::Outcome::Article(_))
        )),
        "{results:?}"
    );

    // Two updates in a row, each under the etag the last answer gave; then a stale one.
    let first = created[0].clone();
    let mut etag = first.etag.clone();
    for round in 0..2 {
        let response = articles
            .update_article(UpdateArticleRequest {
                article: Some(Article {
                    id: first.id.clone(),
                    headline: format!("Story 0, revised {round}"),
                    etag: etag.clone(),
                    ..Article::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["headline".into()],
                }),
                ..Default::default()
            })
            .await
            .expect("update under the current etag succeeds");
        position = position.max(position_of(&response));
        etag = response.into_inner().article.expect("article").etag;
    }
    let stale = articles
        .update_article(UpdateArticleRequest {
            article: Some(Article {
                id: first.id.clone(),
                headline: "never".into(),
                etag: first.etag.clone(),
                ..Article::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["headline".into()],
            }),
            ..Default::default()
        })
        .await
        .expect_err("a stale etag is refused");
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");

    let response = articles
        .delete_article(DeleteArticleRequest {
            id: created[1].id.clone(),
            etag: created[1].etag.clone(),
            ..Default::default()
        })
        .await
        .expect("delete succeeds");
    position = position.max(position_of(&response));
    let response = articles
        .purge_article(PurgeArticleRequest {
            id: created[2].id.clone(),
            ..Default::default()
        })
        .await
        .expect("purge succeeds");
    position.max(position_of(&response))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_on_every_node_leave_every_node_the_same() {
    let Some(nats) = NatsCluster::start().await else {
        return;
    };
    let urls = nats.urls();
    // Each node talks to its own NATS server.
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(Node::start(&urls[i..=i], &format!("node{i}")).await);
    }

    // The same article id created on all three nodes at once: exactly one wins.
    let shared = futures_util::future::join_all(nodes.iter().map(|node| {
        let mut articles = node.articles();
        async move {
            articles
                .create_article(create("shared", "Shared", "Angela Merkel in Paris."))
                .await
        }
    }))
    .await;
    let won = shared.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{shared:?}");
    for lost in shared.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(lost.code(), Code::AlreadyExists, "{lost:?}");
    }

    let positions =
        futures_util::future::join_all(nodes.iter().enumerate().map(|(n, node)| workload(node, n)))
            .await;
    let mut head = positions.into_iter().max().unwrap();

    // Editorial decisions on two nodes while the third writes.
    let mut merger = nodes[0].entities();
    let merge = merger.merge_entities(at_least(
        MergeEntitiesRequest {
            survivor_id: "bill-clinton".into(),
            merged_ids: vec!["william-clinton".into()],
            ..Default::default()
        },
        head,
    ));
    let mut blocker = nodes[1].entities();
    let block = blocker.block_entity(at_least(
        BlockEntityRequest {
            id: "vladimir-putin".into(),
            ..Default::default()
        },
        head,
    ));
    let mut writer = nodes[2].articles();
    let more = writer.create_article(create(
        "late",
        "Late",
        "William Clinton and Vladimir Putin met in Helsinki.",
    ));
    let (merged, blocked, late) = tokio::join!(merge, block, more);
    for response in [
        merged.map(|r| position_of(&r)),
        blocked.map(|r| position_of(&r)),
        late.map(|r| position_of(&r)),
    ] {
        head = head.max(response.expect("decision or write succeeds"));
    }

    // Every node reaches the same position with the same state.
    let mut digests = Vec::new();
    for node in &nodes {
        digests.push(node.digest_at(head).await);
    }
    assert!(digests.iter().all(|d| d.position == head), "{digests:?}");
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "the nodes differ: {digests:?}"
    );
    assert!(digests[0].keys > 100, "{digests:?}");

    // The same searches give the same results everywhere, once indexed: the same articles
    // newest first (times are decided once, by the node that took the write). Relevance
    // ranks the same set, but its near ties may fall differently: BM25's statistics count
    // deleted documents until each node's own segment merges drop them.
    for (query, order) in [
        ("Merkel", SearchOrder::PublishedDesc),
        ("Clinton", SearchOrder::PublishedDesc),
        ("Zorblat", SearchOrder::PublishedDesc),
        ("Helsinki", SearchOrder::PublishedDesc),
        ("Merkel", SearchOrder::Relevance),
        ("Clinton OR Putin", SearchOrder::Relevance),
    ] {
        let mut results = Vec::new();
        for node in &nodes {
            let response = node
                .articles()
                .search_articles(at_least(
                    SearchArticlesRequest {
                        query: query.into(),
                        page_size: 100,
                        order: order.into(),
                        ..Default::default()
                    },
                    head,
                ))
                .await
                .expect("search succeeds");
            let mut ids: Vec<String> = response
                .into_inner()
                .hits
                .into_iter()
                .map(|h| h.article.unwrap().id)
                .collect();
            if order == SearchOrder::Relevance {
                ids.sort();
            }
            results.push(ids);
        }
        assert!(!results[0].is_empty(), "{query}: no hits");
        assert!(
            results.windows(2).all(|w| w[0] == w[1]),
            "{query}: {results:?}"
        );
    }

    // One entity for the name two nodes met at once.
    for node in &nodes {
        let entities = node
            .entities()
            .list_entities(at_least(
                ListEntitiesRequest {
                    name_prefix: "Zorblat".into(),
                    page_size: 10,
                    ..Default::default()
                },
                head,
            ))
            .await
            .expect("list succeeds")
            .into_inner()
            .entities;
        let names: Vec<&str> = entities.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Zorblat Quenfield"], "{entities:?}");
        let blocked = node
            .entities()
            .get_entity(proto::GetEntityRequest {
                id: "vladimir-putin".into(),
            })
            .await
            .expect("the blocked entity is found")
            .into_inner()
            .entity
            .unwrap();
        assert!(blocked.blocked, "{blocked:?}");
    }
}
