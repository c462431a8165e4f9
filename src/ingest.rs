//! The one way articles get in: validate, extract, write.
//!
//! The API, the seeder and the CLI all come through here, so every article is checked by the
//! same rules and analysed by the same extractor, and every write goes to the store the same
//! way. Extraction is CPU work and runs on the blocking pool; the store write (and its flush)
//! does too, so neither stalls the async runtime.

use std::collections::BTreeSet;
use std::sync::Arc;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Error, Invalid, Result};
use crate::extract;
use crate::model::{Article, ArticleInput, RequestTag};
use crate::store::{Content, Store, Write, Written};

/// Size limits on what callers may store.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_headline_chars: usize,
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_headline_chars: 1000,
            max_batch: 1000,
        }
    }
}

const MAX_SHORT_FIELD_CHARS: usize = 500;
const MAX_TAGS: usize = 100;
const MAX_ENTITY_TAGS: usize = 100;
/// An update without an etag retries this often when another writer keeps winning.
const UPDATE_RETRIES: usize = 8;

/// The caller-supplied fields an update can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InputField {
    Headline,
    Body,
    Byline,
    Source,
    Language,
    Published,
    Tags,
    EntityTags,
}

impl InputField {
    pub const ALL: [InputField; 8] = [
        InputField::Headline,
        InputField::Body,
        InputField::Byline,
        InputField::Source,
        InputField::Language,
        InputField::Published,
        InputField::Tags,
        InputField::EntityTags,
    ];

    fn copy(self, from: &ArticleInput, to: &mut ArticleInput) {
        match self {
            InputField::Headline => to.headline.clone_from(&from.headline),
            InputField::Body => to.body.clone_from(&from.body),
            InputField::Byline => to.byline.clone_from(&from.byline),
            InputField::Source => to.source.clone_from(&from.source),
            InputField::Language => to.language.clone_from(&from.language),
            InputField::Published => to.published = from.published,
            InputField::Tags => to.tags.clone_from(&from.tags),
            InputField::EntityTags => to.entity_tags.clone_from(&from.entity_tags),
        }
    }
}

/// A stored article and the change-log sequence number of the write that stored it (0
/// when nothing had to be written).
#[derive(Debug, Clone)]
pub struct Stored {
    pub article: Article,
    pub seq: u64,
}

