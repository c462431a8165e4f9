//! `backup` (a running server's database into a file, through the API) and `restore` (a
//! backup file into a new data folder).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::DataArgs;
use super::client::ClientArgs;

#[derive(Debug, Clone, Args)]
pub(super) struct BackupArgs {
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
pub(super) struct RestoreArgs {
    /// The backup file.
    #[arg(long)]
    from: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

pub(super) async fn backup(args: BackupArgs) -> anyhow::Result<()> {
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

pub(super) async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let config = args.data.config();
    let store_dir = config.store_dir();
    let from = args.from.clone();
    let summary =
        tokio::task::spawn_blocking(move || crate::store::Store::restore(&store_dir, &from))
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

/// A backup of the server at `server`, streamed into `out` (written under another name and
/// renamed when complete, so a file at `out` is always a whole backup).
pub(super) async fn fetch_backup(
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
pub(super) struct BackupSummary {
    bytes: u64,
    sequence: i64,
    entries: i64,
}
