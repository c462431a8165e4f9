//! Pass 3, grouping: short forms join the long form they abbreviate (a surname joins the
//! full name, "Nusra" joins "al-Nusra Front", an acronym joins the name whose initials it
//! spells or that defined it in parentheses), each entity's name and kind is decided from
//! the lexicon and the votes of all its mentions, and what is left unconfirmed or without
//! evidence is dropped.

use super::{Cluster, Field, FoundEntity, PARTICLES, name_words};
use crate::extract::lexicon::{self, Lexicon};
use crate::model::{EntityKind, name_key};

impl Cluster {
    /// The longest, then most frequent, then earliest surface form; or the lexicon's name.
    fn name(&self) -> String {
        if let Some(known) = self.known.as_ref().filter(|k| k.curated) {
            return known.canonical.clone();
        }
        let mut best: Option<(&str, usize, usize)> = None;
        for occurrence in &self.occurrences {
            let surface = occurrence.surface.as_str();
            let pieces = surface
                .split(|c: char| c.is_whitespace() || c == '-')
                .filter(|p| !p.is_empty())
                .count();
            let count = self
                .occurrences
                .iter()
                .filter(|o| o.surface == surface)
                .count();
            if best.is_none_or(|(_, p, c)| (pieces, count) > (p, c)) {
                best = Some((surface, pieces, count));
            }
        }
        best.map_or_else(String::new, |(s, _, _)| s.to_string())
    }

    fn kind(&self) -> Option<EntityKind> {
        if let Some(known) = self.known.as_ref().filter(|k| k.curated) {
            return Some(known.kind);
        }
        let mut votes = self.votes;
        if let Some(known) = &self.known {
            // Corpus statistics count as much as a strong vote of context.
            votes.strong(known.kind);
        }
        if let Some(kind) = votes.winner() {
            return Some(kind);
        }
        // An unexplained name of two or three capitalised words is most often a person
        // ("Amma Asante"); one made of ordinary words is more often a title or event ("Way
        // Of Life", "Bullet Boy").
        let lex = lexicon::get();
        let longest = self
            .occurrences
            .iter()
            .max_by_key(|o| name_words(&o.surface).len())?;
        let words: Vec<&str> = longest
            .surface
            .split_whitespace()
            .filter(|w| !PARTICLES.contains(w))
            .collect();
        if words.len() < 2 {
            return None;
        }
        if words.len() <= 3 && !words.iter().any(|w| lex.is_common_word(w)) {
            Some(EntityKind::Person)
        } else {
            Some(EntityKind::Misc)
        }
    }

    fn absorb(&mut self, other: Cluster) {
        self.votes.add(&other.votes);
        self.confirmed |= other.confirmed;
        if self.known.is_none() {
            self.known = other.known;
        }
        self.occurrences.extend(other.occurrences);
    }
}