/// What an idempotent upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    Unchanged,
}

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

    /// Stores a new article under `id`, or a generated id. A recorded `tag` returns the
    /// first result instead.
    pub async fn create(
        &self,
        id: Option<String>,
        input: ArticleInput,
        tag: Option<RequestTag>,
    ) -> Result<Stored> {
        self.create_batch(vec![(id, input, tag)])
            .await
            .pop()
            .unwrap_or_else(|| Err(Error::Internal("a batch of one returned nothing".into())))
    }

    /// Stores many new articles with one flush; each succeeds or fails on its own, and each
    /// with a recorded tag returns its first result instead.
    pub async fn create_batch(
        &self,
        items: Vec<(Option<String>, ArticleInput, Option<RequestTag>)>,
    ) -> Vec<Result<Stored>> {
        if items.len() > self.limits.max_batch {
            let error = || {
                Error::ResourceExhausted(format!(
                    "a batch may hold at most {} articles; split it",
                    self.limits.max_batch
                ))
            };
            return items.iter().map(|_| Err(error())).collect();
        }
        let limits = self.limits;
        let store = self.store.clone();
        run_blocking_each(items.len(), move || {
            // Validation and extraction first; only the good items reach the store.
            let mut results: Vec<Option<Result<Stored>>> = Vec::with_capacity(items.len());
            let mut to_prepare = Vec::new();
            let mut seen_ids = BTreeSet::new();
            for (i, (id, input, tag)) in items.into_iter().enumerate() {
                // A retry of a stored item needs no analysis (and its generated id must not
                // change): it is answered from the record.
                if let Some(tag) = &tag {
                    match store.recorded(tag) {
                        Ok(Some(outcome)) => {
                            results
                                .push(Some(store.replay_durable(outcome).and_then(expect_article)));
                            continue;
                        }
                        Ok(None) => {}
                        Err(err) => {
                            results.push(Some(Err(err)));
                            continue;
                        }
                    }
                }
                let id = id
                    .map_or_else(|| Ok(generate_id()), |id| validate_id(&id).map(|()| id))
                    .and_then(|id| {
                        if seen_ids.insert(id.clone()) {
                            Ok(id)
                        } else {
                            Err(Error::AlreadyExists {
                                resource: crate::error::Resource::Article,
                                id,
                            })
                        }
                    });
                match id {
                    Ok(id) => {
                        results.push(None);
                        to_prepare.push((i, id, input, tag));
                    }
                    Err(err) => results.push(Some(Err(err))),
                }
            }
            // Extraction is most of the work and each article's is independent: analyse
            // them on every core while the store stays single-writer.
            let prepared: Vec<_> = to_prepare
                .into_par_iter()
                .map(|(i, id, input, tag)| (i, prepare(input, &limits).map(|c| (id, c)), tag))
                .collect();
            let mut writes = Vec::new();
            let mut positions = Vec::new();
            for (i, outcome, tag) in prepared {
                match outcome {
                    Ok((id, content)) => {
                        positions.push(i);
                        writes.push((Write::Create { id, content }, tag));
                    }
                    Err(err) => results[i] = Some(Err(err)),
                }
            }
            for (position, outcome) in positions.into_iter().zip(store.write_tagged(writes)) {
                results[position] = Some(outcome.and_then(expect_article));
            }
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(Error::Internal("an item was lost".into()))))
                .collect::<Vec<_>>()
        })
        .await
    }

    /// Changes the `fields` of article `id` to their values in `patch`. With an `etag`, the
    /// update applies only if the article still has it.
    pub async fn update(
        &self,
        id: String,
        etag: Option<String>,
        fields: Vec<InputField>,
        patch: ArticleInput,
        tag: Option<RequestTag>,
    ) -> Result<Stored> {
        let this = self.clone();
        run_blocking(move || {
            // A retry must not be refused by the etag its first attempt made stale.
            if let Some(tag) = &tag
                && let Some(outcome) = this.store.recorded(tag)?
            {
                return expect_article(this.store.replay_durable(outcome)?);
            }
            for _ in 0..UPDATE_RETRIES {
                let current = this
                    .store
                    .get_article(&id)?
                    .ok_or_else(|| Error::NotFound {
                        resource: crate::error::Resource::Article,
                        id: id.clone(),
                    })?;
                if let Some(given) = &etag
                    && *given != current.etag()
                {
                    return Err(Error::EtagMismatch {
                        id,
                        current: current.etag(),
                        given: given.clone(),
                    });
                }
                let mut input = current.input.clone();
                for field in &fields {
                    field.copy(&patch, &mut input);
                }
                let content = prepare(input, &this.limits)?;
                if content.content_hash == current.derived.content_hash {
                    return Ok(Stored {
                        article: current,
                        seq: 0,
                    });
                }
                let write = Write::Replace {
                    id: id.clone(),
                    etag: Some(current.etag()),
                    content,
                };
                match this.store.write_tagged(vec![(write, tag.clone())]).pop() {
                    Some(Err(Error::EtagMismatch { .. })) if etag.is_none() => continue,
                    Some(Err(Error::EtagMismatch { current, .. })) => {
                        return Err(Error::EtagMismatch {
                            id,
                            current,
                            given: etag.unwrap_or_default(),
                        });
                    }
                    Some(outcome) => return outcome.and_then(expect_article),
                    None => return Err(Error::Internal("a write returned nothing".into())),
                }
            }
            Err(Error::Conflict(format!(
                "article {id:?} is being changed by other writers too often; retry later"
            )))
        })
        .await
    }

    /// Deletes article `id`, if it still has `etag` when one is given. Returns the
    /// change-log sequence number of the delete.
    pub async fn delete(
        &self,
        id: String,
        etag: Option<String>,
        tag: Option<RequestTag>,
    ) -> Result<u64> {
        self.write_one(Write::Delete { id, etag }, tag)
            .await
            .map(|written| written.seq)
    }

    /// Removes article `id` and its whole history for good.
    pub async fn purge(&self, id: String, tag: Option<RequestTag>) -> Result<Written> {
        self.write_one(Write::Purge { id }, tag).await
    }

    async fn write_one(&self, write: Write, tag: Option<RequestTag>) -> Result<Written> {
        let store = self.store.clone();
        run_blocking(move || match store.write_tagged(vec![(write, tag)]).pop() {
            Some(outcome) => outcome,
            None => Err(Error::Internal("a write returned nothing".into())),
        })
        .await
    }

    /// Loads the articles of many files with one store write and one flush, like
    /// [`Ingest::create_batch`]: a file whose `fingerprint` the store already recorded
    /// changes nothing, so edits and deletes made through the API since then stand; a new
    /// or changed file is created or replaced. One outcome per file; of two files with one id,
    /// the second replaces the first.
    pub async fn load_files(&self, files: Vec<FileArticle>) -> Vec<Result<Upserted>> {
        let this = self.clone();
        run_blocking_each(files.len(), move || this.load_files_blocking(files)).await
    }

    fn load_files_blocking(&self, files: Vec<FileArticle>) -> Vec<Result<Upserted>> {
        let store = &self.store;
        let mut results: Vec<Option<Result<Upserted>>> = Vec::with_capacity(files.len());
        let mut to_prepare = Vec::new();
        for (i, file) in files.into_iter().enumerate() {
            let seen = validate_id(&file.id).and_then(|()| store.origin(&file.id));
            match seen {
                Ok(Some(seen)) if seen == file.fingerprint => {
                    results.push(Some(Ok(Upserted::Unchanged)));
                }
                Ok(_) => {
                    results.push(None);
                    to_prepare.push((i, file));
                }
                Err(err) => results.push(Some(Err(err))),
            }
        }
        // As in `create_batch`: analysis on every core, then one single-writer store call.
        let prepared: Vec<_> = to_prepare
            .into_par_iter()
            .map(|(i, file)| {
                (
                    i,
                    prepare(file.input, &self.limits),
                    file.id,
                    file.fingerprint,
                )
            })
            .collect();
        let mut writes = Vec::new();
        let mut pending = Vec::new();
        let mut origins = Vec::new();
        for (i, content, id, fingerprint) in prepared {
            let planned = content.and_then(|content| {
                let planned = plan_upsert(store, &id, &content)?;
                Ok((planned, content))
            });
            match planned {
                Ok((None, _)) => {
                    results[i] = Some(Ok(Upserted::Unchanged));
                    origins.push((id, fingerprint));
                }
                Ok((Some((write, kind)), content)) => {
                    writes.push(write);
                    pending.push((i, kind, id, content, fingerprint));
                }
                Err(err) => results[i] = Some(Err(err)),
            }
        }
        for ((i, kind, id, content, fingerprint), outcome) in
            pending.into_iter().zip(store.write(writes))
        {
            let outcome = match outcome {
                // Someone else wrote it in between: the one-at-a-time path looks again.
                Err(Error::EtagMismatch { .. } | Error::AlreadyExists { .. }) => {
                    self.upsert(&id, content)
                }
                outcome => outcome.map(|_| kind),
            };
            if outcome.is_ok() {
                origins.push((id, fingerprint));
            }
            results[i] = Some(outcome);
        }
        // Not flushed on its own: a fingerprint lost in a crash only means the file is
        // analysed again next time, and found unchanged.
        if let Err(err) = store.set_origins(&origins) {
            tracing::warn!(error = %err, "recording loaded files' fingerprints failed");
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Internal("a file was lost".into()))))
            .collect()
    }

    /// Makes article `id` hold analysed `content`, creating or replacing it, retrying when
    /// another writer gets between the read and the write.
    fn upsert(&self, id: &str, content: Content) -> Result<Upserted> {
        for _ in 0..UPDATE_RETRIES {
            let Some((write, kind)) = plan_upsert(&self.store, id, &content)? else {
                return Ok(Upserted::Unchanged);
            };
            match self.store.write(vec![write]).pop() {
                Some(Err(Error::EtagMismatch { .. } | Error::AlreadyExists { .. })) => continue,
                Some(outcome) => return outcome.map(|_| kind),
                None => return Err(Error::Internal("a write returned nothing".into())),
            }
        }
        Err(Error::Conflict(format!(
            "article {id:?} is being changed by other writers too often; retry later"
        )))
    }
}

