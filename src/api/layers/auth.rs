//! Who may do what: optional bearer tokens with scopes, checked before any service runs.
//!
//! A tower layer in front of every service reads the gRPC method from the request path and
//! the token from `authorization: Bearer …`, so one table here decides every method's
//! scope, and services never see a request they should not. Tokens are compared as SHA-256
//! digests in constant time, against every configured token, so neither timing nor length
//! tells a caller how close a guess was; they are never logged (the token's name is).
//! Health and reflection stay open: load balancers and grpcurl need them.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;

use super::call_span::CallContext;
use super::{BoxFuture, Layer, Layered};
use crate::error::{Denied, Error};

/// What a token may do. Each scope includes the ones before it: write can read, editor can
/// write, admin can do everything.
///
/// `editor` exists because editorial decisions about entities (rename, merge, block) rewrite
/// every article that mentions them: a content pipeline that creates and updates articles
/// (`write`) should not be able to, an editorial desk should, and neither needs the
/// operator's powers (purge, re-extraction, backup: `admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Editor,
    Admin,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Editor => "editor",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One caller's token, as configured. Its `Debug` leaves the token out.
#[derive(Clone, Deserialize)]
pub struct TokenConfig {
    /// A name for logs (the token itself is never logged).
    pub name: String,
    pub token: String,
    pub scope: Scope,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("scope", &self.scope)
            .finish()
    }
}

/// The authentication settings: none configured means every call is allowed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Reads need no token (writes still do).
    #[serde(default)]
    pub open_reads: bool,
}

impl AuthConfig {
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Reads `{"tokens": [{"name", "token", "scope"}], "open_reads": bool}` from a JSON
    /// file.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<AuthConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the auth file {}: {e}", path.display()))?;
        let config: AuthConfig = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "the auth file {} is not valid (expected {{\"tokens\": [{{\"name\": …, \
                 \"token\": …, \"scope\": \"read\"|\"write\"|\"admin\"}}], \"open_reads\": \
                 false}}): {e}",
                path.display()
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses `name:token:scope` entries separated by commas (for the environment).
    pub fn parse_tokens(text: &str) -> anyhow::Result<Vec<TokenConfig>> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let mut parts = entry.splitn(3, ':');
                let (Some(name), Some(token), Some(scope)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    anyhow::bail!("a token entry must be name:token:scope");
                };
                let scope = match scope {
                    "read" => Scope::Read,
                    "write" => Scope::Write,
                    "editor" => Scope::Editor,
                    "admin" => Scope::Admin,
                    other => anyhow::bail!(
                        "token {name:?} has scope {other:?}; use read, write, editor or admin"
                    ),
                };
                Ok(TokenConfig {
                    name: name.to_string(),
                    token: token.to_string(),
                    scope,
                })
            })
            .collect()
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        for token in &self.tokens {
            if token.token.len() < 16 {
                anyhow::bail!(
                    "token {:?} is shorter than 16 characters; use a long random token",
                    token.name
                );
            }
        }
        Ok(())
    }
}

/// The scope each method of the API needs: the table docs/operations.md publishes (a test
/// checks the two agree, and that every served method is here).
pub const SCOPES: &[(&str, Scope)] = &[
    ("newsstore.v1.ArticleService/GetArticle", Scope::Read),
    ("newsstore.v1.ArticleService/ListArticles", Scope::Read),
    ("newsstore.v1.ArticleService/SearchArticles", Scope::Read),
    (
        "newsstore.v1.ArticleService/ListArticleRevisions",
        Scope::Read,
    ),
    (
        "newsstore.v1.ArticleService/CompareArticleRevisions",
        Scope::Read,
    ),
    ("newsstore.v1.EntityService/GetEntity", Scope::Read),
    ("newsstore.v1.EntityService/ListEntities", Scope::Read),
    (
        "newsstore.v1.EntityService/ListRelatedEntities",
        Scope::Read,
    ),
    ("newsstore.v1.EntityService/ListQuotes", Scope::Read),
    ("newsstore.v1.ChangeService/WatchChanges", Scope::Read),
    ("newsstore.v1.ArticleService/CreateArticle", Scope::Write),
    ("newsstore.v1.ArticleService/UpdateArticle", Scope::Write),
    ("newsstore.v1.ArticleService/DeleteArticle", Scope::Write),
    (
        "newsstore.v1.ArticleService/BatchCreateArticles",
        Scope::Write,
    ),
    ("newsstore.v1.EntityService/UpdateEntity", Scope::Editor),
    ("newsstore.v1.EntityService/MergeEntities", Scope::Editor),
    ("newsstore.v1.EntityService/BlockEntity", Scope::Editor),
    ("newsstore.v1.EntityService/UnblockEntity", Scope::Editor),
    ("newsstore.v1.ArticleService/PurgeArticle", Scope::Admin),
    ("newsstore.v1.AdminService/ReextractArticles", Scope::Admin),
    ("newsstore.v1.AdminService/Backup", Scope::Admin),
];

