//! Loading seed and import files: each file's article is created or replaced to match the
//! file, unless the file's fingerprint shows it was loaded before, so edits made through the
//! API since then stand and an interrupted import resumes where it stopped.

use super::rules::validate_id;
use super::{Ingest, Plan, analyse_then_write, every_outcome, run_blocking_each, with_retries};
use crate::error::{Error, Result};
use crate::model::ArticleInput;
use crate::store::{Content, Store, Write};

/// What an idempotent upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    Unchanged,
}

/// A file's article, to load: its id, content and the fingerprint of the file's bytes.
#[derive(Debug, Clone)]
pub struct FileArticle {
    pub id: String,
    pub input: ArticleInput,
    pub fingerprint: String,
}

impl Ingest {
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
        let mut pending = Vec::new();
        for (i, file) in files.into_iter().enumerate() {
            let seen = validate_id(&file.id).and_then(|()| store.origin(&file.id));
            match seen {
                Ok(Some(seen)) if seen == file.fingerprint => {
                    results.push(Some(Ok(Upserted::Unchanged)));
                }
                Ok(_) => {
                    results.push(None);
                    pending.push((i, file.input, (file.id, file.fingerprint)));
                }
                Err(err) => results.push(Some(Err(err))),
            }
        }
        let mut origins = Vec::new();
        let written = analyse_then_write(
            &self.limits,
            &mut results,
            pending,
            |content, (id, fingerprint)| {
                Ok(match plan_upsert(store, &id, &content)? {
                    None => {
                        origins.push((id, fingerprint));
                        Plan::Settled(Upserted::Unchanged)
                    }
                    Some((write, kind)) => Plan::Write(write, (kind, id, content, fingerprint)),
                })
            },
            |writes| store.write(writes),
        );
        for (i, (kind, id, content, fingerprint), outcome) in written {
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
        every_outcome(results, "a file")
    }

    /// Makes article `id` hold analysed `content`, creating or replacing it, retrying when
    /// another writer gets between the read and the write.
    fn upsert(&self, id: &str, content: Content) -> Result<Upserted> {
        with_retries(id, || {
            let Some((write, kind)) = plan_upsert(&self.store, id, &content)? else {
                return Ok(Some(Upserted::Unchanged));
            };
            match self.store.write(vec![write]).pop() {
                Some(Err(Error::EtagMismatch { .. } | Error::AlreadyExists { .. })) => Ok(None),
                Some(outcome) => outcome.map(|_| Some(kind)),
                None => Err(Error::Internal("a write returned nothing".into())),
            }
        })
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ingest::Limits;

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
