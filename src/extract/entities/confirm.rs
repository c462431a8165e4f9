//! Pass 2, confirmation: capitals prove nothing at the start of a sentence or in a
//! title-case heading, so a name found only there stands only if the lexicon knows it (and
//! it is not an ordinary word) or the same name occurs elsewhere in the article where its
//! capitals do carry meaning. Gathering each name's occurrences is how "elsewhere" is seen.

use std::collections::HashMap;

use super::{Cluster, Occurrence, Votes};
use crate::extract::lexicon::Lexicon;
use crate::model::name_key;

/// The occurrences gathered by name, each name confirmed or not. An unconfirmed name is
/// kept until grouping, since it may still join a confirmed long form.
pub(super) fn by_name(lex: &Lexicon, occurrences: Vec<Occurrence>) -> Vec<Cluster> {
    // Group by the key of the canonical name (so "US" and "U.S." meet under "United States").
    let mut clusters: Vec<Cluster> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for occurrence in occurrences {
        let key = match &occurrence.known {
            Some(known) if known.curated => name_key(&known.canonical),
            _ => name_key(&occurrence.surface),
        };
        if key.is_empty() {
            continue;
        }
        let confirmed = !occurrence.unconfirmed
            || occurrence
                .known
                .as_ref()
                .is_some_and(|k| k.curated || !lex.is_common_word(&occurrence.surface));
        let index = *by_key.entry(key).or_insert_with(|| {
            clusters.push(Cluster {
                occurrences: Vec::new(),
                known: None,
                votes: Votes::default(),
                confirmed: false,
            });
            clusters.len() - 1
        });
        let cluster = &mut clusters[index];
        cluster.votes.add(&occurrence.votes);
        cluster.confirmed |= confirmed;
        if cluster.known.is_none() {
            cluster.known.clone_from(&occurrence.known);
        }
        cluster.occurrences.push(occurrence);
    }
    clusters
}
