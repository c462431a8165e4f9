//! A newsstore node in-process, joined to a test's NATS cluster.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use newsstore::api::proto::article_service_client::ArticleServiceClient;
use newsstore::api::proto::change_service_client::ChangeServiceClient;
use newsstore::api::proto::entity_service_client::EntityServiceClient;
use newsstore::app::{Application, Config};
use newsstore::cluster::ClusterConfig;
use newsstore::store::{StateDigest, Store};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub struct Node {
    pub addr: SocketAddr,
    pub channel: Channel,
    pub data: TempDir,
    pub store: Arc<Store>,
    pub seed_report: newsstore::seed::SeedReport,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

pub fn temp_dir() -> TempDir {
    TempDir::new_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir")
}

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
        Node::start_with(data, config).await
    }

    pub async fn start_with(data: TempDir, config: Config) -> Node {
        let app = Application::build(config).await.expect("node builds");
        let addr = app.local_addr();
        let store = app.store();
        let seed_report = app.seed_report().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        Node {
            addr,
            channel,
            data,
            store,
            seed_report,
            stop: Some(stop),
            server: Some(server),
        }
    }

    pub fn articles(&self) -> ArticleServiceClient<Channel> {
        ArticleServiceClient::new(self.channel.clone())
    }

    pub fn entities(&self) -> EntityServiceClient<Channel> {
        EntityServiceClient::new(self.channel.clone())
    }

    pub fn changes(&self) -> ChangeServiceClient<Channel> {
        ChangeServiceClient::new(self.channel.clone())
    }

    /// Shuts the node down gracefully and hands back its data folder.
    pub async fn stop(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("node task")
                .expect("node stops cleanly");
        }
        let store = self.store.clone();
        drop(store);
        std::mem::replace(&mut self.data, temp_dir())
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

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
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

/// A CreateArticle request for article `id`.
pub fn create_request(
    id: &str,
    headline: &str,
    body: &str,
) -> newsstore::api::proto::CreateArticleRequest {
    newsstore::api::proto::CreateArticleRequest {
        article: Some(newsstore::api::proto::Article {
            headline: headline.into(),
            body: body.into(),
            ..Default::default()
        }),
        article_id: id.into(),
        ..Default::default()
    }
}

/// The `google.rpc.ErrorInfo` reason of a status.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}
