//! The command line, one file per command group: `serve.rs` (`serve`, the default),
//! `files.rs` (`seed`, `import`, `export`), `backup.rs` (`backup`, `restore`),
//! `maintenance.rs` (`check`, `stats`, `reindex`, `reextract`) and `ner.rs` (the `ner`
//! tools). `client.rs` is how the client commands reach a server; `progress.rs` is how long
//! commands show how far they have got. This file parses the command line, sets up logging
//! and the runtime, and dispatches.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod backup;
mod client;
mod files;
mod maintenance;
mod ner;
mod progress;
mod serve;

use backup::{BackupArgs, RestoreArgs};
use files::{ExportArgs, ImportArgs, SeedArgs};
use maintenance::ReextractArgs;
use ner::NerCommand;
use serve::ServeArgs;

use crate::app::{self, Config};

/// A gRPC document store for news: articles, the people, organisations and places in them,
/// and the queries a newsroom runs over both.
///
/// With no command it serves (see `newsstore serve --help`). Logs go to stderr; set
/// RUST_LOG (for example RUST_LOG=debug) to change how much is logged.
#[derive(Debug, Parser)]
#[command(name = "newsstore", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Log lines as human-readable text or as JSON objects (one per line, with the
    /// request's span fields such as request_id).
    #[arg(long, global = true, env = "NEWSSTORE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// When stderr is not a terminal, import, export and re-extraction log their progress
    /// this often, in seconds (on a terminal they draw a bar instead).
    #[arg(
        long,
        global = true,
        env = "NEWSSTORE_PROGRESS_SECS",
        default_value_t = 5
    )]
    progress_secs: u64,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the gRPC API (the default). Loads the seeds folder first.
    Serve(Box<ServeArgs>),
    /// Load the seeds folder into the database and exit, without serving. The search index
    /// catches up the next time the server starts.
    Seed(SeedArgs),
    /// Rebuild the full-text search index from the database.
    Reindex(DataArgs),
    /// Verify that every index of the database agrees with the articles (a full scan; the
    /// server must be stopped). Exit code 1 lists the problems; restore a backup then.
    Check(DataArgs),
    /// What the database holds per key space against what its files take on disk (a full
    /// scan; the server must be stopped).
    Stats(DataArgs),
    /// Import articles from IPTC ninjs (.json) and plain-text (.txt) files or folders
    /// (walked recursively) into the database, without serving (stop the server first; it
    /// indexes them when it next starts). Resumable: files already imported unchanged are
    /// skipped, so an interrupted import carries on when run again. Bad files are listed
    /// and do not stop the rest; the exit code is 1 if there were any.
    Import(ImportArgs),
    /// Take a consistent backup of a running server's database into a file (writes pause
    /// while the server copies it to its disk; reads go on). Needs the admin scope when
    /// tokens are configured.
    Backup(BackupArgs),
    /// Restore a backup file into a new, empty data folder (then start the server on it;
    /// the search index is rebuilt at start).
    Restore(RestoreArgs),
    /// Export every article as one IPTC ninjs 2.1 document (<id>.json) into a folder,
    /// without serving (stop the server first).
    Export(ExportArgs),
    /// Run entity and quote extraction again over every stored article, after the tagger
    /// model or editorial decisions changed. With --server it runs inside a running server,
    /// which keeps serving; without, it opens the data folder itself (the server must be
    /// stopped, and the search index catches up when it next starts).
    Reextract(ReextractArgs),
    /// Tools for the entity extractor.
    #[command(subcommand)]
    Ner(NerCommand),
}

#[derive(Debug, Clone, Args)]
struct DataArgs {
    /// Folder for the database and the search index.
    #[arg(long, env = "NEWSSTORE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Database page cache, in MiB. sled counts it by encoded size; the nodes it holds
    /// take more memory than that. Raise it for stores well past 100,000 articles or with
    /// a hot set that fits.
    #[arg(long, env = "NEWSSTORE_CACHE_MB", default_value_t = app::DEFAULT_CACHE_MB)]
    cache_mb: u64,
}

