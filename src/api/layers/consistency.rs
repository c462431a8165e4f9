//! Read-your-writes across nodes: the consistency token.
//!
//! Every answer carries the log position this node had applied when it answered, in the
//! response header `x-newsstore-position` (in cluster mode the position in the replicated
//! log; in embedded mode the change-log sequence). A call that sends a position back in the
//! request header `x-newsstore-min-position` is served only once this node has applied it,
//! and a search (or a filtered change feed, which the search index answers) only once the
//! search index reflects it, waiting up to the call's deadline (`grpc-timeout`, at most
//! [`MAX_WAIT`]); past it the call fails with UNAVAILABLE, reason `NOT_CAUGHT_UP`. So a
//! client that carries the position of its last write to any node reads that write on every
//! node. Without the header a call reads what the node has, which may lag the log.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::Status;

use super::{BoxFuture, Layer, Layered};
use crate::error::{Error, Invalid};
use crate::search::SearchIndex;
use crate::store::Store;

/// The response header carrying the position the node had applied.
pub const POSITION_HEADER: &str = "x-newsstore-position";
/// The request header asking for a position to be applied first.
pub const MIN_POSITION_HEADER: &str = "x-newsstore-min-position";

/// The longest a call waits for its position, whatever its deadline.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// The wait of a call without a deadline.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// The tower layer of consistency tokens.
pub type ConsistencyLayer = Layer<Consistency>;

/// What the layer waits on.
#[derive(Clone)]
pub struct Consistency {
    store: Arc<Store>,
    search: Arc<SearchIndex>,
}

impl ConsistencyLayer {
    pub fn new(store: Arc<Store>, search: Arc<SearchIndex>) -> Self {
        Layer(Consistency { store, search })
    }
}

/// Methods whose answers come from the search index.
fn searches(path: &str) -> bool {
    path.ends_with("/SearchArticles") || path.ends_with("/WatchChanges")
}

impl<S, B, R> tower::Service<http::Request<B>> for Layered<S, Consistency>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The ready service goes to this call; the clone waits for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Consistency { store, search } = self.shared.clone();
        let wanted = match min_position(request.headers()) {
            Ok(wanted) => wanted,
            Err(err) => return Box::pin(async move { Ok(Status::from(err).into_http()) }),
        };
        // A tenth of the deadline is left for the answer to reach the caller in time.
        let wait = deadline(request.headers())
            .map_or(DEFAULT_WAIT, |d| d.saturating_sub(d / 10))
            .min(MAX_WAIT);
        let indexed = searches(request.uri().path());
        Box::pin(async move {
            if let Some(wanted) = wanted
                && let Err(err) = reach(&store, &search, wanted, indexed, wait).await
            {
                return Ok(Status::from(err).into_http());
            }
            let mut response = inner.call(request).await?;
            response
                .headers_mut()
                .insert(POSITION_HEADER, http::HeaderValue::from(store.position()));
            Ok(response)
        })
    }
}

/// Waits until `store` has applied position `wanted` (and, if `indexed`, the search index
/// reflects it), for at most `wait`.
async fn reach(
    store: &Store,
    search: &SearchIndex,
    wanted: u64,
    indexed: bool,
    wait: Duration,
) -> crate::error::Result<()> {
    let started = tokio::time::Instant::now();
    let mut position = store.watch_position();
    let reached = matches!(
        tokio::time::timeout(wait, position.wait_for(|&p| p >= wanted)).await,
        Ok(Ok(_))
    );
    if !reached {
        return Err(Error::NotCaughtUp(format!(
            "this node has applied the log up to position {}, and the call asked for {wanted} \
             (x-newsstore-min-position) within {:.1} s; retry, or call another node",
            store.position(),
            wait.as_secs_f64()
        )));
    }
    if indexed {
        // Every change up to the position is in the change log now; the index must reach
        // the change log's end as of this moment.
        let seq = store.last_seq();
        let left = wait.saturating_sub(started.elapsed());
        search.wait_for(seq, left).await.map_err(|_| {
            Error::NotCaughtUp(format!(
                "this node has applied position {wanted}, but its search index has not \
                 caught up with it within {:.1} s; retry",
                wait.as_secs_f64()
            ))
        })?;
    }
    Ok(())
}

fn min_position(headers: &http::HeaderMap) -> crate::error::Result<Option<u64>> {
    let Some(value) = headers.get(MIN_POSITION_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            Error::invalid(
                MIN_POSITION_HEADER,
                Invalid::Malformed,
                format!(
                    "the {MIN_POSITION_HEADER} header must be a position as an earlier \
                     answer's {POSITION_HEADER} header gave it (a whole number)"
                ),
            )
        })
}

/// The call's deadline from its `grpc-timeout` header (digits and a unit: H, M, S, m, u, n).
fn deadline(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_and_positions_parse_as_grpc_and_our_headers_write_them() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(deadline(&headers), None);
        for (value, expected) in [
            ("2S", Some(Duration::from_secs(2))),
            ("1500m", Some(Duration::from_millis(1500))),
            ("1M", Some(Duration::from_secs(60))),
            ("7x", None),
            ("S", None),
        ] {
            headers.insert("grpc-timeout", http::HeaderValue::from_static(value));
            assert_eq!(deadline(&headers), expected, "{value}");
        }
        assert_eq!(min_position(&headers).unwrap(), None);
        headers.insert(MIN_POSITION_HEADER, http::HeaderValue::from_static(" 42 "));
        assert_eq!(min_position(&headers).unwrap(), Some(42));
        headers.insert(MIN_POSITION_HEADER, http::HeaderValue::from_static("-1"));
        let err = min_position(&headers).unwrap_err();
        assert_eq!(err.reason(), "INVALID_FIELD_VALUE");
    }
}
