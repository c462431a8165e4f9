//! The task that applies the log to this node's store, as JetStream delivers it.
//!
//! An ordered consumer (ephemeral, in memory, no acks: the node's own store records how far
//! it got) delivers records from the store's position on. Whatever has arrived is applied
//! as one batch with one flush; records the node applied already (its own writes, applied
//! when they were acknowledged, and anything a writer caught up on) are skipped by
//! position. If the consumer fails (a NATS server lost, a leader change), a new one starts
//! from the store's position, so nothing is skipped or applied twice.
//!
//! The follower also keeps the head of the log as the consumer last reported it, from
//! which the node's lag, and so its readiness, follow.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::stream::Stream;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::Store;

/// Records applied in one batch at most.
const BATCH: usize = 512;

/// How far this node is, as the follower sees it.
#[derive(Default)]
pub struct Follower {
    /// The log's last position, as last reported by the stream or the consumer.
    head: AtomicU64,
    /// Why the follower stopped applying (damage), if it did.
    failure: Mutex<Option<String>>,
    /// Whether the consumer is delivering (false while it is being made again).
    connected: AtomicBool,
}

impl Follower {
    /// The log's last position as last known.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    pub fn note_head(&self, head: u64) {
        self.head.fetch_max(head, Ordering::AcqRel);
    }

    /// Why the node stopped applying the log, if it did: it serves what it has, stale.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Starts applying the log `stream` holds to `store`, until `stop` turns true.
    pub fn spawn(
        self: &Arc<Self>,
        stream: Stream,
        store: Arc<Store>,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let follower = self.clone();
        tokio::spawn(async move {
            loop {
                if *stop.borrow() {
                    break;
                }
                let outcome = tokio::select! {
                    outcome = follower.follow(&stream, &store) => outcome,
                    _ = stop.wait_for(|stop| *stop) => break,
                };
                follower.connected.store(false, Ordering::Release);
                match outcome {
                    Ok(()) => {}
                    Err(Stop::Damage(message)) => {
                        tracing::error!(error = %message, "THIS NODE STOPPED APPLYING THE CLUSTER LOG; it serves reads from what it has");
                        *follower
                            .failure
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) = Some(message);
                        break;
                    }
                    Err(Stop::Consumer(message)) => {
                        tracing::warn!(error = %message, "the cluster log's consumer failed; following again from the store's position");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(500)) => {}
                            _ = stop.wait_for(|stop| *stop) => break,
                        }
                    }
                }
            }
        })
    }

    /// Follows from the store's position until the consumer fails.
    async fn follow(&self, stream: &Stream, store: &Arc<Store>) -> Result<(), Stop> {
        let start = store.position() + 1;
        if let Ok(info) = stream.get_info().await {
            self.note_head(info.state.last_sequence);
        }
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                // Idle heartbeats every second: a lost consumer is noticed in seconds.
                max_expires: Duration::from_secs(2),
                ..Default::default()
            })
            .await
            .map_err(|err| Stop::Consumer(format!("creating the consumer: {err}")))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|err| Stop::Consumer(format!("starting the consumer: {err}")))?;
        self.connected.store(true, Ordering::Release);
        loop {
            let Some(first) = messages.next().await else {
                return Err(Stop::Consumer("the consumer ended".into()));
            };
            let mut batch = Vec::new();
            let mut next = Some(first);
            while let Some(message) = next {
                let message = message.map_err(|err| Stop::Consumer(format!("receiving: {err}")))?;
                let info = message
                    .info()
                    .map_err(|err| Stop::Consumer(format!("a delivery without metadata: {err}")))?;
                self.note_head(info.stream_sequence + info.pending);
                batch.push((info.stream_sequence, message.payload.to_vec()));
                next = if batch.len() < BATCH {
                    messages.next().now_or_never().flatten()
                } else {
                    None
                };
            }
            let store = store.clone();
            let applied = tokio::task::spawn_blocking(move || store.apply_logged(batch))
                .await
                .map_err(|err| Stop::Damage(format!("the applying task failed: {err}")))?;
            match applied {
                Ok(_) => {}
                Err(err @ crate::error::Error::DataLoss(_)) => {
                    return Err(Stop::Damage(err.to_string()));
                }
                // A full disk, the log unreachable while filling a gap: again later.
                Err(err) => return Err(Stop::Consumer(err.to_string())),
            }
        }
    }
}

enum Stop {
    /// Following again may work.
    Consumer(String),
    /// The log or the store is damaged: following again would meet it again.
    Damage(String),
}
