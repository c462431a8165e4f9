//! Building the index from every article at once, at open.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use super::postings::{ArticleIds, Entry, Inner, Postings};
use super::{EntityIndex, MentionTally, Tally, TallyChange};
use crate::store::keys;

/// Builds the entries and tallies from every article at once (the caller adds the ranking,
/// which needs the counts). Entries go into one flat list as they come, which is sorted
/// once and cut into each entity's lists of exactly their size, rather than growing a list
/// per entity and sorting each (3.5 s against 2.1 s for 4.9 million entries of 130,000
/// articles).
#[derive(Default)]
pub(in crate::store) struct Builder {
    pub(in crate::store) ids: ArticleIds,
    pub(in crate::store) entity_numbers: HashMap<Box<str>, u32>,
    pub(in crate::store) entity_names: Vec<Box<str>>,
    /// Entity number and entry (with the salience key) per mention.
    pub(in crate::store) mentions: Vec<(u32, Entry)>,
    /// Tallies by entity number.
    pub(in crate::store) tallies: Vec<Tally>,
}

impl Builder {
    /// Adds article `id`, at newest-first time `time` (see [`keys::newest_first`]), with
    /// its entities, their salience there and what the mention adds to their tallies.
    pub(in crate::store) fn article(
        &mut self,
        id: &str,
        time: [u8; 8],
        entities: Vec<(String, f32, MentionTally)>,
    ) {
        let Some(article) = self.ids.number(id) else {
            return;
        };
        let time = u64::from_be_bytes(time);
        for (entity, salience, tally) in entities {
            let Some(number) = self.entity_number(entity) else {
                continue;
            };
            let entry = Entry {
                time,
                salience: u32::from_be_bytes(keys::salience_desc(salience)),
                article,
            };
            self.mentions.push((number, entry));
            if let Some(sum) = self.tallies.get_mut(number as usize) {
                sum.add(TallyChange::of(tally.count, tally.kind, 1));
            }
        }
    }

    pub(in crate::store) fn entity_number(&mut self, entity: String) -> Option<u32> {
        if let Some(&number) = self.entity_numbers.get(entity.as_str()) {
            return Some(number);
        }
        let number = u32::try_from(self.entity_names.len()).ok()?;
        self.entity_names.push(entity.as_str().into());
        self.entity_numbers.insert(entity.into(), number);
        self.tallies.push(Tally::default());
        Some(number)
    }

    pub(in crate::store) fn finish(self) -> EntityIndex {
        let Builder {
            ids,
            entity_numbers,
            entity_names,
            mut mentions,
            tallies,
        } = self;
        drop(entity_numbers);
        let by_time = |e: &Entry| Entry { salience: 0, ..*e };
        // By entity, then in each order in turn; a mention listed twice counts once.
        let mut lists: Vec<Postings> = entity_names.iter().map(|_| Postings::default()).collect();
        mentions.sort_unstable_by(|(a, x), (b, y)| {
            a.cmp(b).then_with(|| ids.order(&by_time(x), &by_time(y)))
        });
        mentions.dedup_by(|(a, x), (b, y)| a == b && ids.order(&by_time(x), &by_time(y)).is_eq());
        for run in mentions.chunk_by(|(a, _), (b, _)| a == b) {
            if let Some(postings) = lists.get_mut(run[0].0 as usize) {
                postings.by_time = run.iter().map(|(_, e)| by_time(e)).collect();
            }
        }
        mentions.sort_unstable_by(|(a, x), (b, y)| a.cmp(b).then_with(|| ids.order(x, y)));
        for run in mentions.chunk_by(|(a, _), (b, _)| a == b) {
            if let Some(postings) = lists.get_mut(run[0].0 as usize) {
                postings.by_salience = run.iter().map(|(_, e)| *e).collect();
            }
        }
        drop(mentions);
        for (postings, tally) in lists.iter_mut().zip(tallies) {
            postings.tally = tally;
        }
        let entries = lists
            .iter()
            .map(|p| p.by_time.len() + p.by_salience.len())
            .sum();
        let entities = entity_names.into_iter().zip(lists).collect();
        EntityIndex {
            inner: Arc::new(RwLock::new(Inner {
                entities,
                ids,
                entries,
                ranking: BTreeSet::new(),
            })),
        }
    }
}
