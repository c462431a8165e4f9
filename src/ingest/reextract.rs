//! Running extraction again over every stored article, after the tagger model or an
//! editorial decision changed, beside normal traffic.

use super::rules::analysed;
use super::{Ingest, run_blocking};
use crate::error::{Error, Result};
use crate::store::{Write, Written};

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
                            // The stored input as it is, not through `prepare`: cleaning it
                            // again could change an article stored before a cleaning rule
                            // (and so its content hash and stored bytes), which would make a
                            // re-extraction an edit; and checking it again, against limits
                            // the CLI takes as defaults rather than the server's flags, could
                            // refuse an article the server accepted.
                            Write::Reextract {
                                id: article.id,
                                etag,
                                content: analysed(article.input),
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