/// Joins short forms to long forms, decides names and kinds, and keeps the confirmed
/// entities, in order of first occurrence.
pub(super) fn group(lex: &Lexicon, clusters: Vec<Cluster>) -> Vec<FoundEntity> {
    // Acronyms defined in parentheses become aliases of what defined them.
    let definitions: Vec<(String, usize)> = clusters
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            c.occurrences
                .iter()
                .filter_map(move |o| o.defines.as_ref().map(|acr| (name_key(acr), i)))
        })
        .collect();

    // What the pairwise comparison below needs of each cluster, computed once: it looks at
    // every pair of clusters, and recomputing these per pair was the largest part of
    // grouping (a tenth of extraction on news text).
    struct Facts {
        /// Each distinct surface form with its name words.
        forms: Vec<(String, Vec<String>)>,
        most_words: usize,
        key: String,
        kind: Option<EntityKind>,
    }
    let facts: Vec<Facts> = clusters
        .iter()
        .map(|c| {
            let mut forms: Vec<(String, Vec<String>)> = Vec::new();
            for o in &c.occurrences {
                if !forms.iter().any(|(surface, _)| *surface == o.surface) {
                    forms.push((o.surface.clone(), name_words(&o.surface)));
                }
            }
            Facts {
                most_words: forms.iter().map(|(_, w)| w.len()).max().unwrap_or(0),
                forms,
                key: name_key(&c.occurrences[0].surface),
                kind: c.kind(),
            }
        })
        .collect();

    // Short forms join long forms: most words first, so chains resolve to the longest.
    let mut order: Vec<usize> = (0..clusters.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(facts[i].most_words));
    let mut merged_into: Vec<Option<usize>> = vec![None; clusters.len()];
    for &short in order.iter().rev() {
        let short_facts = &facts[short];
        let short_curated = clusters[short].known.as_ref().is_some_and(|k| k.curated);
        let mut targets: Vec<usize> = Vec::new();
        for &long in &order {
            if long == short || merged_into[long].is_some() {
                continue;
            }
            let long_facts = &facts[long];
            if !clusters[long].confirmed || short_curated {
                continue;
            }
            if short_facts.kind.is_some()
                && long_facts.kind.is_some()
                && short_facts.kind != long_facts.kind
            {
                continue;
            }
            let defined = definitions
                .iter()
                .any(|(acr, i)| *i == long && *acr == short_facts.key);
            let abbreviates = long_facts.forms.iter().any(|(surface, long_words)| {
                short_facts.forms.iter().any(|(_, short_words)| {
                    abbreviates(
                        short_words,
                        long_words,
                        long_facts.kind,
                        surface,
                        &short_facts.key,
                    )
                })
            });
            if defined || abbreviates {
                targets.push(long);
            }
        }
        // Ambiguous short forms ("Smith" with two Smiths) stay on their own.
        targets.dedup();
        if let [target] = targets[..] {
            merged_into[short] = Some(target);
        }
    }
    let mut final_clusters: Vec<Option<Cluster>> = clusters.into_iter().map(Some).collect();
    for short in order.iter().rev().copied() {
        let Some(mut target) = merged_into[short] else {
            continue;
        };
        while let Some(next) = merged_into[target] {
            target = next;
        }
        if let Some(cluster) = final_clusters[short].take()
            && let Some(Some(long)) = final_clusters.get_mut(target)
        {
            long.absorb(cluster);
        }
    }

    let mut entities: Vec<FoundEntity> = final_clusters
        .into_iter()
        .flatten()
        .filter(|c| c.confirmed)
        .filter_map(|c| {
            let name = c.name();
            if name.chars().filter(|c| c.is_alphanumeric()).count() < 2 || lex.is_junk(&name) {
                return None;
            }
            // A lone capitalised word that is also an ordinary word ("Shopping",
            // "Premiership") needs strong evidence; without any evidence a lone name is
            // tentative.
            let lone = c.known.is_none() && !c.votes.has_strong() && name_words(&name).len() < 2;
            if lone && c.occurrences.iter().any(|o| lex.is_common_word(&o.surface)) {
                return None;
            }
            let kind = c.kind();
            if kind.is_none() && !lone {
                return None;
            }
            // A given name alone ("David said") cannot be told apart from every other David.
            if kind == Some(EntityKind::Person)
                && c.occurrences
                    .iter()
                    .all(|o| name_words(&o.surface).len() == 1)
                && lex.is_given_name(&name)
                && c.known.as_ref().is_none_or(|k| !k.curated)
            {
                return None;
            }
            let mut titles: Vec<String> = Vec::new();
            for t in c.occurrences.iter().filter_map(|o| o.title.clone()) {
                if !titles.contains(&t) {
                    titles.push(t);
                }
            }
            let mut occurrences = c.occurrences;
            occurrences.sort_by_key(|o| (o.field == Field::Body, o.start));
            let description = occurrences.iter().find_map(|o| o.description.clone());
            Some(FoundEntity {
                name,
                kind,
                occurrences,
                titles,
                description,
            })
        })
        .collect();
    entities.sort_by_key(|e| {
        (
            e.occurrences[0].field == Field::Body,
            e.occurrences[0].start,
        )
    });
    entities
}

/// Whether the short name `short` (as name words) abbreviates the long name `long`.
fn abbreviates(
    short: &[String],
    long: &[String],
    long_kind: Option<EntityKind>,
    long_surface: &str,
    short_key: &str,
) -> bool {
    if short.is_empty() || short.len() >= long.len() {
        return false;
    }
    // A tail: "Kerry" of "John Kerry", "Nusra Front" of "al-Nusra Front".
    if long.ends_with(short) {
        return true;
    }
    match long_kind {
        // A distinctive word of an organisation: "Nusra" of "al-Nusra Front".
        Some(EntityKind::Organization) if short.len() == 1 => {
            let lex = lexicon::get();
            long.iter()
                .take(long.len() - 1)
                .any(|w| *w == short[0] && !lex.is_org_head(w))
                || initials(long_surface) == short_key
        }
        Some(EntityKind::Organization | EntityKind::Misc | EntityKind::Location) => {
            initials(long_surface) == short_key
        }
        _ => false,
    }
}

/// The lower-case initials of a name's capitalised words: "icrc" for "International
/// Committee of the Red Cross".
fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().next())
        .filter(|c| c.is_uppercase())
        .flat_map(char::to_lowercase)
        .collect()
}
