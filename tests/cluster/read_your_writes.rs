//! A write's position, sent with a read to another node, makes that read see the write.

use newsstore::api::proto::{GetArticleRequest, SearchArticlesRequest, WatchChangesRequest};
use tonic::Code;

use crate::nats::NatsCluster;
use crate::node::{Node, at_least, create_request, position_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_is_read_on_another_node_with_its_position() {
    let Some(nats) = NatsCluster::start().await else {
        return;
    };
    let urls = nats.urls();
    let writer = Node::start(&urls, "writer").await;
    let reader = Node::start(&urls, "reader").await;
    // A node that follows the log says so.
    let health = tonic_health::pb::health_client::HealthClient::new(reader.channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "newsstore.v1.Log".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    for k in 0..20 {
        let id = format!("ryw-{k}");
        let created = writer
            .articles()
            .create_article(create_request(
                &id,
                &format!("Quarterly figures {k}"),
                &format!("Xylophonic results number {k} were published in Leeds."),
            ))
            .await
            .expect("create succeeds");
        let position = position_of(&created);
        assert!(position > 0);

        // GetArticle on the other node, at once.
        let read = reader
            .articles()
            .get_article(at_least(
                GetArticleRequest {
                    id: id.clone(),
                    ..Default::default()
                },
                position,
            ))
            .await
            .expect("the other node has the write");
        assert!(position_of(&read) >= position);
        assert_eq!(read.into_inner().article.unwrap().id, id);

        // SearchArticles on the other node: indexed too.
        let hits = reader
            .articles()
            .search_articles(at_least(
                SearchArticlesRequest {
                    query: format!("xylophonic {k}"),
                    page_size: 50,
                    ..Default::default()
                },
                position,
            ))
            .await
            .expect("search succeeds")
            .into_inner()
            .hits;
        assert!(
            hits.iter().any(|h| h.article.as_ref().unwrap().id == id),
            "round {k}: the other node's search missed {id}"
        );

        // WatchChanges on the other node: the change is delivered.
        let mut stream = reader
            .changes()
            .watch_changes(at_least(
                WatchChangesRequest {
                    after_sequence: 0,
                    ..Default::default()
                },
                position,
            ))
            .await
            .expect("watch starts")
            .into_inner();
        let mut seen = false;
        while let Ok(Some(change)) =
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
                .await
                .expect("changes arrive")
        {
            if change.article_id == id {
                seen = true;
                break;
            }
        }
        assert!(seen, "round {k}: the other node's change feed missed {id}");
    }

    // A position no node has reached: refused within the deadline, not served stale.
    let mut request = at_least(
        GetArticleRequest {
            id: "ryw-0".into(),
            ..Default::default()
        },
        1_000_000,
    );
    request.set_timeout(std::time::Duration::from_secs(1));
    let err = reader
        .articles()
        .get_article(request)
        .await
        .expect_err("an unreached position is refused");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(crate::node::reason(&err), "NOT_CAUGHT_UP", "{err:?}");
}
