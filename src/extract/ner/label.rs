//! The tagger's labels: IOB2 over the four CoNLL-2003 types.

use crate::model::EntityKind;

/// Number of labels: `O` and a begin and an inside label for each of four types.
pub const LABELS: usize = 9;

/// An IOB2 label. Its index is its position in the weight rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label(u8);

/// The four entity types, in label order.
pub const TYPES: [&str; 4] = ["PER", "ORG", "LOC", "MISC"];

impl Label {
    /// Outside any entity.
    pub const O: Label = Label(0);

    pub fn from_index(index: usize) -> Label {
        debug_assert!(index < LABELS);
        Label(index as u8)
    }

    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The label that begins an entity of type `type_index` (0 PER, 1 ORG, 2 LOC, 3 MISC).
    pub fn begin_of(type_index: usize) -> Label {
        Label::new(true, type_index)
    }

    /// `B-` (begins an entity) when true, `I-` when false, for entity type `kind`.
    fn new(begin: bool, type_index: usize) -> Label {
        Label(1 + 2 * type_index as u8 + u8::from(!begin))
    }

    /// The type's index (0 PER, 1 ORG, 2 LOC, 3 MISC), or `None` for `O`.
    pub fn type_index(self) -> Option<usize> {
        (self.0 > 0).then(|| usize::from((self.0 - 1) / 2))
    }

    pub fn is_begin(self) -> bool {
        self.0 > 0 && (self.0 - 1).is_multiple_of(2)
    }

    pub fn is_inside(self) -> bool {
        self.0 > 0 && !(self.0 - 1).is_multiple_of(2)
    }

    /// Parses `O`, `B-PER`, `I-LOC`, ... (IOB1 and IOB2 spell labels the same way).
    pub fn parse(tag: &str) -> Option<Label> {
        if tag == "O" {
            return Some(Label::O);
        }
        let (prefix, kind) = tag.split_once('-')?;
        let type_index = TYPES.iter().position(|t| *t == kind)?;
        match prefix {
            "B" => Some(Label::new(true, type_index)),
            "I" => Some(Label::new(false, type_index)),
            _ => None,
        }
    }

    /// The label in IOB2 spelling.
    pub fn as_str(self) -> &'static str {
        const NAMES: [&str; LABELS] = [
            "O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC",
        ];
        NAMES[self.index()]
    }

    /// Whether `self` may follow `previous` in IOB2 (`None`: at the start of a sentence).
    /// An inside label continues an entity of its own type and nothing else.
    pub fn may_follow(self, previous: Option<Label>) -> bool {
        if !self.is_inside() {
            return true;
        }
        previous.is_some_and(|p| p.type_index() == self.type_index())
    }

    /// The same type with a begin or inside prefix.
    pub fn with_begin(self, begin: bool) -> Label {
        match self.type_index() {
            Some(t) => Label::new(begin, t),
            None => Label::O,
        }
    }

    /// The entity kind of its type (type numbers follow [`EntityKind::ALL`]).
    pub fn kind(self) -> Option<EntityKind> {
        self.type_index().map(|t| EntityKind::ALL[t])
    }

    /// The type's name ("PER", ...), or `None` for `O`.
    pub fn type_name(self) -> Option<&'static str> {
        self.type_index().map(|t| TYPES[t])
    }
}

/// An entity found in a labelled sentence: tokens `start..end` of type `type_index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    pub type_index: usize,
}

/// The entities in a label sequence, read the way `conlleval` reads them, so IOB1 and IOB2
/// input give the same chunks: an entity starts at a `B-` label or at an `I-` label that does
/// not continue an entity of its type.
pub fn chunks(labels: &[Label]) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut open: Option<Chunk> = None;
    for (i, label) in labels.iter().enumerate() {
        let continues =
            label.is_inside() && open.is_some_and(|c| Some(c.type_index) == label.type_index());
        if continues {
            continue;
        }
        if let Some(mut chunk) = open.take() {
            chunk.end = i;
            out.push(chunk);
        }
        if let Some(type_index) = label.type_index() {
            open = Some(Chunk {
                start: i,
                end: i + 1,
                type_index,
            });
        }
    }
    if let Some(mut chunk) = open {
        chunk.end = labels.len();
        out.push(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_know_their_parts() {
        for i in 0..LABELS {
            let label = Label::from_index(i);
            assert_eq!(Label::parse(label.as_str()), Some(label));
        }
        let b_loc = Label::parse("B-LOC").unwrap();
        assert!(b_loc.is_begin() && !b_loc.is_inside());
        assert_eq!(b_loc.type_name(), Some("LOC"));
        assert_eq!(b_loc.with_begin(false).as_str(), "I-LOC");
        assert_eq!(Label::parse("B-XYZ"), None);
        assert_eq!(Label::parse("E-PER"), None);
    }

    #[test]
    fn inside_labels_only_continue_their_own_type() {
        let i_per = Label::parse("I-PER").unwrap();
        assert!(!i_per.may_follow(None));
        assert!(!i_per.may_follow(Some(Label::O)));
        assert!(!i_per.may_follow(Label::parse("B-ORG")));
        assert!(i_per.may_follow(Label::parse("B-PER")));
        assert!(i_per.may_follow(Some(i_per)));
    }

    #[test]
    fn chunks_read_iob1_and_iob2_alike() {
        let parse = |tags: &str| -> Vec<Label> {
            tags.split(' ').map(|t| Label::parse(t).unwrap()).collect()
        };
        let iob2 = chunks(&parse("B-PER I-PER O B-LOC B-LOC I-LOC O B-ORG"));
        let iob1 = chunks(&parse("I-PER I-PER O I-LOC B-LOC I-LOC O I-ORG"));
        assert_eq!(iob1, iob2);
        let spans: Vec<_> = iob2.iter().map(|c| (c.start, c.end)).collect();
        assert_eq!(spans, [(0, 2), (3, 4), (4, 6), (7, 8)]);
        // A change of type inside a run starts a new entity.
        assert_eq!(chunks(&parse("B-PER I-ORG")).len(), 2);
    }
}
