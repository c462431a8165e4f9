//! Starting and stopping real servers for tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use newsstore::api::proto::{self, Article};
use newsstore::app::Config;
use tempfile::TempDir;

pub use crate::running::{Running, create_request, reason, temp_dir};

/// A server of these tests: see [`Running`].
pub type TestApp = Running;

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
        Running::launch(data, config).await
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

/// A search request for `query`.
pub fn search(query: &str) -> proto::SearchArticlesRequest {
    proto::SearchArticlesRequest {
        query: query.into(),
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
