//! Loading article files, idempotently: the seeds folder at startup and `newsstore import`.
//!
//! A `.txt` file is a plain-text article whose id is the file name without its extension
//! (lower-cased, other characters replaced by '-'); a `.json` file is an IPTC ninjs
//! document whose id comes from its `uri` (see [`crate::ninjs`]). Either way reloading
//! finds the same article.
//! The store remembers a fingerprint of each file it loaded: an unchanged file is skipped
//! (so edits and deletes made through the API stand), a changed one becomes a new revision.
//! A bad file is reported with its name and the reason and does not stop the others.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::extract::document;
use crate::ingest::{FileArticle, Ingest, Upserted};
use crate::model::ArticleInput;

/// Files read, analysed and written together: one store write and one flush per chunk,
/// as a `BatchCreateArticles` call of this size would.
const CHUNK: usize = 128;
/// A chunk also ends once its files add up to this many bytes, so two chunks in flight hold
/// a bounded amount of text whatever the per-file limit.
const CHUNK_BYTES: u64 = 32 << 20;

/// What a seeding run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SeedReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Files not loaded, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

impl SeedReport {
    pub fn loaded(&self) -> usize {
        self.created + self.updated + self.unchanged
    }
}

/// The article id a seed file maps to, or `None` when its name has no usable characters.
pub fn id_for(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_string_lossy().to_lowercase();
    let id: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let id = id.trim_start_matches(['-', '_']);
    let id: String = id.chars().take(crate::model::MAX_ARTICLE_ID_LEN).collect();
    (!id.is_empty()).then_some(id)
}

/// A seed file read and checked: its article and the fingerprint of its bytes.
#[derive(Debug, Clone)]
pub struct SeedFile {
    /// The id the file's content names (ninjs), when it names one.
    pub id: Option<String>,
    pub input: ArticleInput,
    pub fingerprint: String,
}

/// Why a device, FIFO or socket among the files is skipped.
const NOT_REGULAR: &str = "it is not a regular file (a device, FIFO or socket), so it is not read";

/// The kinds of file the loader reads.
fn is_article_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("txt") || e.eq_ignore_ascii_case("json"))
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Reads and checks one seed file, returning its article or why it is unusable.
pub fn read_seed(path: &Path, max_bytes: u64) -> Result<SeedFile, String> {
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    // A device or a FIFO (or a link to one) is never opened: /dev/zero never ends, and
    // opening a FIFO waits for a writer.
    if !metadata.is_file() {
        return Err(NOT_REGULAR.into());
    }
    let size = metadata.len();
    let too_large = |size: u64| {
        format!("it is {size} bytes, larger than the {max_bytes}-byte limit (--max-seed-bytes)")
    };
    if size > max_bytes {
        return Err(too_large(size));
    }
    // Never more than the limit and one byte, whatever the size said: a file can grow
    // between the look and the read.
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?,
            max_bytes.saturating_add(1),
        ),
        &mut bytes,
    )
    .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("it is empty".into());
    }
    let controls = bytes
        .iter()
        .filter(|&&b| b == 0 || (b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c)))
        .count();
    if bytes.contains(&0) || controls * 20 > bytes.len() {
        return Err("it looks binary, not like text".into());
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "it is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    let fingerprint = hex::encode(Sha256::digest(text.as_bytes()));
    if is_json(path) {
        let imported = crate::ninjs::parse(&text).map_err(|e| e.to_string())?;
        return Ok(SeedFile {
            id: Some(imported.id),
            input: imported.input,
            fingerprint,
        });
    }
    let doc = document::parse(&text).map_err(|e| e.to_string())?;
    Ok(SeedFile {
        id: None,
        input: ArticleInput {
            headline: doc.headline,
            body: doc.body,
            byline: doc.byline,
            source: doc.source,
            language: "en".into(),
            ..ArticleInput::default()
        },
        fingerprint,
    })
}

/// How far a load has got, for progress displays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
}

/// Loads every `.txt` and `.json` file of `dir` (not its subfolders) through `ingest`. A
/// missing folder is a warning.
pub async fn load(ingest: &Ingest, dir: &Path, max_bytes: u64) -> SeedReport {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            tracing::warn!(dir = %dir.display(), error = %err, "the seeds folder cannot be read; no seeds loaded");
            return SeedReport::default();
        }
    };
    let files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    tracing::info!(dir = %dir.display(), files = files.len(), "loading seeds");
    let report = load_files(ingest, files, max_bytes, |progress| {
        if progress.done % 500 == 0 {
            tracing::info!(
                done = progress.done,
                total = progress.total,
                "loading seeds"
            );
        }
    })
    .await;
    tracing::info!(
        created = report.created,
        updated = report.updated,
        unchanged = report.unchanged,
        skipped = report.skipped.len(),
        "seeds loaded"
    );
    report
}