/// The scope a gRPC method needs; `None` for the always-open health and reflection. A
/// method missing from [`SCOPES`] needs admin, so a new one is closed until classified.
pub fn required_scope(path: &str) -> Option<Scope> {
    let method = path.trim_start_matches('/');
    if method.starts_with("grpc.health.") || method.starts_with("grpc.reflection.") {
        return None;
    }
    Some(
        SCOPES
            .iter()
            .find(|(name, _)| *name == method)
            .map_or(Scope::Admin, |&(_, scope)| scope),
    )
}

struct Key {
    name: String,
    digest: [u8; 32],
    scope: Scope,
}

/// The checker the layer runs for every request.
#[derive(Clone)]
pub struct Auth {
    keys: Arc<Vec<Key>>,
    open_reads: bool,
}

impl Auth {
    pub fn new(config: &AuthConfig) -> Auth {
        Auth {
            keys: Arc::new(
                config
                    .tokens
                    .iter()
                    .map(|t| Key {
                        name: t.name.clone(),
                        digest: Sha256::digest(t.token.as_bytes()).into(),
                        scope: t.scope,
                    })
                    .collect(),
            ),
            open_reads: config.open_reads,
        }
    }

    /// Allows or refuses a call to `path` carrying `authorization`; allowed, the name of
    /// the token it carried, if one was needed.
    pub fn check(&self, path: &str, authorization: Option<&[u8]>) -> Result<Option<&str>, Error> {
        let Some(needed) = required_scope(path) else {
            return Ok(None);
        };
        if needed == Scope::Read && self.open_reads {
            return Ok(None);
        }
        let token = authorization
            .and_then(bearer_token)
            .ok_or_else(|| Error::Denied {
                why: Denied::TokenMissing,
                message: format!(
                    "{path} needs a token with scope {needed}: send the header \
                     \"authorization: Bearer <token>\""
                ),
            })?;
        let digest: [u8; 32] = Sha256::digest(token).into();
        // Every key is compared, so the time taken does not depend on which one matches.
        let mut found: Option<&Key> = None;
        for key in self.keys.iter() {
            if bool::from(key.digest.ct_eq(&digest)) {
                found = Some(key);
            }
        }
        let key = found.ok_or_else(|| Error::Denied {
            why: Denied::TokenInvalid,
            message: "the token is not valid".into(),
        })?;
        if key.scope < needed {
            tracing::info!(token = %key.name, method = path, "permission denied");
            return Err(Error::Denied {
                why: Denied::ScopeInsufficient {
                    needed: needed.name(),
                    held: key.scope.name(),
                },
                message: format!(
                    "token {:?} has scope {}, {path} needs {needed}",
                    key.name, key.scope
                ),
            });
        }
        Ok(Some(&key.name))
    }
}

/// The tower layer that runs [`Auth::check`] before the services; without an [`Auth`] (no
/// tokens configured) it lets everything through.
pub type AuthLayer = Layer<Option<Auth>>;