/// A file's article, to load: its id, content and the fingerprint of the file's bytes.
#[derive(Debug, Clone)]
pub struct FileArticle {
    pub id: String,
    pub input: ArticleInput,
    pub fingerprint: String,
}

/// The write that makes article `id` hold `content`, and what it amounts to; `None` when it
/// already does.
fn plan_upsert(store: &Store, id: &str, content: &Content) -> Result<Option<(Write, Upserted)>> {
    Ok(match store.get_article(id)? {
        Some(current) if current.derived.content_hash == content.content_hash => None,
        Some(current) => Some((
            Write::Replace {
                id: id.to_string(),
                etag: Some(current.etag()),
                content: content.clone(),
            },
            Upserted::Updated,
        )),
        None => Some((
            Write::Create {
                id: id.to_string(),
                content: content.clone(),
            },
            Upserted::Created,
        )),
    })
}

/// How far a re-extraction has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reextraction {
    /// Articles stored when it began.
    pub total: u64,
    /// Articles analysed so far.
    pub done: u64,
    /// Of those, articles whose entities or quotes changed (each written as a new revision).
    pub changed: u64,
    /// Of those, articles changed or deleted by someone else meanwhile (their own write
    /// already used the current extractor), or refused by the store (logged).
    pub skipped: u64,
}

