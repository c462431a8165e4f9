//! TLS with rustls, and mutual TLS for service-to-service callers.

use newsstore::api::proto::article_service_client::ArticleServiceClient;
use newsstore::api::proto::{self};
use newsstore::app::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use super::support::{TestApp, temp_dir};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A certificate for `name` signed by this CA: (certificate PEM, key PEM).
    fn issue(&self, name: &str) -> (String, String) {
        let params = CertificateParams::new(vec![name.to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

async fn tls_channel(
    app: &TestApp,
    ca: &Ca,
    client: Option<(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.cert.pem()))
        .domain_name("localhost");
    if let Some((cert, key)) = client {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Channel::from_shared(format!("https://localhost:{}", app.addr.port()))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

async fn ping(channel: Channel) -> Result<(), tonic::Status> {
    let status = ArticleServiceClient::new(channel)
        .get_article(proto::GetArticleRequest {
            id: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    // NOT_FOUND means the call went through TLS to the service.
    if status.code() == tonic::Code::NotFound {
        Ok(())
    } else {
        Err(status)
    }
}

fn serve_tls(ca: &Ca, client_ca: Option<&Ca>) -> (tempfile::TempDir, TlsFiles) {
    let files = temp_dir();
    let (cert, key) = ca.issue("localhost");
    std::fs::write(files.path().join("cert.pem"), cert).unwrap();
    std::fs::write(files.path().join("key.pem"), key).unwrap();
    let client_ca = client_ca.map(|client_ca| {
        let path = files.path().join("client-ca.pem");
        std::fs::write(&path, client_ca.cert.pem()).unwrap();
        path
    });
    let tls = TlsFiles {
        cert: files.path().join("cert.pem"),
        key: files.path().join("key.pem"),
        client_ca,
    };
    (files, tls)
}

#[tokio::test]
async fn serves_tls_and_refuses_plaintext() {
    let ca = Ca::new();
    let (_files, tls) = serve_tls(&ca, None);
    let app = TestApp::spawn_with(temp_dir(), |config| config.tls = Some(tls)).await;
    ping(tls_channel(&app, &ca, None).await.unwrap())
        .await
        .unwrap();
    // A plaintext client gets no service.
    let plaintext = ArticleServiceClient::new(app.channel.clone())
        .get_article(proto::GetArticleRequest {
            id: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_ne!(plaintext.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_the_ca() {
    let server_ca = Ca::new();
    let client_ca = Ca::new();
    let (_files, tls) = serve_tls(&server_ca, Some(&client_ca));
    let app = TestApp::spawn_with(temp_dir(), |config| config.tls = Some(tls)).await;
    let trusted = client_ca.issue("cms.internal");
    ping(tls_channel(&app, &server_ca, Some(trusted)).await.unwrap())
        .await
        .unwrap();
    // No client certificate, or one from another CA: the handshake or the call fails.
    for client in [None, Some(Ca::new().issue("intruder"))] {
        let refused = match tls_channel(&app, &server_ca, client).await {
            Err(_) => true,
            Ok(channel) => ping(channel).await.is_err(),
        };
        assert!(refused);
    }
}

#[tokio::test]
async fn unreadable_certificates_fail_at_startup_with_the_file_named() {
    let mut config = newsstore::app::Config::new(
        "127.0.0.1:0".parse().unwrap(),
        temp_dir().path().to_path_buf(),
    );
    config.tls = Some(TlsFiles {
        cert: "/nonexistent/cert.pem".into(),
        key: "/nonexistent/key.pem".into(),
        client_ca: None,
    });
    let error = newsstore::app::Application::build(config)
        .await
        .err()
        .expect("startup fails");
    assert!(
        format!("{error:#}").contains("/nonexistent/cert.pem"),
        "{error:#}"
    );
}

/// The client-side commands reach a mutual-TLS server that requires a token: `https://`,
/// the server's CA, the client's certificate and the token from the environment, as an
/// operator would run them against a real deployment.
#[tokio::test]
async fn the_cli_backs_up_and_reextracts_through_mutual_tls_with_a_token() {
    let server_ca = Ca::new();
    let client_ca = Ca::new();
    let (files, tls) = serve_tls(&server_ca, Some(&client_ca));
    let app = TestApp::spawn_with(temp_dir(), |config| {
        config.tls = Some(tls);
        config.auth = newsstore::api::layers::auth::AuthConfig {
            tokens: newsstore::api::layers::auth::AuthConfig::parse_tokens(
                "ops:admin-token-0123456789:admin",
            )
            .unwrap(),
            open_reads: false,
        };
    })
    .await;
    let path = |name: &str| files.path().join(name).to_str().unwrap().to_string();
    std::fs::write(path("ca.pem"), server_ca.cert.pem()).unwrap();
    let (cert, key) = client_ca.issue("ops.internal");
    std::fs::write(path("client.pem"), cert).unwrap();
    std::fs::write(path("client-key.pem"), key).unwrap();
    let https = format!("https://localhost:{}", app.addr.port());
    let out = path("news.backup");
    let cli = |args: Vec<String>, token: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_newsstore"));
        command.args(&args).env_remove("NEWSSTORE_TOKEN");
        if let Some(token) = token {
            command.env("NEWSSTORE_TOKEN", token);
        }
        async move {
            let output = tokio::task::spawn_blocking(move || command.output().unwrap())
                .await
                .unwrap();
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
    };
    let tls_args = |command: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        args.extend(
            [
                "--server",
                &https,
                "--ca-cert",
                &path("ca.pem"),
                "--client-cert",
                &path("client.pem"),
                "--client-key",
                &path("client-key.pem"),
            ]
            .map(String::from),
        );
        args
    };

    let (ok, stdout, stderr) = cli(
        tls_args(&["backup", "--out", &out]),
        Some("admin-token-0123456789"),
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("backup of"), "{stdout}");
    assert!(std::fs::metadata(&out).unwrap().len() > 0);

    let (ok, stdout, stderr) = cli(
        tls_args(&["reextract", "--data-dir", &path("unused")]),
        Some("admin-token-0123456789"),
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("re-extracted"), "{stdout}");

    // Without the token: the server's answer, by name, on one line.
    let (ok, _, stderr) = cli(tls_args(&["backup", "--out", &out]), None).await;
    assert!(!ok);
    assert!(stderr.contains("Unauthenticated"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // Without the client certificate the handshake fails, and the error says so.
    let (ok, _, stderr) = cli(
        vec![
            "backup".into(),
            "--out".into(),
            out.clone(),
            "--server".into(),
            https.clone(),
            "--ca-cert".into(),
            path("ca.pem"),
        ],
        Some("admin-token-0123456789"),
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains(&https), "{stderr}");
    assert!(stderr.contains("--client-cert"), "{stderr}");

    // TLS options with a plaintext address are refused, not ignored.
    let (ok, _, stderr) = cli(
        vec![
            "backup".into(),
            "--out".into(),
            out.clone(),
            "--server".into(),
            app.addr.to_string(),
            "--ca-cert".into(),
            path("ca.pem"),
        ],
        Some("admin-token-0123456789"),
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("plaintext"), "{stderr}");
}

/// A client that starts a TLS handshake and stalls is cut off after
/// `--handshake-timeout-secs`, so stalled handshakes cannot hold connections.
#[tokio::test]
async fn a_stalled_tls_handshake_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new();
    let (_files, tls) = serve_tls(&ca, None);
    let app = TestApp::spawn_with(temp_dir(), |config| {
        config.tls = Some(tls);
        config.handshake_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // A TLS record header announcing a 512-byte ClientHello, then nothing.
    socket
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the stalled handshake was not closed");
}