impl AuthLayer {
    pub fn new(config: &AuthConfig) -> AuthLayer {
        Layer(config.enabled().then(|| Auth::new(config)))
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Layered<S, Option<Auth>>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(auth) = &self.shared {
            let header = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(http::HeaderValue::as_bytes);
            match auth.check(request.uri().path(), header) {
                Err(denied) => {
                    let status = Status::from(denied);
                    return Box::pin(async move { Ok(status.into_http()) });
                }
                Ok(Some(name)) => {
                    if let Some(context) = CallContext::of(&request) {
                        context.set_token(name);
                    }
                }
                Ok(None) => {}
            }
        }
        Box::pin(self.inner.call(request))
    }
}

/// The token of an `authorization` header value of the Bearer scheme, whose name is
/// matched in any case (RFC 7235 §2.1, RFC 6750 §2.1); `None` for any other scheme.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || rest.first() != Some(&b' ') {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(open_reads: bool) -> Auth {
        Auth::new(&AuthConfig {
            tokens: AuthConfig::parse_tokens(
                "reader:read-token-0123456789:read,cms:write-token-0123456789:write,\
                 ops:admin-token-0123456789:admin",
            )
            .unwrap(),
            open_reads,
        })
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        for header in ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr   abc "] {
            assert_eq!(
                bearer_token(header.as_bytes()),
                Some(&b"abc"[..]),
                "{header:?}"
            );
        }
        for header in ["Basic abc", "Bearerabc", "Bearer ", "Bear abc", ""] {
            assert_eq!(bearer_token(header.as_bytes()), None, "{header:?}");
        }
    }

    #[test]
    fn methods_need_their_scope() {
        let auth = auth(false);
        let create = "/newsstore.v1.ArticleService/CreateArticle";
        let get = "/newsstore.v1.ArticleService/GetArticle";
        let purge = "/newsstore.v1.ArticleService/PurgeArticle";
        let code = |path: &str, token: Option<&str>| {
            let header = token.map(|t| format!("Bearer {t}"));
            auth.check(path, header.as_deref().map(str::as_bytes))
                .err()
                .map(|e| Status::from(e).code())
        };
        assert_eq!(code(get, None), Some(tonic::Code::Unauthenticated));
        assert_eq!(
            code(get, Some("wrong-token-0123456789")),
            Some(tonic::Code::Unauthenticated)
        );
        assert_eq!(code(get, Some("read-token-0123456789")), None);
        assert_eq!(
            code(create, Some("read-token-0123456789")),
            Some(tonic::Code::PermissionDenied)
        );
        assert_eq!(code(create, Some("write-token-0123456789")), None);
        assert_eq!(
            code(purge, Some("write-token-0123456789")),
            Some(tonic::Code::PermissionDenied)
        );
        assert_eq!(code(purge, Some("admin-token-0123456789")), None);
        assert_eq!(code("/grpc.health.v1.Health/Check", None), None);
        assert_eq!(
            code(
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                None
            ),
            None
        );
        let open = super::tests::auth(true);
        assert!(open.check(get, None).is_ok());
        assert!(open.check(create, None).is_err());
    }

    #[test]
    fn every_method_of_the_api_is_classified() {
        use prost::Message;
        let set =
            prost_types::FileDescriptorSet::decode(crate::api::proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut served = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    served.push(format!(
                        "{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        let mut classified: Vec<String> = SCOPES.iter().map(|(m, _)| m.to_string()).collect();
        served.sort();
        classified.sort();
        assert_eq!(served, classified);
        assert_eq!(
            required_scope("/newsstore.v1.EntityService/MergeEntities"),
            Some(Scope::Editor)
        );
        assert_eq!(
            required_scope("/newsstore.v1.EntityService/BlockEntity"),
            Some(Scope::Editor)
        );
        assert_eq!(
            required_scope("/newsstore.v1.AdminService/Backup"),
            Some(Scope::Admin)
        );
        assert_eq!(
            required_scope("/newsstore.v1.ArticleService/NotYetClassified"),
            Some(Scope::Admin)
        );
        assert_eq!(required_scope("/grpc.health.v1.Health/Watch"), None);
        assert!(AuthConfig::parse_tokens("x:y:root").is_err());
        assert!(AuthConfig::parse_tokens("x:y").is_err());
        assert_eq!(
            AuthConfig::parse_tokens("desk:y:editor").unwrap()[0].scope,
            Scope::Editor
        );
    }
}
