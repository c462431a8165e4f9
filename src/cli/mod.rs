//! The command line: `serve` (the default), `seed`, `reindex`, `reextract` and the `ner`
//! tools.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use anyhow::Context as _;

mod client;
mod progress;

use client::ClientArgs;
use progress::Progress;

use crate::api::auth::AuthConfig;
use crate::app::{self, Application, Config};
use crate::corpus::{conll, tagger};
use crate::extract::ner::{self, Model};
use crate::ingest::{Ingest, Limits};
use crate::search::SearchIndex;
use crate::store::Retention;

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

#[derive(Debug, Subcommand)]
enum NerCommand {
    /// Rebuild the extractor's generated word lists (src/extract/data/gazetteer.tsv,
    /// given_names.txt, common_words.txt) from the CoNLL-2003 and GMB training corpora.
    BuildLexicon {
        /// Folder holding CoNLL-2003 `train.txt`.
        #[arg(long, default_value = "../shared/data/ner-train")]
        conll: PathBuf,
        /// Folder holding GMB `train.conll`.
        #[arg(long, default_value = "../shared/data/ner-train-gmb")]
        gmb: PathBuf,
        /// Where to write the files.
        #[arg(long, default_value = "src/extract/data")]
        out: PathBuf,
    },
    /// Train the entity tagger and write the model (by default over the shipped one, which
    /// this reproduces). Prints the development-set F1 after each epoch.
    Train {
        /// Folder holding CoNLL-2003 `train.txt` and `valid.txt`.
        #[arg(long, default_value = "../shared/data/ner-train")]
        conll: PathBuf,
        /// Folder holding GMB `train.conll` (names for the gazetteer, text for clusters).
        #[arg(long, default_value = "../shared/data/ner-train-gmb")]
        gmb: PathBuf,
        /// Folder of unlabelled news articles for the word clusters.
        #[arg(long, default_value = "../shared/data/news")]
        news: PathBuf,
        /// Passes over the training set.
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Reuse the word clusters of this model file instead of learning them again.
        #[arg(long)]
        clusters_from: Option<PathBuf>,
        /// Where to write the model.
        #[arg(long, default_value = "src/extract/data/ner.model")]
        out: PathBuf,
    },
    /// Tag a CoNLL-format file: each token line is written back with the predicted IOB2 tag
    /// as one more column; blank and `-DOCSTART-` lines pass through. Plain text (prose,
    /// not one token per line) is recognised, tokenised as ingest does, and written as
    /// `token tag` lines with a blank line after each sentence.
    Tag {
        /// The file to tag; standard input when absent.
        file: Option<PathBuf>,
        /// A model file to use instead of the shipped model.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Score the tagger on a CoNLL-format file whose last column is the gold tag: entity-level
    /// precision, recall and F1 per type, as conlleval counts them.
    Eval {
        /// The annotated file (for example ../shared/data/ner-train/valid.txt).
        file: PathBuf,
        /// A model file to use instead of the shipped model.
        #[arg(long)]
        model: Option<PathBuf>,
    },
}

/// The model a `ner` command uses: the one in `path`, or the shipped one.
fn ner_model(path: Option<&std::path::Path>) -> anyhow::Result<std::borrow::Cow<'static, Model>> {
    use std::borrow::Cow;
    match path {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read model {}", path.display()))?;
            let model = Model::from_bytes(&bytes)
                .with_context(|| format!("cannot load model {}", path.display()))?;
            Ok(Cow::Owned(model))
        }
        None => ner::shipped()
            .map(Cow::Borrowed)
            .map_err(|e| anyhow::anyhow!("the shipped model cannot be loaded: {e}")),
    }
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

