//! Server reflection, v1 and v1alpha, as grpcurl and other tools use it.

use tokio_stream::StreamExt;

use super::support::TestApp;

const SERVICES: &[&str] = &[
    "grpc.health.v1.Health",
    "newsstore.v1.ArticleService",
    "newsstore.v1.EntityService",
];

#[tokio::test]
async fn v1_lists_every_service_and_describes_symbols() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = TestApp::spawn().await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "newsstore.v1.ArticleService".into(),
            )),
        },
    ];
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in SERVICES
        .iter()
        .chain(&["grpc.reflection.v1.ServerReflection"])
    {
        assert!(
            names.contains(&service.to_string()),
            "{service} missing from {names:?}"
        );
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected file descriptors");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

/// Every error detail type the server sends resolves through reflection (from tonic-types'
/// full `google/rpc/error_details.proto`, not a subset kept in `proto/`), so reflection
/// clients print the details decoded.
#[tokio::test]
async fn the_error_detail_types_resolve() {
    use prost::Message;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = TestApp::spawn().await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    for symbol in [
        "google.rpc.ErrorInfo",
        "google.rpc.BadRequest",
        "google.rpc.RetryInfo",
    ] {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
        };
        let mut responses = client
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::FileDescriptorResponse(files)) =
            responses.next().await.unwrap().unwrap().message_response
        else {
            panic!("{symbol} does not resolve");
        };
        let (_, name) = symbol.rsplit_once('.').unwrap();
        let described = files.file_descriptor_proto.iter().any(|bytes| {
            prost_types::FileDescriptorProto::decode(bytes.as_slice())
                .unwrap()
                .message_type
                .iter()
                .any(|m| m.name() == name)
        });
        assert!(described, "{symbol}");
    }
}

/// `proto/` holds only newsstore.v1, so a client generating code from all of it gets
/// Google's own `google.rpc` types from its usual package, not a shadowing subset.
#[test]
fn the_proto_folder_holds_only_newsstore_v1() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(&root).unwrap();
                assert!(
                    relative.starts_with("newsstore/v1"),
                    "{} is outside newsstore/v1",
                    relative.display()
                );
            }
        }
    }
}

#[tokio::test]
async fn v1alpha_lists_every_service() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let app = TestApp::spawn().await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in SERVICES {
        assert!(
            names.contains(&service.to_string()),
            "{service} missing from {names:?}"
        );
    }
}
