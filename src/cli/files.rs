//! The commands that move articles between files and a database: `seed` (the seeds
//! folder), `import` (ninjs and plain-text files, with entity sidecars) and `export` (ninjs
//! documents and the entity sidecar, from a data folder or a running server).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::backup::fetch_backup;
use super::client::ClientArgs;
use super::progress::Progress;
use super::{DataArgs, open_existing_store, open_store_to_write};
use crate::app::{self, Config};
use crate::ingest::{Ingest, Limits};

#[derive(Debug, Clone, Args)]
pub(super) struct SeedArgs {
    #[command(flatten)]
    pub(super) data: DataArgs,
    /// Folder of seed documents (plain-text articles, `.txt`).
    #[arg(long, env = "NEWSSTORE_SEEDS", default_value = "./seeds")]
    pub(super) seeds: PathBuf,
    /// Seed files larger than this many bytes are skipped.
    #[arg(long, env = "NEWSSTORE_MAX_SEED_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub(super) max_seed_bytes: u64,
}

#[derive(Debug, Clone, Args)]
pub(super) struct ImportArgs {
    /// Files and folders to import.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Largest file accepted, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    max_file_bytes: u64,
}

#[derive(Debug, Clone, Args)]
pub(super) struct ExportArgs {
    /// Folder to write the documents to: new, or empty (an export never mixes with other
    /// files). Each article is `<id>.json`; the entity records go to
    /// `newsstore-entities.jsonl` beside them.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Export from a running server instead of the data folder: it takes a backup through
    /// the API (the server keeps serving) and exports that. The token needs the admin scope.
    #[arg(long)]
    server: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

pub(super) async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let config = args.data.config();
    let store = open_store_to_write(&config, "seed", false)?;
    let ingest = Ingest::new(store.clone(), Limits::default());
    let report = crate::seed::load(&ingest, &args.seeds, args.max_seed_bytes).await;
    drop(ingest);
    // Closing checkpoints, so the server's next start does not replay the load.
    tokio::task::spawn_blocking(move || store.close(app::CLOSE_WAIT)).await??;
    println!(
        "seeds: {} created, {} updated, {} unchanged, {} skipped",
        report.created,
        report.updated,
        report.unchanged,
        report.skipped.len()
    );
    for (path, reason) in &report.skipped {
        println!("skipped {}: {reason}", path.display());
    }
    Ok(())
}

pub(super) async fn import(args: ImportArgs, every: Duration) -> anyhow::Result<()> {
    let config = args.data.config();
    let mut files =
        crate::seed::collect_files(&args.paths).context("cannot read the files to import")?;
    // Entity sidecars of newsstore exports are applied after the articles.
    let sidecars: Vec<PathBuf> = files
        .extract_if(.., |path| {
            path.file_name()
                .is_some_and(|name| name == crate::ninjs::entities::FILE)
        })
        .collect();
    let mut records = Vec::new();
    for path in &sidecars {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        records.extend(
            crate::ninjs::entities::parse(&text)
                .map_err(|why| anyhow::anyhow!("{} is not valid: {why}", path.display()))?,
        );
    }
    let store = open_store_to_write(&config, "import", false)?;
    let ingest = Ingest::new(store.clone(), Limits::default());
    let progress = Progress::new("imported", files.len() as u64, "files", every);
    let report = crate::seed::load_files(&ingest, files, args.max_file_bytes, |p| {
        if p.failed > 0 {
            progress.note(format!("({} bad)", p.failed));
        }
        progress.set(p.done as u64);
    })
    .await;
    progress.finish();
    drop(ingest);
    let applier = store.clone();
    let decisions =
        tokio::task::spawn_blocking(move || crate::seed::apply_entity_records(&applier, &records))
            .await?;
    let durable = store.clone();
    tokio::task::spawn_blocking(move || durable.flush()).await??;
    let elapsed = progress.elapsed().as_secs_f64();
    // Closing checkpoints, so the server's next start does not replay the import.
    tokio::task::spawn_blocking(move || store.close(app::CLOSE_WAIT)).await??;
    println!(
        "imported: {} created, {} updated, {} unchanged (already imported), {} bad, in \
             {elapsed:.1} s ({:.0} files/s)",
        report.created,
        report.updated,
        report.unchanged,
        report.skipped.len(),
        report.loaded() as f64 / elapsed.max(1e-9)
    );
    for (path, reason) in &report.skipped {
        println!("bad file {}: {reason}", path.display());
    }
    if !sidecars.is_empty() {
        println!(
            "entity records: {} updated, {} merged, {} blocked, {} unchanged, {} not \
                 applied",
            decisions.updated,
            decisions.merged,
            decisions.blocked,
            decisions.unchanged,
            decisions.not_applied.len()
        );
        for (id, why) in &decisions.not_applied {
            println!("entity {id:?} not applied: {why}");
        }
    }
    if report.skipped.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{} files could not be imported (listed above); fix them and run the \
                 import again: what was imported is kept and skipped",
            report.skipped.len()
        ))
    }
}

