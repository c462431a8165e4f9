//! Starting and stopping real servers for tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use newsstore::api::proto::article_service_client::ArticleServiceClient;
use newsstore::api::proto::change_service_client::ChangeServiceClient;
use newsstore::api::proto::entity_service_client::EntityServiceClient;
use newsstore::api::proto::{self, Article};
use newsstore::app::{Application, Config};
use newsstore::seed::SeedReport;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A running server and its data folder.
pub struct TestApp {
    pub addr: SocketAddr,
    /// Where metrics are served, when the config asked for them.
    pub metrics: Option<SocketAddr>,
    pub channel: Channel,
    pub data: TempDir,
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

/// The repository's seeds folder.
pub fn repo_seeds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds")
}

impl TestApp {
    /// A server with an empty database and no seeds.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(temp_dir(), |_| {}).await
    }

    /// A server with the repository's seeds loaded.
    pub async fn spawn_seeded() -> TestApp {
        Self::spawn_with(temp_dir(), |config| {
            config.seeds = Some(repo_seeds());
        })
        .await
    }

    /// A server on `data`, configured further by `configure`.
    pub async fn spawn_with(data: TempDir, configure: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), data.path().to_path_buf());
        config.index_refresh = Duration::from_millis(20);
        config.shutdown_grace = Duration::from_millis(300);
        configure(&mut config);
        let app = Application::build(config).await.expect("server builds");
        let addr = app.local_addr();
        let metrics = app.metrics_addr();
        let seed_report = app.seed_report().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        // Lazy: a TLS server's tests connect with their own channel.
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        TestApp {
            addr,
            metrics,
            channel,
            data,
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

    /// Shuts the server down gracefully and hands back its data folder.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown().await;
        let data = temp_dir();
        std::mem::replace(&mut self.data, data)
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }

    /// GetArticle in the full view.
    pub async fn get(&self, id: &str) -> Result<Article, tonic::Status> {
        let response = self
            .articles()
            .get_article(proto::GetArticleRequest {
                id: id.into(),
                view: 0,
                ..Default::default()
            })
            .await?;
        Ok(response.into_inner().article.expect("article returned"))
    }

    /// GetEntity.
    pub async fn entity(&self, id: &str) -> Result<proto::Entity, tonic::Status> {
        let response = self
            .entities()
            .get_entity(proto::GetEntityRequest { id: id.into() })
            .await?;
        Ok(response.into_inner().entity.expect("entity returned"))
    }

    /// Sends a CreateArticle that must succeed and returns the article.
    pub async fn create_with(&self, request: proto::CreateArticleRequest) -> Article {
        self.articles()
            .create_article(request)
            .await
            .expect("create succeeds")
            .into_inner()
            .article
            .expect("article returned")
    }

    /// Sends an UpdateArticle that must succeed and returns the article.
    pub async fn update_with(&self, request: proto::UpdateArticleRequest) -> Article {
        self.articles()
            .update_article(request)
            .await
            .expect("update succeeds")
            .into_inner()
            .article
            .expect("article returned")
    }

    /// Creates an article and returns it.
    pub async fn create(&self, id: &str, headline: &str, body: &str) -> Article {
        self.articles()
            .create_article(create_request(id, headline, body))
            .await
            .expect("create succeeds")
            .into_inner()
            .article
            .expect("article returned")
    }

    /// Searches until `check` accepts the response or ten seconds pass (the index refreshes
    /// asynchronously), returning the last response.
    pub async fn search_until(
        &self,
        request: proto::SearchArticlesRequest,
        check: impl Fn(&proto::SearchArticlesResponse) -> bool,
    ) -> proto::SearchArticlesResponse {
        let mut last = None;
        for _ in 0..200 {
            let response = self
                .articles()
                .search_articles(request.clone())
                .await
                .expect("search succeeds")
                .into_inner();
            if check(&response) {
                return response;
            }
            last = Some(response);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        last.expect("at least one search ran")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A search request for `query`.
pub fn search(query: &str) -> proto::SearchArticlesRequest {
    proto::SearchArticlesRequest {
        query: query.into(),
        ..Default::default()
    }
}

/// A CreateArticle request for article `id` with `headline` and `body`.
pub fn create_request(id: &str, headline: &str, body: &str) -> proto::CreateArticleRequest {
    proto::CreateArticleRequest {
        article: Some(Article {
            headline: headline.into(),
            body: body.into(),
            ..Article::default()
        }),
        article_id: id.into(),
        ..Default::default()
    }
}

/// The ErrorInfo metadata of a status (empty without one).
pub fn metadata(status: &tonic::Status) -> std::collections::HashMap<String, String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|info| info.metadata.clone())
        .unwrap_or_default()
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

/// Runs the newsstore binary with `args`: whether it succeeded, its stdout and its stderr.
pub fn run_cli(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_newsstore"))
        .args(args)
        .output()
        .expect("the newsstore binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
