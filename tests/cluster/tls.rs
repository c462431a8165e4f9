//! Nodes reach NATS over mutual TLS with the `--cluster-tls-*` options, and a node without
//! the client certificate or without TLS is refused at start, naming the connection.

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use crate::nats::NatsCluster;
use crate::node::{self, Node, config, create_request, temp_dir};

/// A certificate for `name` signed by `ca`: (certificate PEM, key PEM).
fn issue(ca: &(rcgen::Certificate, KeyPair), name: &str) -> (String, String) {
    let params = CertificateParams::new(vec![name.to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.0, &ca.1).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_reach_nats_over_mutual_tls_and_are_refused_without_it() {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let ca = (params.self_signed(&key).unwrap(), key);
    let files = temp_dir();
    let path = |name: &str| files.path().join(name);
    let (server_cert, server_key) = issue(&ca, "localhost");
    let (client_cert, client_key) = issue(&ca, "newsstore-node");
    for (name, text) in [
        ("ca.pem", ca.0.pem()),
        ("server.pem", server_cert),
        ("server-key.pem", server_key),
        ("client.pem", client_cert),
        ("client-key.pem", client_key),
    ] {
        std::fs::write(path(name), text).unwrap();
    }
    // Clients must present a certificate the CA signed.
    let tls = format!(
        "tls {{ cert_file: {:?}, key_file: {:?}, ca_file: {:?}, verify: true, timeout: 5 }}",
        path("server.pem"),
        path("server-key.pem"),
        path("ca.pem")
    );
    let Some(nats) = NatsCluster::start_with(&tls).await else {
        return;
    };
    let urls: Vec<String> = nats
        .urls()
        .iter()
        .map(|u| u.replace("nats://127.0.0.1", "tls://localhost"))
        .collect();

    let data = temp_dir();
    let mut secure = config(&urls, &data, "secure");
    if let Some(cluster) = &mut secure.cluster {
        cluster.tls_ca = Some(path("ca.pem"));
        cluster.tls_client = Some((path("client.pem"), path("client-key.pem")));
    }
    let node = Node::launch(data, secure).await;
    node.articles()
        .create_article(create_request(
            "over-tls",
            "TLS",
            "Angela Merkel spoke in Bonn.",
        ))
        .await
        .expect("a write through a node on TLS succeeds");

    // Without the client certificate, and without TLS at all: refused, naming NATS.
    for (name, tls) in [("no-client-cert", true), ("plaintext", false)] {
        let data = temp_dir();
        let mut refused = config(&urls, &data, name);
        if let Some(cluster) = &mut refused.cluster {
            if tls {
                cluster.tls_ca = Some(path("ca.pem"));
            } else {
                cluster.urls = nats.urls();
            }
        }
        let message = node::refused(refused).await;
        assert!(
            message.contains("cannot connect to the NATS cluster")
                || message.contains("cannot open or create the JetStream stream"),
            "{name}: {message}"
        );
    }
}