impl DataArgs {
    fn config(&self) -> Config {
        let mut config = Config::new(([127, 0, 0, 1], 0).into(), self.data_dir.clone());
        config.cache_bytes = self.cache_mb * 1024 * 1024;
        config
    }
}

/// Opens the store of `config` for a command that works on an existing database (check,
/// stats, export, reindex, re-extraction): a folder without one is refused, naming it,
/// instead of getting a new empty database and a report of success.
fn open_existing_store(config: &Config) -> anyhow::Result<std::sync::Arc<crate::store::Store>> {
    let store_dir = config.store_dir();
    if !store_dir.join("conf").is_file() {
        anyhow::bail!(
            "{} holds no newsstore database (there is no {}); check --data-dir \
             (NEWSSTORE_DATA_DIR)",
            config.data_dir.display(),
            store_dir.join("conf").display()
        );
    }
    app::open_store(config)
}

/// Opens the store of `config` for a command that writes to it without a server (seed,
/// import, re-extraction). A cluster node's store is refused: its state comes from the
/// cluster's log, and a write made beside the log would make this node differ from the
/// others for good.
fn open_store_to_write(
    config: &Config,
    command: &str,
    existing: bool,
) -> anyhow::Result<std::sync::Arc<crate::store::Store>> {
    let store = if existing {
        open_existing_store(config)?
    } else {
        app::open_store(config)?
    };
    if let Some(log) = store.followed_log()? {
        anyhow::bail!(
            "{} holds a cluster node (it follows the log {log}); `newsstore {command}` would              write beside the log. Write through a running node's API instead (for files:              `newsstore import --server`, or start the node with the seeds folder)",
            config.data_dir.display()
        );
    }
    Ok(store)
}

/// Runs the command line; the process exit code says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let access_log = match &cli.command {
        None => cli.serve.access_log,
        Some(Command::Serve(args)) => args.access_log,
        Some(_) => false,
    };
    // The audit trail (`newsstore::audit`) is on at the default INFO; the access log is
    // its own switch, so it never comes with, or costs, any other target's verbosity.
    let mut filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tantivy=warn,sled=warn"));
    let access = if access_log {
        "newsstore::access=info"
    } else {
        "newsstore::access=off"
    };
    if let Ok(directive) = access.parse() {
        filter = filter.add_directive(directive);
    }
    // Colours only for a person at a terminal, never into a file or a log collector.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        // The event's fields, `message` first among them, at the top level of each object,
        // where log collectors look for them.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(blocking_threads())
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // One line per error, on stderr, not a log line and a copy of it.
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let every = Duration::from_secs(cli.progress_secs);
    match cli.command.unwrap_or(Command::Serve(Box::new(cli.serve))) {
        Command::Serve(args) => serve::run(args).await,
        Command::Seed(args) => files::seed(args).await,
        Command::Import(args) => files::import(args, every).await,
        Command::Export(args) => files::export(args, every).await,
        Command::Backup(args) => backup::backup(args).await,
        Command::Restore(args) => backup::restore(args).await,
        Command::Check(args) => maintenance::check(args).await,
        Command::Stats(args) => maintenance::stats(args).await,
        Command::Reindex(args) => maintenance::reindex(args).await,
        Command::Reextract(args) => maintenance::reextract(args, every).await,
        Command::Ner(command) => ner::run(command).await,
    }
}

/// Threads for blocking work (extraction, store writes, searches): four per core, at least
/// eight. The work is CPU-bound, so more threads than that only queue on the cores, and
/// each thread keeps its own allocator heap: at 100,000 articles, tokio's default of 512
/// let CreateArticle with 16 clients run about 50 threads and peak 470 to 500 MiB, where
/// 8 threads peaked at 425 MiB with the same throughput within the machine's noise.
fn blocking_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    (cores * 4).max(8)
}
