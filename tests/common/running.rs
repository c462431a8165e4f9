//! A newsstore server running in-process for a test: built from a `Config` on port 0, served
//! on a task, reached through the generated clients, shut down gracefully. Shared by the
//! test binaries (`tests/server`, `tests/cluster`), which add their own ways to start one.

use std::net::SocketAddr;
use std::sync::Arc;

use newsstore::api::proto::article_service_client::ArticleServiceClient;
use newsstore::api::proto::change_service_client::ChangeServiceClient;
use newsstore::api::proto::entity_service_client::EntityServiceClient;
use newsstore::api::proto::{Article, CreateArticleRequest};
use newsstore::app::{Application, Config};
use newsstore::seed::SeedReport;
use newsstore::store::Store;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A running server and its data folder.
pub struct Running {
    pub addr: SocketAddr,
    /// Where metrics are served, when the config asked for them.
    #[allow(
        dead_code,
        reason = "the server tests read it; the cluster tests do not"
    )]
    pub metrics: Option<SocketAddr>,
    pub channel: Channel,
    pub data: TempDir,
    /// The server's store, for what only a test looks at (digests, positions).
    #[allow(
        dead_code,
        reason = "the cluster tests read it; the server tests do not"
    )]
    pub store: Arc<Store>,
    pub seed_report: SeedReport,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A temporary folder under cargo's per-target scratch space rather than the system's
/// /tmp: a server that is still flushing when its test ends can leave files behind, and
/// there they go with `cargo clean`.
pub fn temp_dir() -> TempDir {
    TempDir::new_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir")
}

impl Running {
    /// Builds a server from `config` (whose data folder is `data`) and serves it.
    pub async fn launch(data: TempDir, config: Config) -> Running {
        let app = Application::build(config).await.expect("server builds");
        let addr = app.local_addr();
        let metrics = app.metrics_addr();
        let store = app.store();
        let seed_report = app.seed_report().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        // Lazy: a TLS server's tests connect with their own channel.
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("an address")
            .connect_lazy();
        Running {
            addr,
            metrics,
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

    /// Shuts the server down gracefully (it must stop cleanly) and hands back its data
    /// folder.
    pub async fn stop(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
        std::mem::replace(&mut self.data, temp_dir())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A CreateArticle request for article `id` with `headline` and `body`.
pub fn create_request(id: &str, headline: &str, body: &str) -> CreateArticleRequest {
    CreateArticleRequest {
        article: Some(Article {
            headline: headline.into(),
            body: body.into(),
            ..Article::default()
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
