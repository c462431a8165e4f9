//! Gives the errors tonic raises itself, before a handler runs, the codes and details of
//! our own error contract.
//!
//! A request that does not decode (invalid UTF-8 in a string field, a truncated message)
//! is the caller's fault, but tonic answers it INTERNAL (as prost's codec chooses), and a
//! message over the size limit OUT_OF_RANGE; neither carries `google.rpc.ErrorInfo`. Both
//! come back "trailers-only", in the response headers, which [`rewrite`] rewrites:
//! INVALID_ARGUMENT with reason `MALFORMED_MESSAGE`, and RESOURCE_EXHAUSTED with reason
//! `MESSAGE_TOO_LARGE` (gRPC's own convention for a message over the limit). It tells
//! tonic's errors from ours by their messages, which our handlers never produce.
//! `app.rs` applies [`rewrite`] to every response, inside the gRPC-Web translation.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::api::status::ERROR_DOMAIN;

/// The codes and reasons this module answers with, for the errors table.
pub const REASONS: [(Code, &str); 2] = [
    (Code::InvalidArgument, "MALFORMED_MESSAGE"),
    (Code::ResourceExhausted, "MESSAGE_TOO_LARGE"),
];

/// `response` with tonic's own request errors rewritten; the rest unchanged. A tower
/// `map_response` over every call.
pub fn rewrite<B>(mut response: http::Response<B>) -> http::Response<B> {
    if let Some(status) = rewrite_status(response.headers()) {
        let headers = response.headers_mut();
        headers.remove("grpc-status");
        headers.remove("grpc-message");
        headers.remove("grpc-status-details-bin");
        if let Err(err) = status.add_header(headers) {
            tracing::warn!(error = %err, "cannot rewrite a request error");
        }
    }
    response
}

/// Our status for one of tonic's own request errors in `headers`; `None` for the rest.
fn rewrite_status(headers: &http::HeaderMap) -> Option<Status> {
    let code = headers.get("grpc-status")?.as_bytes();
    let message = headers
        .get("grpc-message")
        .and_then(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    match code {
        b"13" if message.starts_with("failed to decode Protobuf message") => Some(with_reason(
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
        )),
        b"11" if message.starts_with("Error, decoded message length too large") => {
            Some(too_large(format!(
                "the request is larger than this method accepts ({}); split it (batches of \
                 fewer articles) or ask the operator about --max-message-bytes",
                message
                    .trim_start_matches("Error, decoded message length too large:")
                    .trim()
            )))
        }
        _ => None,
    }
}

/// A status with an ErrorInfo of `reason` in our domain.
fn with_reason(code: Code, reason: &str, message: String) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code, message, details)
}

/// RESOURCE_EXHAUSTED with reason `MESSAGE_TOO_LARGE` and `message`: a request over a
/// size limit, however it was found.
pub fn too_large(message: String) -> Status {
    with_reason(Code::ResourceExhausted, "MESSAGE_TOO_LARGE", message)
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
        let status = rewrite_status(&headers).unwrap();
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
        let status = rewrite_status(&headers).unwrap();
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
        assert!(rewrite_status(&headers).is_none());
    }
}
