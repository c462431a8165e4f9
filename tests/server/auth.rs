//! Bearer tokens and scopes: unauthenticated calls get UNAUTHENTICATED, the wrong scope gets
//! PERMISSION_DENIED, health and reflection stay open, reads may be left open.

use newsstore::api::layers::auth::{AuthConfig, TokenConfig};
use newsstore::api::proto::article_service_client::ArticleServiceClient;
use newsstore::api::proto::{self, Article};
use tonic::Code;
use tonic::service::Interceptor;
use tonic::transport::Channel;

use super::support::{TestApp, temp_dir};

const READER: &str = "reader-token-0123456789";
const WRITER: &str = "writer-token-0123456789";
const EDITOR: &str = "editor-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

fn tokens() -> Vec<TokenConfig> {
    AuthConfig::parse_tokens(&format!(
        "reader:{READER}:read,cms:{WRITER}:write,desk:{EDITOR}:editor,ops:{ADMIN}:admin"
    ))
    .unwrap()
}

/// The ErrorInfo of a status: its reason and metadata.
fn error_info(status: &tonic::Status) -> (String, std::collections::HashMap<String, String>) {
    use tonic_types::StatusExt;
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .expect("the status carries ErrorInfo");
    assert_eq!(info.domain, "newsstore.v1");
    (info.reason, info.metadata)
}

#[derive(Clone)]
struct Bearer(Option<&'static str>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = self.0 {
            // The scheme's name in any case (RFC 6750): lower case here.
            request
                .metadata_mut()
                .insert("authorization", format!("bearer {token}").parse().unwrap());
        }
        Ok(request)
    }
}

fn client(
    app: &TestApp,
    token: Option<&'static str>,
) -> ArticleServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>> {
    ArticleServiceClient::with_interceptor(app.channel.clone(), Bearer(token))
}

fn create(id: &str) -> proto::CreateArticleRequest {
    proto::CreateArticleRequest {
        article: Some(Article {
            headline: "Talks".into(),
            body: "Officials met in Geneva.".into(),
            ..Default::default()
        }),
        article_id: id.into(),
        ..Default::default()
    }
}

fn get(id: &str) -> proto::GetArticleRequest {
    proto::GetArticleRequest {
        id: id.into(),
        ..Default::default()
    }
}

fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Option<Code> {
    result.err().map(|status| status.code())
}

#[tokio::test]
async fn tokens_and_scopes_decide_who_may_do_what() {
    let app = TestApp::spawn_with(temp_dir(), |config| {
        config.auth = AuthConfig {
            tokens: tokens(),
            open_reads: false,
        };
    })
    .await;

    // No token, a wrong token: UNAUTHENTICATED, even for reads.
    let status = client(&app, None).get_article(get("a")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("authorization: Bearer"),
        "{}",
        status.message()
    );
    assert_eq!(error_info(&status).0, "TOKEN_MISSING");
    let status = client(&app, Some("not-a-real-token-at-all"))
        .get_article(get("a"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(error_info(&status).0, "TOKEN_INVALID");
    // A read token cannot write.
    let status = client(&app, Some(READER))
        .create_article(create("a"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("needs write"),
        "{}",
        status.message()
    );
    let (reason, metadata) = error_info(&status);
    assert_eq!(reason, "SCOPE_INSUFFICIENT");
    assert_eq!(metadata["scope_needed"], "write");
    assert_eq!(metadata["scope_held"], "read");
    // A write token writes and reads, but cannot purge; admin can.
    client(&app, Some(WRITER))
        .create_article(create("a"))
        .await
        .unwrap();
    client(&app, Some(READER))
        .get_article(get("a"))
        .await
        .unwrap();
    let purge = proto::PurgeArticleRequest {
        id: "a".into(),
        ..Default::default()
    };
    assert_eq!(
        code(
            client(&app, Some(WRITER))
                .purge_article(purge.clone())
                .await
        ),
        Some(Code::PermissionDenied)
    );
    client(&app, Some(ADMIN))
        .purge_article(purge)
        .await
        .unwrap();

    // Editorial decisions on entities need the editor scope: the writer's is not enough.
    let created = client(&app, Some(WRITER))
        .create_article(super::support::create_request(
            "b",
            "Merkel in Paris",
            "Angela Merkel visited Paris on Monday.",
        ))
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();
    let person = created.entities[0].entity_id.clone();
    let entities = |token: &'static str| {
        newsstore::api::proto::entity_service_client::EntityServiceClient::with_interceptor(
            app.channel.clone(),
            Bearer(Some(token)),
        )
    };
    let block = proto::BlockEntityRequest {
        id: person,
        ..Default::default()
    };
    let status = entities(WRITER)
        .block_entity(block.clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(error_info(&status).1["scope_needed"], "editor");
    entities(EDITOR).block_entity(block).await.unwrap();
    // The editor cannot purge.
    let status = client(&app, Some(EDITOR))
        .purge_article(proto::PurgeArticleRequest {
            id: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error_info(&status).1["scope_needed"], "admin");

    // Health stays open for load balancers.
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn reads_can_be_left_open_while_writes_need_a_token() {
    let app = TestApp::spawn_with(temp_dir(), |config| {
        config.auth = AuthConfig {
            tokens: tokens(),
            open_reads: true,
        };
    })
    .await;
    let status = client(&app, None).get_article(get("a")).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "reads pass: the article is simply missing"
    );
    let status = client(&app, None)
        .create_article(create("a"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

/// Asked for authentication but given no token, the server refuses to start (instead of
/// serving every call open), with one plain line: no log copy, no colour codes in a pipe.
#[tokio::test]
async fn an_auth_file_without_tokens_refuses_to_start() {
    let data = temp_dir();
    let auth_file = data.path().join("auth.json");
    std::fs::write(&auth_file, r#"{"tokens": []}"#).unwrap();
    let server = super::process::Server::start(
        &data.path().join("data"),
        &["--auth-file", auth_file.to_str().unwrap()],
    );
    let (started, stderr) = server.exit(std::time::Duration::from_secs(30)).await;
    assert!(!started, "{stderr}");
    assert!(stderr.contains("yield no token"), "{stderr}");
    assert_eq!(stderr.matches("yield no token").count(), 1, "{stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes into a pipe: {stderr:?}"
    );
}
