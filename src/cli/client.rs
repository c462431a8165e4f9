//! How the commands that talk to a running server (`backup`, `reextract --server`) reach
//! it: plaintext or TLS, with a client certificate for mutual TLS and the bearer token, all
//! from flags or the same kind of environment variables the server reads.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Flags shared by every client-side command.
#[derive(Debug, Clone, Args)]
pub(super) struct ClientArgs {
    /// The bearer token when the server requires one (its scope must cover the call).
    #[arg(long, env = "NEWSSTORE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA that signed the server's certificate, for a server behind
    /// `https://`. Without it, the system's trusted roots are used.
    #[arg(long, env = "NEWSSTORE_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// PEM certificate this client presents to a server that requires mutual TLS.
    #[arg(long, env = "NEWSSTORE_CLIENT_CERT", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, env = "NEWSSTORE_CLIENT_KEY", requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// The name the server's certificate must carry, when it differs from the host in
    /// --server (for example when connecting by IP address).
    #[arg(long, env = "NEWSSTORE_TLS_SERVER_NAME")]
    tls_server_name: Option<String>,
}

impl ClientArgs {
    /// A channel to `server`: `host:port` or `http://host:port` for plaintext,
    /// `https://host:port` for TLS. TLS options given with a plaintext address are refused
    /// rather than ignored, so a token is never sent in the clear by mistake.
    pub async fn connect(&self, server: &str) -> anyhow::Result<Channel> {
        let url = if server.contains("://") {
            server.to_string()
        } else {
            format!("http://{server}")
        };
        let mut endpoint = Endpoint::from_shared(url.clone())
            .with_context(|| format!("--server {server} is not a valid address"))?;
        if url.starts_with("https://") {
            endpoint = endpoint.tls_config(self.tls()?).with_context(|| {
                format!("cannot set up TLS for {url}; check --ca-cert and --client-cert")
            })?;
        } else if url.starts_with("http://") {
            if self.ca_cert.is_some() || self.client_cert.is_some() {
                anyhow::bail!(
                    "--ca-cert/--client-cert were given, but --server {server} is plaintext; \
                     use https://{} for TLS",
                    url.trim_start_matches("http://")
                );
            }
        } else {
            anyhow::bail!("--server {server}: the scheme must be http:// or https://");
        }
        endpoint.connect().await.map_err(|err| {
            anyhow::anyhow!("cannot reach a newsstore server at {url}: {}", chain(&err))
        })
    }

    fn tls(&self) -> anyhow::Result<ClientTlsConfig> {
        let mut tls = ClientTlsConfig::new();
        tls = match &self.ca_cert {
            Some(path) => tls.ca_certificate(Certificate::from_pem(read(path, "--ca-cert")?)),
            None => tls.with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            tls = tls.identity(Identity::from_pem(
                read(cert, "--client-cert")?,
                read(key, "--client-key")?,
            ));
        }
        if let Some(name) = &self.tls_server_name {
            tls = tls.domain_name(name.clone());
        }
        Ok(tls)
    }

    /// A status from the server at `server` as one line an operator can act on: the code's
    /// name and the server's message (which says what to change), not tonic's debug
    /// rendering; a connection cut during a TLS call without a client certificate is most
    /// often a server that requires mutual TLS, so the line says that.
    pub fn refused(&self, server: &str, status: tonic::Status) -> anyhow::Error {
        // A TLS server that wants a client certificate rejects the handshake after the
        // client thinks it is done, so the first call fails in one of these, depending on
        // timing.
        let cut = matches!(
            status.code(),
            tonic::Code::Cancelled | tonic::Code::Unavailable | tonic::Code::Unknown
        );
        let hint = if cut && server.starts_with("https://") && self.client_cert.is_none() {
            " (the connection was cut: if the server requires mutual TLS, give --client-cert \
             and --client-key)"
        } else {
            ""
        };
        let mut message = status.message().to_string();
        if let Some(source) = std::error::Error::source(&status) {
            let causes = chain(source);
            if !message.contains(&causes) {
                message = format!("{message}: {causes}");
            }
        }
        anyhow::anyhow!("{server} answered {:?}: {message}{hint}", status.code())
    }

    /// `message` as a request carrying the bearer token, when there is one.
    pub fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            let value = format!("Bearer {token}")
                .parse()
                .context("the token (--token, NEWSSTORE_TOKEN) is not a valid header value")?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

fn read(path: &std::path::Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {flag} {}", path.display()))
}

/// A transport error with its causes: tonic's own text is only "transport error", and the
/// reason (refused, bad certificate, TLS to a plaintext server) is further down.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        // Some layers repeat their cause in their own text; say each thing once.
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}
