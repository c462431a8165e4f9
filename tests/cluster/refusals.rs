//! Configurations that would lose or split the cluster's state are refused at start, with
//! a message that names the problem.

use std::time::Duration;

use newsstore::app::Config;

use crate::nats::NatsCluster;
use crate::node::{Node, config, create_request, refused, temp_dir};

async fn create(node: &Node, id: &str) {
    node.articles()
        .create_article(create_request(id, "h", "Angela Merkel spoke."))
        .await
        .expect("create succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_thin_stream_a_foreign_store_and_offline_writes() {
    let Some(nats) = NatsCluster::start().await else {
        return;
    };
    let urls = nats.urls();

    // A stream made with one replica (as a trial would) is refused by a node that needs
    // three, naming the flag that accepts it.
    let data = temp_dir();
    let mut trial = config(&urls, &data, "trial");
    if let Some(cluster) = &mut trial.cluster {
        cluster.stream = "THIN".into();
        cluster.min_replicas = 1;
    }
    let node = Node::launch(data, trial).await;
    drop(node);
    let data = temp_dir();
    let mut strict = config(&urls, &data, "strict");
    if let Some(cluster) = &mut strict.cluster {
        cluster.stream = "THIN".into();
    }
    let message = refused(strict).await;
    assert!(
        message.contains("1 replica(s), fewer than the 3 required")
            && message.contains("--cluster-min-replicas"),
        "{message}"
    );

    // A folder holding an embedded store cannot join: its changes are in no log.
    let data = temp_dir();
    let mut embedded = Config::new("127.0.0.1:0".parse().unwrap(), data.path().to_path_buf());
    embedded.shutdown_grace = Duration::from_millis(300);
    let node = Node::launch(data, embedded).await;
    create(&node, "embedded").await;
    let data = node.stop().await;
    let message = refused(config(&urls, &data, "joiner")).await;
    assert!(message.contains("holds an embedded store"), "{message}");

    // A node's folder refuses offline writes: they would bypass the log.
    let node = Node::start(&urls, "writer").await;
    create(&node, "clustered").await;
    let data = node.stop().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_newsstore"))
        .args(["seed", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("holds a cluster node"), "{stderr}");
}
