//! What changed between two revisions of an article, field by field.
//!
//! Newsrooms show corrections as "what changed": a field-level list, and for the body a
//! paragraph-level diff (paragraphs are the unit editors work in and readers compare), not
//! a character diff that is unreadable on prose.
//!
//! The paragraph diff is Myers' algorithm, quadratic in the worst case (a 60,000-paragraph
//! rewrite took 18 s); it runs under a deadline of [`DIFF_BUDGET`], past which `similar`
//! finishes with a coarser but still correct edit list (more paragraphs marked deleted and
//! inserted than strictly changed). The API runs it on the blocking pool, never on the
//! threads that answer other calls.

use std::time::{Duration, Instant};

use similar::{Algorithm, ChangeTag, TextDiff};

/// The most time one paragraph diff takes before it settles for a coarser answer.
pub const DIFF_BUDGET: Duration = Duration::from_millis(250);

use crate::model::{Article, Timestamp};

/// What happened to one paragraph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOp {
    Equal,
    Insert,
    Delete,
}

/// How one field differs. Lists are rendered one item per line; the body has `edits`
/// instead of `before`/`after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: &'static str,
    pub before: String,
    pub after: String,
    pub edits: Vec<(EditOp, String)>,
}

/// The fields that differ from `from` to `to`, in a fixed order.
pub fn compare(from: &Article, to: &Article) -> Vec<FieldChange> {
    let (a, b) = (&from.input, &to.input);
    let time = |t: Option<Timestamp>| t.map(Timestamp::to_rfc3339).unwrap_or_default();
    let entity_tags = |article: &Article| {
        article
            .input
            .entity_tags
            .iter()
            .map(|t| match &t.entity_id {
                Some(id) => format!("{} ({id})", t.name),
                None => t.name.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let entities = |article: &Article| {
        let mut names: Vec<String> = article
            .derived
            .mentions
            .iter()
            .map(|m| format!("{} ({})", m.name, m.entity_id))
            .collect();
        names.sort();
        names.join("\n")
    };
    let quotes = |article: &Article| {
        article
            .derived
            .quotes
            .iter()
            .map(|q| q.text.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let fields = [
        ("headline", a.headline.clone(), b.headline.clone()),
        // Compared whole here; shown as a paragraph diff below.
        ("body", a.body.clone(), b.body.clone()),
        ("byline", a.byline.clone(), b.byline.clone()),
        ("source", a.source.clone(), b.source.clone()),
        ("language", a.language.clone(), b.language.clone()),
        ("published_time", time(a.published), time(b.published)),
        ("tags", a.tags.join("\n"), b.tags.join("\n")),
        ("entity_tags", entity_tags(from), entity_tags(to)),
        ("entities", entities(from), entities(to)),
        ("quotes", quotes(from), quotes(to)),
    ];
    fields
        .into_iter()
        .filter(|(_, before, after)| before != after)
        .map(|(field, before, after)| {
            if field == "body" {
                FieldChange {
                    field,
                    before: String::new(),
                    after: String::new(),
                    edits: paragraph_diff(&before, &after),
                }
            } else {
                FieldChange {
                    field,
                    before,
                    after,
                    edits: Vec::new(),
                }
            }
        })
        .collect()
}

/// The paragraphs of `before` and `after` (blank-line separated), aligned.
fn paragraph_diff(before: &str, after: &str) -> Vec<(EditOp, String)> {
    let split = |text: &str| -> Vec<String> {
        text.split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (old, new) = (split(before), split(after));
    let old: Vec<&str> = old.iter().map(String::as_str).collect();
    let new: Vec<&str> = new.iter().map(String::as_str).collect();
    TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .deadline(Instant::now() + DIFF_BUDGET)
        .diff_slices(&old, &new)
        .iter_all_changes()
        .map(|change| {
            let op = match change.tag() {
                ChangeTag::Equal => EditOp::Equal,
                ChangeTag::Insert => EditOp::Insert,
                ChangeTag::Delete => EditOp::Delete,
            };
            (op, change.value().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_are_aligned_and_marked() {
        let edits = paragraph_diff(
            "One.\n\nTwo.\n\nThree.",
            "One.\n\nTwo, corrected.\n\nThree.",
        );
        assert_eq!(
            edits,
            vec![
                (EditOp::Equal, "One.".to_string()),
                (EditOp::Delete, "Two.".to_string()),
                (EditOp::Insert, "Two, corrected.".to_string()),
                (EditOp::Equal, "Three.".to_string()),
            ]
        );
    }

    /// Two long bodies with nothing in common line up paragraph by paragraph in the worst
    /// case; under the deadline the answer comes in bounded time and still turns one body
    /// into the other.
    #[test]
    fn a_huge_rewrite_is_answered_within_the_budget() {
        let before: String = (0..30_000)
            .map(|i| format!("Old paragraph {i}.\n\n"))
            .collect();
        let after: String = (0..30_000)
            .map(|i| format!("New paragraph {}.\n\n", i * 7 % 30_011))
            .collect();
        let started = Instant::now();
        let edits = paragraph_diff(&before, &after);
        // Generous for a slow machine; without the deadline this took tens of seconds.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let rebuilt: Vec<&str> = edits
            .iter()
            .filter(|(op, _)| *op != EditOp::Delete)
            .map(|(_, p)| p.as_str())
            .collect();
        let expected: Vec<&str> = after.split("\n\n").filter(|p| !p.is_empty()).collect();
        assert_eq!(rebuilt, expected);
    }
}
