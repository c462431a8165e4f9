//! Gives the errors tonic raises itself, before a handler runs, the codes and details of
//! our own error contract.
//!
//! A request that does not decode (invalid UTF-8 in a string field, a truncated message)
//! is the caller's fault, but tonic answers it INTERNAL (as prost's codec chooses), and a
//! message over the size limit OUT_OF_RANGE; neither carries `google.rpc.ErrorInfo`. Both
//! come back "trailers-only", in the response headers, so this layer rewrites those headers:
//! INVALID_ARGUMENT with reason `MALFORMED_MESSAGE`, and RESOURCE_EXHAUSTED with reason
//! `MESSAGE_TOO_LARGE` (gRPC's own convention for a message over the limit). It tells
//! tonic's errors from ours by their messages, which our handlers never produce.

use std::collections::HashMap;
use std::task::{Context, Poll};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::BoxFuture;
use super::status::ERROR_DOMAIN;

/// The tower layer that rewrites tonic's own request errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct WireErrorsLayer;

impl<S> tower::Layer<S> for WireErrorsLayer {
    type Service = WireErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WireErrors { inner }
    }
}

#[derive(Debug, Clone)]
pub struct WireErrors<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for WireErrors<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            if let Some(status) = rewrite(response.headers()) {
                let headers = response.headers_mut();
                headers.remove("grpc-status");
                headers.remove("grpc-message");
                headers.remove("grpc-status-details-bin");
                if let Err(err) = status.add_header(headers) {
                    tracing::warn!(error = %err, "cannot rewrite a request error");
                }
            }
            Ok(response)
        })
    }
}

/// Our status for one of tonic's own request errors in `headers`; `None` for the rest.
fn rewrite(headers: &http::HeaderMap) -> Option<Status> {
    let code = headers.get("grpc-status")?.as_bytes();
    let message = headers
        .get("grpc-message")
        .and_then(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    let (code, reason, text) = match code {
        b"13" if message.starts_with("failed to decode Protobuf message") => (
            Code::InvalidArgument,
            "MALFORMED_MESSAGE",
            format!(
                "the request is not a valid message of this method ({}); check that the \
                 client's generated code matches the server's proto files",
                message
                    .trim_start_matches("failed to decode Protobuf message")
                    .trim_start_matches(':')
                    .trim()
            ),
        ),
        b"11" if message.starts_with("Error, decoded message length too large") => (
            Code::ResourceExhausted,
            "MESSAGE_TOO_LARGE",
            format!(
                "the request is larger than this method accepts ({}); split it (batches of \
                 fewer articles) or ask the operator about --max-message-bytes",
                message
                    .trim_start_matches("Error, decoded message length too large:")
                    .trim()
            ),
        ),
        _ => return None,
    };
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Some(Status::with_error_details(code, text, details))
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2, "Responses").
fn percent_decode(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonics_request_errors_get_our_codes_and_reasons() {
        let mut headers = http::HeaderMap::new();
        Status::internal(
            "failed to decode Protobuf message: invalid string value: data is not UTF-8 encoded",
        )
        .add_header(&mut headers)
        .unwrap();
        let status = rewrite(&headers).unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("not UTF-8"),
            "{}",
            status.message()
        );
        assert_eq!(
            status.get_error_details().error_info().unwrap().reason,
            "MALFORMED_MESSAGE"
        );

        let mut headers = http::HeaderMap::new();
        Status::out_of_range(
            "Error, decoded message length too large: found 20 bytes, the limit is: 10 bytes",
        )
        .add_header(&mut headers)
        .unwrap();
        let status = rewrite(&headers).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().contains("found 20 bytes"),
            "{}",
            status.message()
        );

        let mut headers = http::HeaderMap::new();
        Status::internal("internal error; the server log has the details")
            .add_header(&mut headers)
            .unwrap();
        assert!(rewrite(&headers).is_none());
    }
}