pub(super) async fn export(args: ExportArgs, every: Duration) -> anyhow::Result<()> {
    let out = args.out.clone();
    let not_empty = std::fs::read_dir(&out).is_ok_and(|mut entries| entries.next().is_some());
    if not_empty {
        anyhow::bail!(
            "{} is not empty; export into a new or empty folder (an export never mixes \
                 with other files)",
            out.display()
        );
    }
    // From a running server: its backup, restored into a scratch folder beside the
    // output (same disk, removed afterwards whatever happens).
    let scratch = match &args.server {
        Some(server) => {
            let scratch = Scratch::new(&out)?;
            let file = scratch.path().join("export.backup");
            fetch_backup(&args.client, server, &file).await?;
            let store_dir = scratch.path().join("data").join("store");
            tokio::task::spawn_blocking(move || crate::store::Store::restore(&store_dir, &file))
                .await??;
            Some(scratch)
        }
        None => None,
    };
    let config = match &scratch {
        Some(scratch) => Config::new("127.0.0.1:0".parse()?, scratch.path().join("data")),
        None => args.data.config(),
    };
    let store = open_existing_store(&config)?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let total = store.article_count()?;
    let progress = Progress::new("exported", total, "articles", every);
    let worker_progress = progress.clone();
    let (written, entities) =
        tokio::task::spawn_blocking(move || write_export(&store, &out, &worker_progress)).await??;
    progress.finish();
    drop(scratch);
    println!(
        "exported {written} articles as ninjs and {entities} entity records to {}",
        args.out.display()
    );
    Ok(())
}

/// A folder for intermediate files beside `near`, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(near: &std::path::Path) -> anyhow::Result<Scratch> {
        let parent = near
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let name = format!(".newsstore-scratch-{}", uuid::Uuid::now_v7().as_simple());
        let path = parent.join(name);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Scratch(path))
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes every article of `store` as ninjs into `out`, and every entity record into the
/// sidecar: (articles, entity records) written.
fn write_export(
    store: &crate::store::Store,
    out: &std::path::Path,
    progress: &Progress,
) -> anyhow::Result<(u64, u64)> {
    let write = |path: &std::path::Path, bytes: &[u8]| -> anyhow::Result<()> {
        // Written whole or not at all: a partial file would import as bad.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, bytes)
            .and_then(|()| std::fs::rename(&partial, path))
            .with_context(|| format!("cannot write {}", path.display()))
    };
    let mut after: Option<String> = None;
    let mut articles = 0;
    loop {
        let page = store.articles_after(after.as_deref(), 256)?;
        let Some(last) = page.last() else {
            break;
        };
        // Pages move strictly forward, whatever the store holds, so an export ends.
        if after
            .as_deref()
            .is_some_and(|after| last.id.as_str() <= after)
        {
            anyhow::bail!(
                "the store's article listing does not move forward after {:?}; it is damaged: \
                 run `newsstore check`",
                after.unwrap_or_default()
            );
        }
        after = Some(last.id.clone());
        for article in &page {
            // The id becomes a file name: it must keep the id rule (which allows no path
            // separator and no leading dot) or the file could land outside `out`.
            if !crate::model::is_valid_article_id(&article.id) {
                anyhow::bail!(
                    "the store holds article id {}, which breaks the article-id rule, so it is \
                     not written as a file name; the store is damaged: run `newsstore check`",
                    crate::error::quoted(&article.id)
                );
            }
            let json = crate::ninjs::to_json(&crate::ninjs::export(article));
            write(&out.join(format!("{}.json", article.id)), json.as_bytes())?;
            articles += 1;
            progress.inc(1);
        }
    }
    let mut lines = String::new();
    let mut entities = 0;
    for code in 1..store.next_entity_code()? {
        let Some(id) = store.entity_id_by_code(code)? else {
            continue;
        };
        if let Some(entity) = store.get_entity(&id)? {
            lines.push_str(&crate::ninjs::entities::EntityRecord::of(&entity).to_line());
            lines.push('\n');
            entities += 1;
        }
    }
    write(&out.join(crate::ninjs::entities::FILE), lines.as_bytes())?;
    Ok((articles, entities))
}
