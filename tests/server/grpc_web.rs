//! gRPC-Web over HTTP/1.1, as a browser sends it, and the CORS policy in front of it.

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use newsstore::api::proto;

use super::support::{TestApp, temp_dir};

/// Sends one raw HTTP/1.1 request and returns the status line, headers (lower-cased) and
/// body (de-chunked).
pub(super) async fn http(
    app: &TestApp,
    request: Vec<u8>,
) -> (String, Vec<(String, String)>, Vec<u8>) {
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket.write_all(&request).await.unwrap();
    let mut raw = Vec::new();
    socket.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[end + 2..end + 2 + size]);
            rest = &rest[end + 2 + size + 2..];
        }
        body = out;
    }
    (status, headers, body)
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn grpc_web_call(app: &TestApp, method: &str, message: &impl Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(&payload);
    let mut request = format!(
        "POST /{method} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/grpc-web+proto\r\n\
         X-Grpc-Web: 1\r\nOrigin: https://cms.example.com\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        app.addr,
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request
}

/// The data frames' messages and the trailers frame's text of a gRPC-Web body.
fn frames(body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut messages, mut trailers) = (Vec::new(), String::new());
    let mut rest = body;
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let frame = &rest[5..5 + len];
        if flag & 0x80 == 0 {
            messages.push(frame.to_vec());
        } else {
            trailers = String::from_utf8(frame.to_vec()).unwrap();
        }
        rest = &rest[5 + len..];
    }
    (messages, trailers)
}

#[tokio::test]
async fn a_browser_calls_through_grpc_web_with_cors() {
    let app = TestApp::spawn_with(temp_dir(), |config| {
        config.cors_origins = vec!["https://cms.example.com".into()];
    })
    .await;
    app.create("web", "Talks", "John Kerry met officials in Geneva.")
        .await;

    let request = grpc_web_call(
        &app,
        "newsstore.v1.ArticleService/GetArticle",
        &proto::GetArticleRequest {
            id: "web".into(),
            ..Default::default()
        },
    );
    let (status, headers, body) = http(&app, request).await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/grpc-web+proto")
    );
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some("https://cms.example.com")
    );
    let (messages, trailers) = frames(&body);
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");
    let response = proto::GetArticleResponse::decode(&messages[0][..]).unwrap();
    assert_eq!(response.article.unwrap().headline, "Talks");

    // Errors arrive as gRPC statuses in the trailers.
    let request = grpc_web_call(
        &app,
        "newsstore.v1.ArticleService/GetArticle",
        &proto::GetArticleRequest {
            id: "missing".into(),
            ..Default::default()
        },
    );
    let (_, headers, body) = http(&app, request).await;
    let status = header(&headers, "grpc-status")
        .map(str::to_string)
        .unwrap_or_else(|| frames(&body).1);
    assert!(
        status == "5" || status.contains("grpc-status:5\r\n"),
        "NOT_FOUND expected: {status:?}"
    );

    // The preflight a browser sends first: allowed for the configured origin only.
    let preflight = |origin: &str| {
        format!(
            "OPTIONS /newsstore.v1.ArticleService/GetArticle HTTP/1.1\r\nHost: {}\r\n\
             Origin: {origin}\r\nAccess-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: content-type,x-grpc-web\r\n\
             Connection: close\r\n\r\n",
            app.addr
        )
        .into_bytes()
    };
    let (status, headers, _) = http(&app, preflight("https://cms.example.com")).await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some("https://cms.example.com")
    );
    let allowed = header(&headers, "access-control-allow-headers").unwrap_or_default();
    assert!(allowed.contains("x-grpc-web"), "{allowed}");
    let (_, headers, _) = http(&app, preflight("https://evil.example.net")).await;
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
}

/// A wildcard origin with no tokens would let any web page write, purge and take backups
/// through a visitor's browser: the server refuses to start, saying what to do; with tokens
/// it starts.
#[tokio::test]
async fn any_origin_without_tokens_is_refused() {
    let data = temp_dir();
    let mut config =
        newsstore::app::Config::new("127.0.0.1:0".parse().unwrap(), data.path().to_path_buf());
    config.cors_origins = vec!["*".into()];
    let error = newsstore::app::Application::build(config.clone())
        .await
        .err()
        .expect("startup is refused");
    let message = format!("{error:#}");
    assert!(
        message.contains("--cors-origins") && message.contains("tokens"),
        "{message}"
    );
    config.auth = newsstore::api::layers::auth::AuthConfig {
        tokens: newsstore::api::layers::auth::AuthConfig::parse_tokens(
            "cms:cms-token-0123456789:write",
        )
        .unwrap(),
        open_reads: false,
    };
    assert!(newsstore::app::Application::build(config).await.is_ok());
}
