//! Joining and catching up: a node with an empty data folder starts from the cluster's
//! newest snapshot (the log before it trimmed away, so replaying is impossible), and a
//! node stopped for a while catches up from its own position; both end with the state of
//! the node that stayed.

use std::time::Duration;

use futures_util::StreamExt;

use crate::nats::NatsCluster;
use crate::node::{Node, config, create_request, position_of, temp_dir};

async fn write(node: &Node, from: usize, to: usize) -> u64 {
    let mut position = 0;
    for k in from..to {
        let response = node
            .articles()
            .create_article(create_request(
                &format!("j{k}"),
                &format!("Story {k}"),
                &format!("Angela Merkel visited Lyon, story {k}."),
            ))
            .await
            .expect("create succeeds");
        position = position_of(&response);
    }
    position
}

/// The newest snapshot's position in the cluster's bucket, once there is one at or past
/// `position`.
async fn snapshot_at(urls: &[String], position: u64) -> u64 {
    let client = async_nats::connect(urls.to_vec())
        .await
        .expect("NATS connects");
    let js = async_nats::jetstream::new(client);
    for _ in 0..300 {
        if let Ok(bucket) = js.get_object_store("NEWSSTORE-snapshots").await
            && let Ok(mut objects) = bucket.list().await
        {
            let mut newest = 0;
            while let Some(Ok(info)) = objects.next().await {
                if let Some(p) = info.metadata.get("position").and_then(|p| p.parse().ok()) {
                    newest = newest.max(p);
                }
            }
            if newest >= position {
                return newest;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no snapshot at position {position} within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_node_joins_from_a_snapshot_and_a_stopped_one_catches_up() {
    let Some(nats) = NatsCluster::start().await else {
        return;
    };
    let urls = nats.urls();
    let data = temp_dir();
    let mut first = config(&urls, &data, "first");
    if let Some(cluster) = &mut first.cluster {
        cluster.snapshot_every = Duration::from_secs(1);
    }
    let first = Node::launch(data, first).await;
    let resting = Node::start(&urls, "resting").await;

    let before = write(&first, 0, 30).await;
    let snapshot = snapshot_at(&urls, before).await;
    resting.digest_at(before).await;
    let rested_at = resting.store.position();
    let resting = resting.stop().await;

    let head = write(&first, 30, 50).await;
    assert!(head > snapshot);
    // Trim the log below what both the snapshot and the resting node hold: replaying it
    // from the start is no longer possible.
    let client = async_nats::connect(urls.clone())
        .await
        .expect("NATS connects");
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("NEWSSTORE").await.expect("the stream");
    stream
        .purge()
        .sequence(snapshot.min(rested_at) + 1)
        .await
        .expect("purge");

    let joined = Node::start(&urls, "joined").await;
    let expected = first.digest_at(head).await;
    assert_eq!(joined.digest_at(head).await, expected);

    let again = config(&urls, &resting, "rested");
    let rested = Node::launch(resting, again).await;
    assert_eq!(rested.digest_at(head).await, expected);

    // All three go on together.
    let after = write(&joined, 50, 55).await;
    let expected = first.digest_at(after).await;
    assert_eq!(joined.digest_at(after).await, expected);
    assert_eq!(rested.digest_at(after).await, expected);
}

/// Every node loads the seeds folder at start, as embedded mode does: the first creates the
/// articles through the log, the next finds them there and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_started_with_the_seeds_load_them_once() {
    let Some(nats) = NatsCluster::start().await else {
        return;
    };
    let urls = nats.urls();
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let mut nodes = Vec::new();
    for name in ["seeded-1", "seeded-2"] {
        let data = temp_dir();
        let mut seeded = config(&urls, &data, name);
        seeded.seeds = Some(seeds.clone());
        nodes.push(Node::launch(data, seeded).await);
    }
    let reports: Vec<_> = nodes.iter().map(|n| n.seed_report.clone()).collect();
    assert!(reports[0].created > 0, "{:?}", reports[0]);
    assert!(reports[0].skipped.is_empty(), "{:?}", reports[0]);
    assert_eq!(reports[1].created, 0, "{:?}", reports[1]);
    assert_eq!(reports[1].updated, 0, "{:?}", reports[1]);
    assert_eq!(reports[1].unchanged, reports[0].created, "{:?}", reports[1]);
    let head = nodes[0].store.position();
    assert_eq!(
        nodes[1].digest_at(head).await,
        nodes[0].digest_at(head).await
    );
}
