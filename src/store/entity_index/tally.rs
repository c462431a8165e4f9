//! Entity tallies: what an entity's articles say about it in sum (mentions, kind votes),
//! kept beside its entries so its record is not rewritten for every article.

/// What one article's mention of an entity adds to (or, negated, takes from) its tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(in crate::store) struct TallyChange {
    pub(in crate::store) mentions: i64,
    /// The kind extraction gave it there (by `EntityKind::index`) and the vote's sign.
    pub(in crate::store) vote: Option<(usize, i64)>,
}

impl TallyChange {
    /// A mention named `count` times and taken for `kind`, counted in (`sign` 1) or out
    /// (`sign` -1).
    pub(in crate::store) fn of(
        count: u32,
        kind: Option<crate::model::EntityKind>,
        sign: i64,
    ) -> TallyChange {
        TallyChange {
            mentions: sign * i64::from(count),
            vote: kind.map(|k| (k.index(), sign)),
        }
    }
}

/// What an entity's articles say about it in sum, beyond what its entries give (the
/// article count and first and last times): how often they name it, and how many of them
/// took it for each kind (`EntityKind::ALL` order). Derived from the articles like the
/// entries, so the entity's record is not rewritten for every article that mentions it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(in crate::store) struct Tally {
    pub(in crate::store) mentions: u64,
    pub(in crate::store) votes: [u64; 4],
}

impl Tally {
    pub(in crate::store) fn is_zero(&self) -> bool {
        *self == Tally::default()
    }

    pub(in crate::store) fn add(&mut self, change: TallyChange) {
        self.mentions = self.mentions.saturating_add_signed(change.mentions);
        if let Some((kind, sign)) = change.vote
            && let Some(votes) = self.votes.get_mut(kind)
        {
            *votes = votes.saturating_add_signed(sign);
        }
    }
}

/// One article's mention of an entity, as the tally counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(in crate::store) struct MentionTally {
    pub(in crate::store) count: u32,
    pub(in crate::store) kind: Option<crate::model::EntityKind>,
}

/// An entity's counters as its entries and tally give them.
#[derive(Debug, Clone, Default)]
pub(in crate::store) struct Counters {
    pub(in crate::store) articles: u64,
    pub(in crate::store) tally: Tally,
    /// The times of its newest and oldest by-time entries.
    pub(in crate::store) newest: Option<crate::model::Timestamp>,
    pub(in crate::store) oldest: Option<crate::model::Timestamp>,
}