#[derive(Debug, Clone, Args)]
struct ImportArgs {
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
struct BackupArgs {
    /// Address of the running server (for example 127.0.0.1:50051).
    #[arg(long, default_value = "127.0.0.1:50051")]
    server: String,
    /// The backup file to write.
    #[arg(long)]
    out: PathBuf,
    /// The token needs the admin scope.
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
struct RestoreArgs {
    /// The backup file.
    #[arg(long)]
    from: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Clone, Args)]
struct ExportArgs {
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

#[derive(Debug, Clone, Args)]
struct ReextractArgs {
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

/// A backup of the server at `server`, streamed into `out` (written under another name and
/// renamed when complete, so a file at `out` is always a whole backup).
async fn fetch_backup(
    client: &ClientArgs,
    server: &str,
    out: &std::path::Path,
) -> anyhow::Result<BackupSummary> {
    let mut admin = crate::api::proto::admin_service_client::AdminServiceClient::new(
        client.connect(server).await?,
    )
    .max_decoding_message_size(8 << 20);
    let request = client.request(crate::api::proto::BackupRequest {})?;
    let refused = |status| client.refused(server, status);
    let mut stream = admin.backup(request).await.map_err(refused)?.into_inner();
    let partial = out.with_extension("partial");
    let mut file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut summary = BackupSummary::default();
    while let Some(chunk) = stream.message().await.map_err(refused)? {
        std::io::Write::write_all(&mut file, &chunk.data)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        summary.bytes += chunk.data.len() as u64;
        summary.sequence = chunk.sequence;
        summary.entries = chunk.entries;
    }
    file.sync_all()?;
    std::fs::rename(&partial, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(summary)
}

#[derive(Debug, Default)]
struct BackupSummary {
    bytes: u64,
    sequence: i64,
    entries: i64,
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
fn export(
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

/// The note after re-extraction's counts.
fn reextract_note(changed: u64, skipped: u64) -> String {
    format!("({changed} changed, {skipped} skipped)")
}

#[derive(Debug, Clone, Args)]
struct SeedArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Folder of seed documents (plain-text articles, `.txt`).
    #[arg(long, env = "NEWSSTORE_SEEDS", default_value = "./seeds")]
    seeds: PathBuf,
    /// Seed files larger than this many bytes are skipped.
    #[arg(long, env = "NEWSSTORE_MAX_SEED_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_seed_bytes: u64,
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "NEWSSTORE_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    #[command(flatten)]
    seed: SeedArgs,
    /// Do not load the seeds folder at startup.
    #[arg(long, env = "NEWSSTORE_NO_SEED")]
    no_seed: bool,
    /// Log every call at INFO in the `newsstore::access` target (method, code, time taken,
    /// request id, token name). Off by default; RUST_LOG does not turn it on or off.
    #[arg(long, env = "NEWSSTORE_ACCESS_LOG")]
    access_log: bool,
    /// Longest time, in milliseconds, before a written article is searchable.
    #[arg(long, env = "NEWSSTORE_INDEX_REFRESH_MS", default_value_t = 500)]
    index_refresh_ms: u64,
    /// Largest article body accepted, in bytes.
    #[arg(long, env = "NEWSSTORE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Most articles in one BatchCreateArticles call.
    #[arg(long, env = "NEWSSTORE_MAX_BATCH", default_value_t = 1000)]
    max_batch: usize,
    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "NEWSSTORE_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    max_message_bytes: usize,
    /// Seconds shutdown waits for in-flight calls and open streams before closing them.
    #[arg(long, env = "NEWSSTORE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,
    /// Seconds a change-feed reader may leave its buffer full before its stream ends with
    /// RESOURCE_EXHAUSTED saying where to resume.
    #[arg(long, env = "NEWSSTORE_WATCH_SLOW_READER_SECS", default_value_t = 30)]
    watch_slow_reader_secs: u64,
    /// Change-log entries kept at most; older ones are compacted away (watchers resuming
    /// before the oldest kept get OUT_OF_RANGE).
    #[arg(
        long,
        env = "NEWSSTORE_CHANGE_RETENTION_COUNT",
        default_value_t = 10_000_000
    )]
    change_retention_count: u64,
    /// Days a change-log entry is kept at most.
    #[arg(long, env = "NEWSSTORE_CHANGE_RETENTION_DAYS", default_value_t = 30.0)]
    change_retention_days: f64,
    /// Hours a request_id is remembered, so a retry within them is answered with the
    /// first result.
    #[arg(
        long,
        env = "NEWSSTORE_REQUEST_ID_RETENTION_HOURS",
        default_value_t = 24.0
    )]
    request_id_retention_hours: f64,
    /// Seconds between change-log compactions.
    #[arg(long, env = "NEWSSTORE_COMPACT_EVERY_SECS", default_value_t = 60)]
    compact_every_secs: u64,
    /// Origins browsers may call the API from through gRPC-Web, comma-separated (for
    /// example https://cms.example.com), or * for any. gRPC-Web itself is always served;
    /// without this, browsers only allow it from the server's own origin.
    #[arg(long, env = "NEWSSTORE_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// A JSON file of bearer tokens and their scopes: {"tokens": [{"name": "cms", "token":
    /// "…", "scope": "write"}], "open_reads": false}. Scopes: read < write (articles) < editor
    /// (entity decisions) < admin (purge, re-extraction, backup); docs/operations.md has the
    /// table. Without --auth-file and --tokens every call is allowed; given but yielding no
    /// token, the server refuses to start. The scheme is matched in any case.
    #[arg(long, env = "NEWSSTORE_AUTH_FILE")]
    auth_file: Option<PathBuf>,
    /// Tokens as name:token:scope, comma-separated (added to --auth-file's).
    #[arg(long, env = "NEWSSTORE_TOKENS", hide_env_values = true)]
    tokens: Option<String>,
    /// Let reads through without a token (writes still need one).
    #[arg(long, env = "NEWSSTORE_OPEN_READS")]
    open_reads: bool,
    /// Serve TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "NEWSSTORE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "NEWSSTORE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Calls in flight at most; more are refused at once with RESOURCE_EXHAUSTED (health
    /// checks never are). 0 turns the limit off.
    #[arg(long, env = "NEWSSTORE_MAX_IN_FLIGHT", default_value_t = 512)]
    max_in_flight: usize,
    /// Change streams one client address may hold open; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "NEWSSTORE_MAX_WATCHERS_PER_CLIENT", default_value_t = 256)]
    max_watchers_per_client: usize,
    /// Serve Prometheus metrics at http://ADDR/metrics (for example 127.0.0.1:9090).
    #[arg(long, env = "NEWSSTORE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Require client certificates signed by this PEM CA (mutual TLS).
    #[arg(long, env = "NEWSSTORE_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Connections open at once at most; past it new connections are closed at once (and
    /// logged). Defaults to three quarters of the process's file limit, at most 10,000.
    #[arg(long, env = "NEWSSTORE_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Seconds a new connection has to start talking (the HTTP/2 preface, an HTTP/1.1
    /// request, a TLS handshake) before it is closed.
    #[arg(long, env = "NEWSSTORE_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10)]
    handshake_timeout_secs: u64,
    /// Free disk space, in MiB, that writes must leave on the data folder's disk: below it
    /// writes get RESOURCE_EXHAUSTED (STORAGE_FULL), the health name newsstore.v1.Writes
    /// turns NOT_SERVING, reads go on, and writes resume by themselves once space is freed.
    /// 0 turns the check off.
    #[arg(long, env = "NEWSSTORE_MIN_FREE_MB", default_value_t = app::DEFAULT_MIN_FREE_MB)]
    min_free_mb: u64,
    /// Serve a database that lost acknowledged changes (its storage log was damaged)
    /// instead of refusing to start: what is left is served, sequence numbers continue
    /// above the last acknowledged one, and the search index is rebuilt. Restoring the
    /// last backup loses less; use this only when there is none. No environment variable,
    /// so it is never left on by accident.
    #[arg(long)]
    accept_data_loss: bool,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::new(self.listen, self.seed.data.data_dir.clone());
        config.seeds = (!self.no_seed).then(|| self.seed.seeds.clone());
        config.max_seed_bytes = self.seed.max_seed_bytes;
        config.cache_bytes = self.seed.data.cache_mb * 1024 * 1024;
        config.index_refresh = Duration::from_millis(self.index_refresh_ms);
        config.limits = Limits {
            max_body_bytes: self.max_body_bytes,
            max_batch: self.max_batch,
            ..Limits::default()
        };
        config.max_message_bytes = self.max_message_bytes;
        config.shutdown_grace = Duration::from_secs(self.shutdown_grace_secs);
        config.watch_slow_reader = Duration::from_secs(self.watch_slow_reader_secs);
        let hours =
            |h: f64| Duration::try_from_secs_f64(h.max(0.0) * 3600.0).unwrap_or(Duration::MAX);
        config.retention = Retention {
            changes: self.change_retention_count.max(1),
            change_age: hours(self.change_retention_days * 24.0),
            request_ids: hours(self.request_id_retention_hours),
        };
        config.compact_every = Duration::from_secs(self.compact_every_secs.max(1));
        config.cors_origins.clone_from(&self.cors_origins);
        let mut auth = match &self.auth_file {
            Some(path) => AuthConfig::from_file(path)?,
            None => AuthConfig::default(),
        };
        if let Some(tokens) = &self.tokens {
            auth.tokens.extend(AuthConfig::parse_tokens(tokens)?);
        }
        // Asked for authentication but given no token: refuse rather than serve open.
        if (self.auth_file.is_some() || self.tokens.is_some()) && auth.tokens.is_empty() {
            anyhow::bail!(
                "--auth-file/--tokens (NEWSSTORE_AUTH_FILE/NEWSSTORE_TOKENS) yield no token, \
                 which would leave every call open; add tokens, or remove the option to \
                 serve without authentication"
            );
        }
        auth.open_reads |= self.open_reads;
        auth.validate()?;
        config.auth = auth;
        config.metrics_listen = self.metrics_listen;
        config.max_in_flight = self.max_in_flight;
        config.max_watchers_per_client = self.max_watchers_per_client;
        config.accept_data_loss = self.accept_data_loss;
        config.min_free_bytes = self.min_free_mb.saturating_mul(1 << 20);
        if let Some(max) = self.max_connections {
            config.max_connections = max;
        }
        config.handshake_timeout = Duration::from_secs(self.handshake_timeout_secs.max(1));
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls = Some(app::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            });
        }
        Ok(config)
    }
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
        Command::Serve(args) => {
            let app = Application::build(args.config()?).await?;
            app.run_until(app::shutdown_signal()).await
        }
        Command::Seed(args) => {
            let config = args.data.config();
            let store = app::open_store(&config)?;
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
        Command::Reextract(args) => {
            let started = std::time::Instant::now();
            let progress = Progress::new("re-extracted", 0, "articles", every);
            let (total, changed, skipped) = match &args.server {
                Some(server) => {
                    let mut client =
                        crate::api::proto::admin_service_client::AdminServiceClient::new(
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
                    let store = open_existing_store(&config)?;
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
        Command::Import(args) => {
            let config = args.data.config();
            let mut files = crate::seed::collect_files(&args.paths)
                .context("cannot read the files to import")?;
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
                records
                    .extend(crate::ninjs::entities::parse(&text).map_err(|why| {
                        anyhow::anyhow!("{} is not valid: {why}", path.display())
                    })?);
            }
            let store = app::open_store(&config)?;
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
            let decisions = tokio::task::spawn_blocking(move || {
                crate::seed::apply_entity_records(&applier, &records)
            })
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
        Command::Backup(args) => {
            let summary = fetch_backup(&args.client, &args.server, &args.out).await?;
            println!(
                "backup of {} entries (state after change {}), {:.1} MiB, written to {}",
                summary.entries,
                summary.sequence,
                summary.bytes as f64 / (1024.0 * 1024.0),
                args.out.display()
            );
            Ok(())
        }
        Command::Restore(args) => {
            let config = args.data.config();
            let store_dir = config.store_dir();
            let from = args.from.clone();
            let summary = tokio::task::spawn_blocking(move || {
                crate::store::Store::restore(&store_dir, &from)
            })
            .await??;
            // An index beside the restored store would describe other data.
            let index = config.index_dir();
            if index.exists() {
                std::fs::remove_dir_all(&index)?;
            }
            println!(
                "restored {} entries (state after change {}) into {}; start the server on it \
                 (the search index is rebuilt then)",
                summary.entries,
                summary.sequence,
                config.data_dir.display()
            );
            Ok(())
        }
        Command::Export(args) => {
            let out = args.out.clone();
            let not_empty =
                std::fs::read_dir(&out).is_ok_and(|mut entries| entries.next().is_some());
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
                    tokio::task::spawn_blocking(move || {
                        crate::store::Store::restore(&store_dir, &file)
                    })
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
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let total = store.article_count()?;
            let progress = Progress::new("exported", total, "articles", every);
            let worker_progress = progress.clone();
            let (written, entities) =
                tokio::task::spawn_blocking(move || export(&store, &out, &worker_progress))
                    .await??;
            progress.finish();
            drop(scratch);
            println!(
                "exported {written} articles as ninjs and {entities} entity records to {}",
                args.out.display()
            );
            Ok(())
        }
        Command::Check(args) => {
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
        Command::Stats(args) => {
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
        Command::Reindex(args) => {
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
        Command::Ner(NerCommand::Train {
            conll,
            gmb,
            news,
            epochs,
            clusters_from,
            out,
        }) => {
            let clusters_from = match clusters_from {
                Some(path) => Some(ner_model(Some(&path))?.into_owned()),
                None => None,
            };
            let options = tagger::Options {
                conll,
                gmb,
                news,
                epochs,
                clusters_from,
            };
            let started = std::time::Instant::now();
            let (model, scores) = tokio::task::spawn_blocking(move || {
                tagger::train(&options, &|line| {
                    eprintln!("[{:>6.1} s] {line}", started.elapsed().as_secs_f64())
                })
            })
            .await??;
            let bytes = model.to_bytes();
            std::fs::write(&out, &bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            print!("{}", scores.report());
            println!(
                "wrote {} ({:.1} MiB) in {:.0} s",
                out.display(),
                bytes.len() as f64 / 1048576.0,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Ner(NerCommand::Tag { file, model }) => {
            let model = ner_model(model.as_deref())?;
            let text = match &file {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                None => std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?,
            };
            let started = std::time::Instant::now();
            let tagged = if conll::is_plain_text(&text) {
                tracing::info!(
                    "the input is plain text, not CoNLL columns: tokenising it into sentences"
                );
                conll::tag_plain_text(&model, &text)
            } else {
                conll::tag_file(&model, &text)
            };
            let seconds = started.elapsed().as_secs_f64();
            let tokens = tagged.lines().filter(|l| !l.trim().is_empty()).count();
            std::io::Write::write_all(&mut std::io::stdout().lock(), tagged.as_bytes())?;
            tracing::info!(
                "tagged {tokens} lines in {seconds:.3} s ({:.0} per second)",
                tokens as f64 / seconds.max(1e-9)
            );
            Ok(())
        }
        Command::Ner(NerCommand::Eval { file, model }) => {
            let model = ner_model(model.as_deref())?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let documents = conll::documents(&conll::lines(&text), &conll::conll_tag);
            let started = std::time::Instant::now();
            let scores = conll::evaluate(&model, &documents);
            let seconds = started.elapsed().as_secs_f64();
            print!("{}", scores.report());
            println!(
                "{:.0} tokens per second (one core, features and decoding)",
                scores.tokens as f64 / seconds.max(1e-9)
            );
            Ok(())
        }
        Command::Ner(NerCommand::BuildLexicon { conll, gmb, out }) => {
            let lexicon = crate::corpus::build_lexicon(&conll, &gmb)?;
            std::fs::write(out.join("gazetteer.tsv"), lexicon.gazetteer)?;
            std::fs::write(out.join("given_names.txt"), lexicon.given_names)?;
            std::fs::write(out.join("common_words.txt"), lexicon.common_words)?;
            println!(
                "wrote gazetteer.tsv, given_names.txt, common_words.txt to {}",
                out.display()
            );
            Ok(())
        }
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
