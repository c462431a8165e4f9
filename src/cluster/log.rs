//! The store's [`Log`] on a JetStream stream: fenced appends and reads by position.
//!
//! A record is published with `Nats-Expected-Last-Sequence` set to the position its node
//! decided it at: JetStream refuses it (error 10071) if any record came in between, so two
//! nodes deciding at once cannot both win. It carries a `Nats-Msg-Id` unique to this
//! decision, and while the log does not answer (a leader election takes seconds) the same
//! message is sent again until `append_timeout`: JetStream checks the id before the fence,
//! so a first attempt that did land is answered as a duplicate with its position instead
//! of being appended twice.
//!
//! The store calls these methods under its writer lock on a blocking thread; they hand the
//! work to the runtime and wait for it, so they never block a runtime thread themselves.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use tokio::runtime::Handle;

use super::ClusterConfig;
use super::stream::subject;
use crate::error::{Error, Result};
use crate::store::{Log, Refused};

pub struct NatsLog {
    js: async_nats::jetstream::Context,
    stream: Stream,
    subject: String,
    handle: Handle,
    append_timeout: Duration,
    /// Message ids are `<node>-<process start>-<count>`: unique to one decision.
    id_prefix: String,
    count: AtomicU64,
}

/// How long one publish waits for its acknowledgement before it is sent again.
const ACK_WAIT: Duration = Duration::from_secs(2);

impl NatsLog {
    pub fn new(
        client: async_nats::Client,
        stream: Stream,
        config: &ClusterConfig,
        handle: Handle,
    ) -> NatsLog {
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(ACK_WAIT)
            .build(client);
        NatsLog {
            js,
            stream,
            subject: subject(&config.stream),
            handle,
            append_timeout: config.append_timeout,
            id_prefix: format!("{}-{}", config.node_name, uuid::Uuid::now_v7().simple()),
            count: AtomicU64::new(0),
        }
    }

    /// Runs `work` on the runtime and waits for it from this (blocking) thread.
    fn wait<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> Result<T> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = sender.send(work.await);
        });
        receiver.recv().map_err(|_| {
            Error::LogUnavailable("the server is stopping; the cluster log was not reached".into())
        })
    }
}

impl Log for NatsLog {
    fn append(&self, after: u64, record: Vec<u8>) -> Result<u64, Refused> {
        let id = format!(
            "{}-{}",
            self.id_prefix,
            self.count.fetch_add(1, Ordering::Relaxed)
        );
        let (js, subject, timeout) = (self.js.clone(), self.subject.clone(), self.append_timeout);
        let payload = bytes::Bytes::from(record);
        let outcome = self.wait(async move {
            let started = Instant::now();
            let mut last_error = String::new();
            while started.elapsed() < timeout {
                let message = PublishMessage::build()
                    .payload(payload.clone())
                    .message_id(&id)
                    .expected_last_sequence(after);
                let acked = match js.send_publish(subject.clone(), message).await {
                    Ok(ack) => ack.await,
                    Err(err) => Err(err),
                };
                match acked {
                    Ok(ack) => return Ok(ack.sequence),
                    Err(err) => match err.kind() {
                        PublishErrorKind::WrongLastSequence => {
                            return Err(Refused::Moved {
                                head: last_sequence(&err),
                            });
                        }
                        PublishErrorKind::MaxPayloadExceeded => {
                            return Err(Refused::Failed(Error::ResourceExhausted(format!(
                                "the change is {} bytes, more than the NATS servers take in \
                                 one message (max_payload); raise max_payload in their \
                                 configuration, or send a smaller article",
                                payload.len()
                            ))));
                        }
                        // No leader yet (no responders), no answer in time, a dropped
                        // connection: the same message again, until the deadline.
                        _ => {
                            last_error = err.to_string();
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    },
                }
            }
            Err(Refused::Failed(Error::LogUnavailable(format!(
                "the cluster log did not acknowledge the write within {} s ({last_error}): \
                 JetStream may be electing a leader or have lost its quorum. The write may \
                 or may not be stored; retry it with the same request_id",
                timeout.as_secs()
            ))))
        });
        outcome.map_err(Refused::Failed)?
    }

    /// Every node runs a [`crate::cluster::Follower`] on the stream from the start.
    fn delivered(&self) -> bool {
        true
    }

    fn read_after(&self, after: u64, head: Option<u64>, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let stream = self.stream.clone();
        let max = max as u64;
        self.wait(async move {
            let (first, last) = match head {
                Some(head) => (after + 1, head),
                None => {
                    let state = stream
                        .get_info()
                        .await
                        .map_err(|err| unavailable("reading the cluster log's state", err))?
                        .state;
                    ((after + 1).max(state.first_sequence), state.last_sequence)
                }
            };
            let last = last.min(after.saturating_add(max));
            // All at once: a node that lost a race is usually a few records behind, and
            // each request is a round trip to the stream's leader (a follower's copy may
            // not have them yet).
            let fetched = futures_util::future::join_all((first..=last).map(|position| {
                let stream = stream.clone();
                async move { (position, stream.get_raw_message(position).await) }
            }))
            .await;
            let mut records = Vec::with_capacity(fetched.len());
            for (position, fetched) in fetched {
                match fetched {
                    Ok(message) => records.push((position, message.payload.to_vec())),
                    Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => {
                        // The head a refusal names counts records proposed but not yet
                        // committed: those are not readable yet, and the caller reads again.
                        // Below the stream's first record, they were trimmed away.
                        let first = stream
                            .get_info()
                            .await
                            .map_err(|err| unavailable("reading the cluster log's state", err))?
                            .state
                            .first_sequence;
                        if position < first {
                            return Err(Error::DataLoss(format!(
                                "record {position} of the cluster log was trimmed away (the \
                                 log now starts at {first}) before this node applied it; wipe \
                                 this node's data folder so it joins again from a snapshot"
                            )));
                        }
                        break;
                    }
                    Err(err) => return Err(unavailable("reading the cluster log", err)),
                }
            }
            Ok(records)
        })?
    }
}

/// The stream's last sequence as JetStream's "wrong last sequence: N" refusal names it.
fn last_sequence(err: &async_nats::jetstream::context::PublishError) -> Option<u64> {
    let source = std::error::Error::source(err)?.to_string();
    let (_, rest) = source.split_once("wrong last sequence: ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn unavailable(what: &str, err: impl std::fmt::Display) -> Error {
    Error::LogUnavailable(format!("{what}: {err}"))
}
