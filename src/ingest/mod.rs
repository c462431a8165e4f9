//! The one way articles get in: validate, extract, write.
//!
//! The API, the seeder and the CLI all come through here, so every article is checked by the
//! same rules and analysed by the same extractor, and every write goes to the store the same
//! way. Extraction is CPU work and runs on the blocking pool; the store write (and its flush)
//! does too, so neither stalls the async runtime.
//!
//! `rules.rs` holds what an input must meet and how it is cleaned and hashed; `write.rs`
//! the API's writes (create, batch create, update, delete, purge); `files.rs` the upserts of
//! seed and import files; `reextract.rs` running extraction again over the stored articles.
//! This file holds what they share: analysing a batch in parallel before its one store
//! write, retrying a write that lost a race, and running on the blocking pool.

mod files;
mod reextract;
mod rules;
mod write;

use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::ArticleInput;
use crate::store::{Content, Store, Written};

pub use files::{FileArticle, Upserted};
pub use reextract::Reextraction;
pub use rules::{Limits, validate_id};
pub use write::{InputField, Stored};

/// A write that reads the article first retries this often when another writer keeps
/// getting between its read and its write.
const UPDATE_RETRIES: usize = 8;

#[derive(Clone)]
pub struct Ingest {
    store: Arc<Store>,
    limits: Limits,
}

impl Ingest {
    pub fn new(store: Arc<Store>, limits: Limits) -> Self {
        Ingest { store, limits }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// What an analysed item of a batch comes to: a write for the batch's one store call
/// (with what settling its outcome needs), or an outcome known without writing.
enum Plan<W, K, T> {
    Write(W, K),
    Settled(T),
}

/// Analyses the `pending` items of a batch on every core, plans each (`plan`), and sends
/// every planned write to the store in one call (`write`): extraction is most of the work
/// and each article's is independent, while the store stays single-writer with one flush.
/// Items that fail to analyse or plan, or settle without a write, get their outcome in
/// `results` at their position; the rest come back with their position, what the plan kept,
/// and the store's outcome, in order.
fn analyse_then_write<P: Send, W, K, T>(
    limits: &Limits,
    results: &mut [Option<Result<T>>],
    pending: Vec<(usize, ArticleInput, P)>,
    mut plan: impl FnMut(Content, P) -> Result<Plan<W, K, T>>,
    write: impl FnOnce(Vec<W>) -> Vec<Result<Written>>,
) -> Vec<(usize, K, Result<Written>)> {
    let analysed: Vec<_> = pending
        .into_par_iter()
        .map(|(i, input, item)| (i, rules::prepare(input, limits), item))
        .collect();
    let mut writes = Vec::new();
    let mut planned = Vec::new();
    for (i, content, item) in analysed {
        match content.and_then(|content| plan(content, item)) {
            Ok(Plan::Write(write, kept)) => {
                writes.push(write);
                planned.push((i, kept));
            }
            Ok(Plan::Settled(outcome)) => results[i] = Some(Ok(outcome)),
            Err(err) => results[i] = Some(Err(err)),
        }
    }
    planned
        .into_iter()
        .zip(write(writes))
        .map(|((i, kept), outcome)| (i, kept, outcome))
        .collect()
}

/// Each item's outcome, in order; an item left without one (`what` names it) is an
/// internal error rather than a silent gap.
fn every_outcome<T>(results: Vec<Option<Result<T>>>, what: &str) -> Vec<Result<T>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Internal(format!("{what} was lost")))))
        .collect()
}

/// Runs `attempt` on article `id` until it settles (`Some`), at most [`UPDATE_RETRIES`]
/// times; `None` means another writer got between the attempt's read and its write.
fn with_retries<T>(id: &str, mut attempt: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    for _ in 0..UPDATE_RETRIES {
        if let Some(outcome) = attempt()? {
            return Ok(outcome);
        }
    }
    Err(Error::Conflict(format!(
        "article {id:?} is being changed by other writers too often; retry later"
    )))
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| Err(Error::internal("a blocking task failed", err)))
}

/// Like [`run_blocking`] for work with one outcome per item: if the blocking task fails,
/// each of the `count` items gets the error.
async fn run_blocking_each<T: Send + 'static>(
    count: usize,
    work: impl FnOnce() -> Vec<Result<T>> + Send + 'static,
) -> Vec<Result<T>> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| {
            (0..count)
                .map(|_| Err(Error::internal("a blocking task failed", &err)))
                .collect()
        })
}
