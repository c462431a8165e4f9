//! The commands that work on an existing database in place: `check`, `stats`, `reindex`
//! and `reextract` (the last also through a running server).

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::client::ClientArgs;
use super::progress::Progress;
use super::{DataArgs, open_existing_store, open_store_to_write};
use crate::ingest::{Ingest, Limits};
use crate::search::SearchIndex;

#[derive(Debug, Clone, Args)]
pub(super) struct ReextractArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Address of a running server to re-extract through (for example 127.0.0.1:50051, or
    /// https://news.example:50051 for TLS).
    #[arg(long)]
    server: Option<String>,
    /// The token needs the admin scope.
    #[command(flatten)]
    client: ClientArgs,
}

pub(super) async fn check(args: DataArgs) -> anyhow::Result<()> {
    let store = open_existing_store(&args.config())?;
    let problems = tokio::task::spawn_blocking(move || store.check()).await??;
    if problems.is_empty() {
        println!("the database is consistent");
        return Ok(());
    }
    for problem in &problems {
        println!("{problem}");
    }
    Err(anyhow::anyhow!(
        "{} problems found; restore the last backup (newsstore restore), or rebuild \
             from the sources",
        problems.len()
    ))
}

pub(super) async fn stats(args: DataArgs) -> anyhow::Result<()> {
    let config = args.config();
    let store = open_existing_store(&config)?;
    let on_disk = store.size_on_disk()?;
    let sizes = tokio::task::spawn_blocking(move || store.key_space_sizes()).await??;
    println!(
        "{:<8} {:>12} {:>14} {:>14}",
        "space", "entries", "key bytes", "value bytes"
    );
    let mut total = 0;
    for size in &sizes {
        println!(
            "{:<8} {:>12} {:>14} {:>14}",
            char::from(size.prefix).escape_default().to_string(),
            size.entries,
            size.key_bytes,
            size.value_bytes
        );
        total += size.key_bytes + size.value_bytes;
    }
    println!(
        "data {:.1} MiB; database files {:.1} MiB ({:.1}× the data)",
        total as f64 / 1048576.0,
        on_disk as f64 / 1048576.0,
        on_disk as f64 / total.max(1) as f64
    );
    Ok(())
}

pub(super) async fn reindex(args: DataArgs) -> anyhow::Result<()> {
    let config = args.config();
    let store = open_existing_store(&config)?;
    let dir = config.index_dir();
    // Opening a missing index rebuilds it from the store, logging progress.
    let applied = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let index = SearchIndex::open(&dir, &store)?;
        // The rebuild left many segments; merging them now spares the server that
        // work (and the memory it maps) when it starts.
        if let Ok(merged) = index.finish_merges().recv() {
            merged?;
        }
        Ok(index.applied())
    })
    .await??;
    println!("search index rebuilt up to change {applied}");
    Ok(())
}

pub(super) async fn reextract(args: ReextractArgs, every: Duration) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let progress = Progress::new("re-extracted", 0, "articles", every);
    let (total, changed, skipped) = match &args.server {
        Some(server) => {
            let mut client = crate::api::proto::admin_service_client::AdminServiceClient::new(
                args.client.connect(server).await?,
            );
            let request = args
                .client
                .request(crate::api::proto::ReextractArticlesRequest {})?;
            let refused = |status| args.client.refused(server, status);
            let mut stream = client
                .reextract_articles(request)
                .await
                .map_err(refused)?
                .into_inner();
            let mut last = None;
            while let Some(update) = stream.message().await.map_err(refused)? {
                let n = |v: i64| u64::try_from(v).unwrap_or(0);
                progress.set_total(n(update.articles_total));
                progress.note(reextract_note(
                    n(update.articles_changed),
                    n(update.articles_skipped),
                ));
                progress.set(n(update.articles_done));
                last = Some(update);
            }
            let last = last.context("the server sent no progress")?;
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            (
                n(last.articles_done),
                n(last.articles_changed),
                n(last.articles_skipped),
            )
        }
        None => {
            let config = args.data.config();
            let store = open_store_to_write(&config, "reextract", true)?;
            let ingest = Ingest::new(store.clone(), Limits::default());
            let state = ingest
                .reextract_all(|s| {
                    progress.set_total(s.total);
                    progress.note(reextract_note(s.changed, s.skipped));
                    progress.set(s.done);
                    true
                })
                .await?;
            tokio::task::spawn_blocking(move || store.flush()).await??;
            (state.done, state.changed, state.skipped)
        }
    };
    progress.finish();
    println!(
        "re-extracted {total} articles in {:.1} s: {changed} changed, {skipped} skipped",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The note after re-extraction's counts.
fn reextract_note(changed: u64, skipped: u64) -> String {
    format!("({changed} changed, {skipped} skipped)")
}