/// The files under `paths`: files as given, folders walked recursively; hidden entries
/// are left out.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = paths.to_vec();
    // Folders already walked, so a symbolic link back up the tree cannot loop.
    let mut walked = std::collections::HashSet::new();
    while let Some(path) = pending.pop() {
        // The error names the path: "No such file or directory" alone says nothing of
        // which of several arguments was mistyped.
        let named =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let metadata = std::fs::metadata(&path).map_err(named)?;
        if metadata.is_dir() {
            if !walked.insert(std::fs::canonicalize(&path).map_err(named)?) {
                continue;
            }
            for entry in std::fs::read_dir(&path).map_err(named)? {
                let entry = entry.map_err(named)?.path();
                if !is_hidden(&entry) {
                    pending.push(entry);
                }
            }
        } else if metadata.is_file() {
            files.push(path);
        } else {
            tracing::warn!(path = %path.display(), "{NOT_REGULAR}");
        }
    }
    Ok(files)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// Loads `files` through `ingest`, calling `progress` after each. A file already loaded
/// in the same version is skipped cheaply, which is what makes an interrupted load
/// resumable: run it again and it carries on. Bad files are reported, not fatal.
pub async fn load_files(
    ingest: &Ingest,
    mut files: Vec<PathBuf>,
    max_bytes: u64,
    mut progress: impl FnMut(Progress),
) -> SeedReport {
    let mut report = SeedReport::default();
    files.sort();
    // Text files are named by their file; ninjs files by their content, claimed on read.
    let claims: Arc<Mutex<HashMap<String, PathBuf>>> = Arc::default();
    let mut work = Vec::new();
    for path in files {
        if is_hidden(&path) {
            continue;
        }
        if !is_article_file(&path) {
            skip(
                &mut report,
                path,
                "it is not a .txt article or a .json ninjs document".into(),
            );
            continue;
        }
        if is_json(&path) {
            work.push((None, path));
            continue;
        }
        let Some(id) = id_for(&path) else {
            skip(
                &mut report,
                path,
                "its name has no letters or digits to make an id from".into(),
            );
            continue;
        };
        // Claimed here, in name order, so which of two clashing files wins is stable.
        match claim(&claims, Some(id), &path) {
            Ok(id) => work.push((Some(id), path)),
            Err(reason) => skip(&mut report, path, reason),
        }
    }

    // ninjs ids come from the files' content: read them first and claim them in name
    // order too, so which of two documents with one uri wins does not vary between runs.
    let unnamed: Vec<PathBuf> = work
        .iter()
        .filter(|(id, _)| id.is_none())
        .map(|(_, path)| path.clone())
        .collect();
    if !unnamed.is_empty() {
        let named = tokio::task::spawn_blocking(move || {
            unnamed
                .into_iter()
                .map(|path| (read_seed(&path, max_bytes).ok().and_then(|f| f.id), path))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let ids: HashMap<PathBuf, String> = named
            .into_iter()
            .filter_map(|(id, path)| id.map(|id| (path, id)))
            .collect();
        let mut kept = Vec::with_capacity(work.len());
        for (id, path) in work {
            let id = match (id, ids.get(&path)) {
                (Some(id), _) => Some(id),
                (None, Some(id)) => match claim(&claims, Some(id.clone()), &path) {
                    Ok(id) => Some(id),
                    Err(reason) => {
                        skip(&mut report, path, reason);
                        continue;
                    }
                },
                // Unreadable: the load below reports why.
                (None, None) => None,
            };
            kept.push((id, path));
        }
        work = kept;
    }

    let mut state = Progress {
        total: work.len(),
        ..Progress::default()
    };
    // Two chunks in flight: one being read and analysed while the other is written.
    let mut chunks = chunked(work).into_iter();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        while tasks.len() < 2
            && let Some(chunk) = chunks.next()
        {
            tasks.spawn(load_chunk(ingest.clone(), chunk, max_bytes));
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let outcomes = match joined {
            Ok(outcomes) => outcomes,
            Err(err) => {
                tracing::error!(error = %err, "a load task failed");
                continue;
            }
        };
        for (path, outcome) in outcomes {
            state.done += 1;
            match outcome {
                Ok(Upserted::Created) => report.created += 1,
                Ok(Upserted::Updated) => report.updated += 1,
                Ok(Upserted::Unchanged) => report.unchanged += 1,
                Err(reason) => {
                    state.failed += 1;
                    skip(&mut report, path, reason);
                }
            }
            progress(state);
        }
    }
    report.skipped.sort();
    report
}

/// `work` cut into chunks of at most [`CHUNK`] files and, but for a single larger file,
/// [`CHUNK_BYTES`] bytes.
fn chunked(work: Vec<(Option<String>, PathBuf)>) -> Vec<Vec<(Option<String>, PathBuf)>> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for (id, path) in work {
        // An unreadable file counts as empty here; reading it reports why.
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        if !chunk.is_empty() && (chunk.len() == CHUNK || bytes + size > CHUNK_BYTES) {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push((id, path));
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// Reads the files of `chunk` and loads their articles with one store write; the outcome
/// of each file, with the reason when it was not loaded.
async fn load_chunk(
    ingest: Ingest,
    chunk: Vec<(Option<String>, PathBuf)>,
    max_bytes: u64,
) -> Vec<(PathBuf, Result<Upserted, String>)> {
    let chunk_paths: Vec<PathBuf> = chunk.iter().map(|(_, path)| path.clone()).collect();
    let read = tokio::task::spawn_blocking(move || {
        chunk
            .into_par_iter()
            .map(|(id, path)| {
                let file = read_seed(&path, max_bytes);
                (id, path, file)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let read = match read {
        Ok(read) => read,
        // Every file of the chunk is reported, so none goes missing from the report.
        Err(err) => {
            return chunk_paths
                .into_iter()
                .map(|path| (path, Err(format!("reading it failed: {err}"))))
                .collect();
        }
    };
    let mut outcomes = Vec::with_capacity(read.len());
    let mut files = Vec::new();
    // The path of each of `files`, to pair with its outcome.
    let mut paths = Vec::new();
    for (id, path, file) in read {
        match (file, id) {
            (Ok(file), Some(id)) => {
                files.push(FileArticle {
                    id,
                    input: file.input,
                    fingerprint: file.fingerprint,
                });
                paths.push(path);
            }
            (Ok(_), None) => {
                outcomes.push((path, Err("it changed while it was being imported".into())));
            }
            (Err(reason), _) => outcomes.push((path, Err(reason))),
        }
    }
    let loaded = ingest.load_files(files).await;
    outcomes.extend(
        paths
            .into_iter()
            .zip(loaded)
            .map(|(path, outcome)| (path, outcome.map_err(|e| e.to_string()))),
    );
    outcomes
}

/// Claims article `id` for `path`, refusing a second file that maps to the same id.
fn claim(
    claims: &Mutex<HashMap<String, PathBuf>>,
    id: Option<String>,
    path: &Path,
) -> Result<String, String> {
    let id = id.ok_or_else(|| "no article id could be made for it".to_string())?;
    let mut claims = claims.lock().unwrap_or_else(PoisonError::into_inner);
    match claims.get(&id) {
        Some(first) => Err(format!(
            "it maps to the same article id {id:?} as {}",
            first.display()
        )),
        None => {
            claims.insert(id.clone(), path.to_path_buf());
            Ok(id)
        }
    }
}

fn skip(report: &mut SeedReport, path: PathBuf, reason: String) {
    tracing::warn!(file = %path.display(), reason = %reason, "skipping seed file");
    report.skipped.push((path, reason));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_file_names() {
        assert_eq!(
            id_for(Path::new("seeds/000_d5ebef1cd6c2904d.txt")).as_deref(),
            Some("000_d5ebef1cd6c2904d")
        );
        assert_eq!(
            id_for(Path::new("My Story.TXT")).as_deref(),
            Some("my-story")
        );
        assert_eq!(id_for(Path::new("__.txt")), None);
    }

    #[cfg(unix)]
    #[test]
    fn collecting_files_survives_a_link_back_up_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("inner")).unwrap();
        std::fs::write(dir.path().join("inner/a.txt"), "Headline\n\nBody.\n").unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("inner/loop")).unwrap();
        let files = collect_files(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
    }

    #[test]
    fn bad_files_are_refused_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let empty = write("empty.txt", b"\n  \n");
        assert_eq!(read_seed(&empty, 1000).unwrap_err(), "it is empty");
        let binary = write("binary.txt", &[0x89, b'P', b'N', b'G', 0, 0, 1, 2]);
        assert!(read_seed(&binary, 1000).unwrap_err().contains("binary"));
        let latin1 = write("latin1.txt", b"Caf\xe9 news\n\nBody text.\n");
        assert!(read_seed(&latin1, 1000).unwrap_err().contains("not UTF-8"));
        let big = write("big.txt", &[b'a'; 2000]);
        assert!(read_seed(&big, 1000).unwrap_err().contains("larger"));
        let headline_only = write("headline.txt", b"Just a headline\n");
        assert!(
            read_seed(&headline_only, 1000)
                .unwrap_err()
                .contains("no body")
        );
        let good = write(
            "good.txt",
            b"Headline here\n\nBody text.\n\nSource: Reuters\n",
        );
        let file = read_seed(&good, 1000).unwrap();
        assert_eq!(file.input.source, "Reuters");
        assert_eq!(file.input.body, "Body text.");
        assert_eq!(file.fingerprint.len(), 64);
    }
}

/// What [`apply_entity_records`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EntityRecordsReport {
    pub updated: usize,
    pub merged: usize,
    pub blocked: usize,
    /// Already as the record says (an import run again).
    pub unchanged: usize,
    /// Records that could not be applied, with why (an entity no article of the import
    /// mentions, say).
    pub not_applied: Vec<(String, String)>,
}

/// Brings the store's entities to what an export's sidecar says, after its articles are
/// imported (extraction has made the entities again; the desk's decisions are what it
/// cannot know): editors' names, kinds and aliases, descriptions and external ids first,
/// then merges (into the final survivor), then blocks. Each is an ordinary editorial
/// decision through the store's write path, in the change log like any other; running it
/// again changes nothing.
pub fn apply_entity_records(
    store: &crate::store::Store,
    records: &[crate::ninjs::entities::EntityRecord],
) -> EntityRecordsReport {
    use crate::model::EntityPatch;
    let mut report = EntityRecordsReport::default();
    let by_id: HashMap<&str, &crate::ninjs::entities::EntityRecord> =
        records.iter().map(|r| (r.id.as_str(), r)).collect();
    let fail = |report: &mut EntityRecordsReport, id: &str, why: String| {
        report.not_applied.push((id.to_string(), why));
    };
    for record in records.iter().filter(|r| r.merged_into.is_none()) {
        let current = match store.get_entity(&record.id) {
            Ok(Some(entity)) => entity,
            Ok(None) => {
                fail(
                    &mut report,
                    &record.id,
                    "no imported article mentions it".into(),
                );
                continue;
            }
            Err(err) => {
                fail(&mut report, &record.id, err.to_string());
                continue;
            }
        };
        let mut patch = EntityPatch::default();
        if record.edited {
            if record.name != current.name {
                patch.name = Some(record.name.clone());
            }
            if let Some(kind) = record.kind()
                && kind != current.kind
            {
                patch.kind = Some(kind);
            }
            if record.aliases != current.aliases {
                patch.aliases = Some(record.aliases.clone());
            }
        }
        if record.description != current.description && !record.description.is_empty() {
            patch.description = Some(record.description.clone());
        }
        if record.external_ids != current.external_ids {
            patch.external_ids = Some(record.external_ids.clone());
        }
        if patch == EntityPatch::default() {
            report.unchanged += 1;
            continue;
        }
        match store.update_entity(&record.id, patch, None) {
            Ok(_) => report.updated += 1,
            Err(err) => fail(&mut report, &record.id, err.to_string()),
        }
    }
    for record in records {
        let Some(mut survivor) = record.merged_into.as_deref() else {
            continue;
        };
        // The end of the chain: merges into entities later merged themselves.
        for _ in 0..records.len() {
            match by_id.get(survivor).and_then(|r| r.merged_into.as_deref()) {
                Some(next) => survivor = next,
                None => break,
            }
        }
        match store.resolve_entity(&record.id) {
            Ok(Some(entity)) if entity.id == survivor => report.unchanged += 1,
            Ok(Some(entity)) if entity.id == record.id => {
                match store.merge_entities(survivor, std::slice::from_ref(&record.id), None) {
                    Ok(_) => report.merged += 1,
                    Err(err) => fail(&mut report, &record.id, err.to_string()),
                }
            }
            Ok(Some(entity)) => fail(
                &mut report,
                &record.id,
                format!("it is merged into {:?} here, not {survivor:?}", entity.id),
            ),
            Ok(None) => fail(
                &mut report,
                &record.id,
                "no imported article mentions it".into(),
            ),
            Err(err) => fail(&mut report, &record.id, err.to_string()),
        }
    }
    for record in records
        .iter()
        .filter(|r| r.blocked && r.merged_into.is_none())
    {
        match store.get_entity(&record.id) {
            Ok(Some(entity)) if entity.blocked => report.unchanged += 1,
            Ok(Some(_)) => match store.set_blocked(&record.id, true, None) {
                Ok(_) => report.blocked += 1,
                Err(err) => fail(&mut report, &record.id, err.to_string()),
            },
            // Reported above.
            Ok(None) => {}
            Err(err) => fail(&mut report, &record.id, err.to_string()),
        }
    }
    report
}