/// Articles re-extracted per store write (one flush each).
const REEXTRACT_CHUNK: usize = 64;

impl Ingest {
    /// Runs extraction again over every stored article, in id order, writing those whose
    /// entities or quotes come out differently; `progress` hears after every chunk and stops
    /// the run by returning `false`. Other writes go on meanwhile: each chunk takes the
    /// writer lock only for its own batch, and an article changed by someone else since it
    /// was read is left to that write.
    pub async fn reextract_all(
        &self,
        progress: impl Fn(Reextraction) -> bool,
    ) -> Result<Reextraction> {
        let store = self.store.clone();
        let total = run_blocking(move || store.article_count()).await?;
        let mut state = Reextraction {
            total,
            ..Reextraction::default()
        };
        let mut after: Option<String> = None;
        loop {
            let store = self.store.clone();
            let from = after.clone();
            let outcome =
                run_blocking(move || -> Result<(Vec<Result<Written>>, Option<String>)> {
                    let articles = store.articles_after(from.as_deref(), REEXTRACT_CHUNK)?;
                    let last = articles.last().map(|a| a.id.clone());
                    let writes = articles
                        .into_iter()
                        .map(|article| {
                            let etag = article.etag();
                            let input = article.input;
                            Write::Reextract {
                                id: article.id,
                                etag,
                                content: Content {
                                    extraction: extract::analyze(&input),
                                    content_hash: content_hash(&input),
                                    input,
                                },
                            }
                        })
                        .collect();
                    Ok((store.write(writes), last))
                })
                .await?;
            let (outcomes, last) = outcome;
            let Some(last) = last else {
                break;
            };
            for outcome in outcomes {
                state.done += 1;
                match outcome {
                    Ok(written) if written.seq > 0 => state.changed += 1,
                    Ok(_) => {}
                    Err(Error::EtagMismatch { .. } | Error::NotFound { .. }) => state.skipped += 1,
                    // One article the store refuses (a tag naming an entity since blocked,
                    // say) must not stop the run: it is reported and left as it is.
                    Err(
                        err @ (Error::InvalidArgument { .. } | Error::FailedPrecondition { .. }),
                    ) => {
                        tracing::warn!(error = %err, "re-extraction left an article unchanged");
                        state.skipped += 1;
                    }
                    Err(err) => return Err(err),
                }
            }
            if !progress(state) {
                break;
            }
            after = Some(last);
        }
        Ok(state)
    }
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

fn expect_article(written: Written) -> Result<Stored> {
    match written.article {
        Some(article) => Ok(Stored {
            article,
            seq: written.seq,
        }),
        None => Err(Error::Internal("a write returned no article".into())),
    }
}

/// A new server-chosen id: a UUIDv7, so ids sort roughly by creation time.
fn generate_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// An article id by the one rule ([`crate::model::is_valid_article_id`]), or why not.
pub fn validate_id(id: &str) -> Result<()> {
    if crate::model::is_valid_article_id(id) {
        Ok(())
    } else {
        Err(Error::invalid(
            "article_id",
            Invalid::Malformed,
            format!(
                "article id {id:?} is not valid: use 1 to {} characters from a-z, \
                 0-9, '-' and '_', starting with a letter or digit",
                crate::model::MAX_ARTICLE_ID_LEN
            ),
        ))
    }
}

/// Checks an input against the rules and limits, cleans it, and analyses it.
fn prepare(mut input: ArticleInput, limits: &Limits) -> Result<Content> {
    input.headline = input
        .headline
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    input.byline = input.byline.trim().to_string();
    input.source = input.source.trim().to_string();
    input.language = input.language.trim().to_string();
    input.tags = input
        .tags
        .iter()
        .map(|t| t.trim().to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    validate_input(&input, limits)?;
    let extraction = extract::analyze(&input);
    let content_hash = content_hash(&input);
    Ok(Content {
        input,
        extraction,
        content_hash,
    })
}

/// Whether `c` shows as something on a page: not a space, a control character, or one of
/// the format and filler characters that render as nothing (zero-width spaces and joiners,
/// direction marks, the byte-order mark, soft hyphens, variation selectors, tags, fillers).
fn is_visible(c: char) -> bool {
    !(c.is_whitespace()
        || c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}'))
}

fn validate_input(input: &ArticleInput, limits: &Limits) -> Result<()> {
    if input.headline.is_empty() {
        return Err(Error::missing("article.headline"));
    }
    let headline_chars = input.headline.chars().count();
    if headline_chars > limits.max_headline_chars {
        return Err(Error::invalid(
            "article.headline",
            Invalid::TooLarge,
            format!(
                "the headline has {headline_chars} characters; at most {} are allowed",
                limits.max_headline_chars
            ),
        ));
    }
    if input.body.trim().is_empty() {
        return Err(Error::missing("article.body"));
    }
    if input.body.len() > limits.max_body_bytes {
        return Err(Error::invalid(
            "article.body",
            Invalid::TooLarge,
            format!(
                "the body has {} bytes; at most {} are allowed",
                input.body.len(),
                limits.max_body_bytes
            ),
        ));
    }
    for (field, value) in [
        ("article.headline", &input.headline),
        ("article.body", &input.body),
    ] {
        if !value.chars().any(is_visible) {
            return Err(Error::invalid(
                field,
                Invalid::Malformed,
                format!(
                    "{field} has no visible text: only spaces, zero-width or other invisible \
                     characters"
                ),
            ));
        }
        if value.contains('\0') {
            return Err(Error::invalid(
                field,
                Invalid::Malformed,
                format!("{field} must be text: it contains a NUL character"),
            ));
        }
    }
    for (field, value) in [
        ("article.byline", &input.byline),
        ("article.source", &input.source),
    ] {
        if value.chars().count() > MAX_SHORT_FIELD_CHARS {
            return Err(Error::invalid(
                field,
                Invalid::TooLarge,
                format!("{field} may have at most {MAX_SHORT_FIELD_CHARS} characters"),
            ));
        }
    }
    if !input.language.is_empty() && !is_language_tag(&input.language) {
        return Err(Error::invalid(
            "article.language",
            Invalid::Malformed,
            format!(
                "{:?} is not a BCP-47 language tag such as \"en\" or \"en-GB\"",
                input.language
            ),
        ));
    }
    if input.tags.len() > MAX_TAGS {
        return Err(Error::invalid(
            "article.tags",
            Invalid::TooLarge,
            format!("an article may have at most {MAX_TAGS} tags"),
        ));
    }
    if let Some(tag) = input
        .tags
        .iter()
        .find(|t| t.is_empty() || t.chars().count() > 100)
    {
        return Err(Error::invalid(
            "article.tags",
            Invalid::Malformed,
            format!("tag {tag:?} must have 1 to 100 characters"),
        ));
    }
    if input.entity_tags.len() > MAX_ENTITY_TAGS {
        return Err(Error::invalid(
            "article.entity_tags",
            Invalid::TooLarge,
            format!("an article may have at most {MAX_ENTITY_TAGS} entity tags"),
        ));
    }
    for tag in &input.entity_tags {
        let name = tag.name.trim();
        if name.is_empty() && tag.entity_id.is_none() {
            return Err(Error::invalid(
                "article.entity_tags",
                Invalid::Missing,
                "each entity tag needs a name or an entity_id",
            ));
        }
        if tag.kind.is_none() && tag.entity_id.is_none() {
            return Err(Error::invalid(
                "article.entity_tags",
                Invalid::Missing,
                format!("entity tag {name:?} needs a kind (or an entity_id)"),
            ));
        }
        if name.chars().count() > 200 {
            return Err(Error::invalid(
                "article.entity_tags",
                Invalid::TooLarge,
                "entity tag names may have at most 200 characters",
            ));
        }
    }
    Ok(())
}

/// `en`, `en-GB`, `zh-Hant-TW`: a 2–3 letter language and optional subtags.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()));
    language_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// SHA-256 over the caller-supplied fields in a fixed, length-prefixed layout: equal hashes
/// mean equal content, whatever the encoding of records on disk.
pub fn content_hash(input: &ArticleInput) -> String {
    let mut hasher = Sha256::new();
    let mut field = |tag: u8, bytes: &[u8]| {
        hasher.update([tag]);
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    field(1, input.headline.as_bytes());
    field(2, input.body.as_bytes());
    field(3, input.byline.as_bytes());
    field(4, input.source.as_bytes());
    field(5, input.language.as_bytes());
    field(
        6,
        &input
            .published
            .map_or_else(Vec::new, |t| t.0.to_be_bytes().to_vec()),
    );
    for tag in &input.tags {
        field(7, tag.as_bytes());
    }
    for tag in &input.entity_tags {
        field(8, tag.name.as_bytes());
        field(9, tag.kind.map_or("", |k| k.tag()).as_bytes());
        field(10, tag.entity_id.as_deref().unwrap_or("").as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("000_d5ebef1cd6c2904d").is_ok());
        assert!(validate_id("a").is_ok());
        for bad in ["", "-a", "A", "a b", "a/b", "é", &"a".repeat(129)] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn language_tags() {
        for good in ["en", "en-GB", "zh-Hant-TW", "deu"] {
            assert!(is_language_tag(good), "{good}");
        }
        for bad in ["e", "english", "en_GB", "en-", "12"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn content_hash_changes_with_content_only() {
        let a = ArticleInput {
            headline: "H".into(),
            body: "B".into(),
            ..ArticleInput::default()
        };
        let mut b = a.clone();
        assert_eq!(content_hash(&a), content_hash(&b));
        b.body = "B2".into();
        assert_ne!(content_hash(&a), content_hash(&b));
        // Field boundaries matter: "HB" + "" differs from "H" + "B".
        let c = ArticleInput {
            headline: "HB".into(),
            body: String::new(),
            ..ArticleInput::default()
        };
        let d = ArticleInput {
            headline: "H".into(),
            body: "B".into(),
            ..ArticleInput::default()
        };
        assert_ne!(content_hash(&c), content_hash(&d));
    }

    fn file(id: &str, body: &str, fingerprint: &str) -> FileArticle {
        FileArticle {
            id: id.into(),
            input: ArticleInput {
                headline: "Rain in Oslo".into(),
                body: body.into(),
                ..ArticleInput::default()
            },
            fingerprint: fingerprint.into(),
        }
    }

    #[tokio::test]
    async fn loading_files_creates_replaces_and_skips_what_it_saw() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 16 << 20).unwrap());
        let ingest = Ingest::new(store.clone(), Limits::default());
        // Two files for one id in one call: the second's create is refused as a duplicate
        // and goes through the one-at-a-time path, which replaces the first.
        let outcomes = ingest
            .load_files(vec![
                file("oslo", "It rained in Oslo.", "f1"),
                file("oslo", "It rained in Oslo all day.", "f2"),
                file("bad id", "Text.", "f3"),
            ])
            .await;
        assert!(matches!(outcomes[0], Ok(Upserted::Created)), "{outcomes:?}");
        assert!(matches!(outcomes[1], Ok(Upserted::Updated)), "{outcomes:?}");
        assert!(matches!(outcomes[2], Err(Error::InvalidArgument { .. })));
        let article = store.get_article("oslo").unwrap().unwrap();
        assert_eq!(
            (article.revision, article.input.body.as_str()),
            (2, "It rained in Oslo all day.")
        );
        // A fingerprint already recorded: nothing is analysed or written, even though the
        // content differs from the stored article's.
        let again = ingest
            .load_files(vec![file("oslo", "Something else entirely.", "f2")])
            .await;
        assert!(matches!(again[0], Ok(Upserted::Unchanged)), "{again:?}");
        assert_eq!(store.get_article("oslo").unwrap().unwrap().revision, 2);
        // A new fingerprint with the same content: no new revision either.
        let same = ingest
            .load_files(vec![file("oslo", "It rained in Oslo all day.", "f4")])
            .await;
        assert!(matches!(same[0], Ok(Upserted::Unchanged)), "{same:?}");
        assert_eq!(store.get_article("oslo").unwrap().unwrap().revision, 2);
        assert_eq!(store.check().unwrap(), Vec::<String>::new());
    }
}
