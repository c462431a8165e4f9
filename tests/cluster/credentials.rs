//! Nodes reach NATS with a credentials file (`--cluster-credentials`, NATS's decentralized
//! authentication), and a node without one, or with another operator's, is refused at start.
//!
//! The setup is made here as `nsc` would make it: an operator, a system account, an account
//! with JetStream and one user of it, each a JWT signed with the nkey above it. nats-server
//! then refuses any client without a user JWT that chains up to the operator. Everything is
//! generated per run, so nothing secret is checked in, and the JWTs only have to satisfy
//! nats-server ≥ 2.10 (checked against 2.15.1), not every tool of the ecosystem.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::prelude::{BASE64_URL_SAFE_NO_PAD, Engine as _};
use data_encoding::BASE32_NOPAD;
use nkeys::KeyPair;
use serde_json::{Value, json};
use sha2::{Digest, Sha512_256};

use crate::nats::NatsCluster;
use crate::node::{self, Node, config, create_request, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_connect_with_a_credentials_file_and_are_refused_without_one() {
    let files = temp_dir();
    let (auth, creds) = operator_setup(files.path());
    let Some(nats) = NatsCluster::start_with(&auth).await else {
        return;
    };
    let urls = nats.urls();

    let data = temp_dir();
    let mut with_creds = config(&urls, &data, "with-creds");
    if let Some(cluster) = &mut with_creds.cluster {
        cluster.credentials = Some(creds.clone());
    }
    let node = Node::launch(data, with_creds).await;
    node.articles()
        .create_article(create_request(
            "with-credentials",
            "Credentials",
            "Angela Merkel spoke in Bonn.",
        ))
        .await
        .expect("a write through a node with credentials succeeds");

    // No credentials, and a user of another operator: refused, naming the connection.
    let other = temp_dir();
    let (_, foreign) = operator_setup(other.path());
    for (name, credentials) in [("no-creds", None), ("foreign-creds", Some(foreign))] {
        let data = temp_dir();
        let mut refused = config(&urls, &data, name);
        if let Some(cluster) = &mut refused.cluster {
            cluster.credentials = credentials;
        }
        let message = node::refused(refused).await;
        assert!(
            message.contains("cannot connect to the NATS cluster")
                && message.to_lowercase().contains("authorization"),
            "{name}: {message}"
        );
    }
}

/// Makes a fresh operator, system account, JetStream account and user, writes the user's
/// credentials to `dir/user.creds`, and returns (server configuration, that file).
///
/// The configuration text goes to [`NatsCluster::start_with`]; it holds no
/// `jetstream` block, since the harness writes its own. The file goes to the node's
/// `credentials` (`--cluster-credentials`). Calling this again gives an unrelated operator,
/// whose credentials the first cluster refuses: pass another `dir` for those.
fn operator_setup(dir: &Path) -> (String, PathBuf) {
    let operator = KeyPair::new_operator();
    let system = KeyPair::new_account();
    let account = KeyPair::new_account();
    let user = KeyPair::new_user();

    // The operator JWT is self-signed: the server trusts it because the configuration names
    // it, and then trusts only accounts it signed.
    let operator_jwt = encode_jwt(
        &operator,
        &operator.public_key(),
        "newsstore-test-operator",
        json!({
            "type": "operator",
            "version": 2,
            "system_account": system.public_key(),
        }),
    );
    let system_jwt = encode_jwt(
        &operator,
        &system.public_key(),
        "SYS",
        json!({ "type": "account", "version": 2, "limits": account_limits(false) }),
    );
    let account_jwt = encode_jwt(
        &operator,
        &account.public_key(),
        "newsstore",
        json!({ "type": "account", "version": 2, "limits": account_limits(true) }),
    );
    // Signed by the account's own key (not a signing key), so no `issuer_account`. A user's
    // missing subs/data/payload also mean 0: with no subscription allowed, connecting fails
    // with "maximum subscriptions exceeded".
    let user_jwt = encode_jwt(
        &account,
        &user.public_key(),
        "newsstore-node",
        json!({
            "type": "user",
            "version": 2,
            "subs": -1,
            "data": -1,
            "payload": -1,
        }),
    );

    // MEMORY resolver: the accounts come from the configuration, so the servers need no
    // account server and every server of the cluster knows the same accounts. The system
    // account must be among them, or nats-server exits with "error resolving system account:
    // account missing".
    let config = format!(
        "operator: {operator_jwt}\n\
         system_account: {system}\n\
         resolver: MEMORY\n\
         resolver_preload: {{\n  {system}: {system_jwt}\n  {account}: {account_jwt}\n}}\n",
        system = system.public_key(),
        account = account.public_key(),
    );

    let seed = user.seed().expect("a generated key pair has its seed");
    let creds = dir.join("user.creds");
    std::fs::write(&creds, creds_file(&user_jwt, &seed)).expect("write the .creds file");
    (config, creds)
}

/// The account limits, all -1 (unlimited). nats-server reads a missing or 0 limit as zero
/// allowed, not as unlimited: without `conn` every user of the account is refused with
/// "maximum account active connections exceeded".
fn account_limits(jetstream: bool) -> Value {
    let mut limits = json!({
        "subs": -1,
        "data": -1,
        "payload": -1,
        "imports": -1,
        "exports": -1,
        "wildcards": true,
        "conn": -1,
        "leaf": -1,
    });
    // JetStream is enabled for an account only when mem_storage or disk_storage is non-zero;
    // without them stream requests get no responder. The system account must not have it:
    // nats-server refuses to enable JetStream on the system account.
    if jetstream {
        let object = limits.as_object_mut().expect("the limits are an object");
        for field in ["mem_storage", "disk_storage", "streams", "consumer"] {
            object.insert(field.to_string(), json!(-1));
        }
    }
    limits
}

/// A NATS v2 JWT: `{"typ":"JWT","alg":"ed25519-nkey"}`, the claims, and the issuer's ed25519
/// signature over the first two parts, each part base64url without padding.
fn encode_jwt(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let issued_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let mut claims = json!({
        "iat": issued_at,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    // The JWT id: nats-io/jwt makes it the unpadded base32 of a SHA-512/256 of the claims.
    // The server does not check it; it is here so the tokens look like nsc's.
    let digest = Sha512_256::digest(claims.to_string().as_bytes());
    claims["jti"] = Value::String(BASE32_NOPAD.encode(digest.as_slice()));

    let header = BASE64_URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let payload = BASE64_URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let signature = issuer
        .sign(signed.as_bytes())
        .expect("a generated key pair can sign");
    format!("{signed}.{}", BASE64_URL_SAFE_NO_PAD.encode(signature))
}

/// The `.creds` layout `nsc` writes. async-nats takes the first two blocks framed by lines of
/// three or more dashes as the JWT and the seed, and needs the newline after each closing
/// line, the last one included.
fn creds_file(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n\
         {jwt}\n\
         ------END NATS USER JWT------\n\
         \n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\
         \n\
         -----BEGIN USER NKEY SEED-----\n\
         {seed}\n\
         ------END USER NKEY SEED------\n"
    )
}
