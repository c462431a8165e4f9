//! A newsstore node in-process, joined to a test's NATS cluster.

use std::time::Duration;

use newsstore::app::{Application, Config};
use newsstore::cluster::ClusterConfig;
use newsstore::store::StateDigest;
use tempfile::TempDir;

pub use crate::running::{Running, create_request, reason, temp_dir};

/// Why a node with `config` refused to start (it must, within a minute): the whole chain of
/// causes, as the operator would read it.
pub async fn refused(config: Config) -> String {
    let name = config
        .cluster
        .as_ref()
        .map(|c| c.node_name.clone())
        .unwrap_or_default();
    let outcome = tokio::time::timeout(Duration::from_secs(60), Application::build(config))
        .await
        .expect("refused within a minute");
    match outcome {
        Ok(_) => panic!("{name}: the node started"),
        Err(err) => format!("{err:#}"),
    }
}

/// A node: a server started with a cluster configuration (see [`config`]).
pub type Node = Running;

/// The configuration of node `name` on `urls`, data in `data`.
pub fn config(urls: &[String], data: &TempDir, name: &str) -> Config {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), data.path().to_path_buf());
    config.index_refresh = Duration::from_millis(20);
    config.shutdown_grace = Duration::from_millis(300);
    let mut cluster = ClusterConfig::new(urls.to_vec());
    cluster.node_name = name.to_string();
    cluster.append_timeout = Duration::from_secs(20);
    // Only the tests of snapshots take them.
    cluster.snapshot_every = Duration::ZERO;
    config.cluster = Some(cluster);
    config
}

impl Node {
    /// Starts a node on `urls` with a new data folder.
    pub async fn start(urls: &[String], name: &str) -> Node {
        let data = temp_dir();
        let config = config(urls, &data, name);
        Node::launch(data, config).await
    }

    /// The node's state digest once it has applied `position` (waiting up to 30 s).
    pub async fn digest_at(&self, position: u64) -> StateDigest {
        let mut watch = self.store.watch_position();
        tokio::time::timeout(Duration::from_secs(30), watch.wait_for(|&p| p >= position))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "node {} did not reach position {position} (it is at {})",
                    self.addr,
                    self.store.position()
                )
            })
            .expect("position watch");
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.digest())
            .await
            .unwrap()
            .expect("digest")
    }
}

/// The position an answer carries (`x-newsstore-position`).
pub fn position_of<T>(response: &tonic::Response<T>) -> u64 {
    response
        .metadata()
        .get("x-newsstore-position")
        .expect("the answer carries its position")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// `message` as a request that asks for `position` first.
pub fn at_least<T>(message: T, position: u64) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "x-newsstore-min-position",
        position.to_string().parse().unwrap(),
    );
    request
}
