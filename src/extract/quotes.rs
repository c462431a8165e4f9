//! Direct quotations and who said them.
//!
//! News attributes quotes in a handful of forms, all handled here:
//! `"…," Kerry said` and `"…," said Kerry` (attribution after), `Kerry said: "…"` and
//! `Kerry stressed that "…"` (attribution before), `"…," US Secretary of State John Kerry
//! … told reporters` (a titled name), `The Russian foreign minister said "…"` (a title
//! that points at a person named earlier), and a paragraph that is all quote, which belongs
//! to whoever spoke last in the paragraph before. A quote left open at the end of a paragraph
//! and reopened at the start of the next is one quote across both (the news convention for
//! long quotes). A verb of saying whose subject is not a known person ("A Twitter user
//! said") leaves the speaker unknown rather than guessing.

use super::entities::{Field, FoundEntity};
use super::lexicon::{self, Lexicon};
use super::tokens::{QuoteMark, Token, TokenKind, sentences, tokenize};
use crate::model::{ByteRange, EntityKind};

/// A quotation found in the body.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundQuote {
    /// Byte range of the quoted words in the body, without the quotation marks.
    pub range: ByteRange,
    pub text: String,
    /// Index into the entity list.
    pub speaker: Option<usize>,
}

/// Quotes with no known speaker shorter than this are taken for scare quotes and dropped.
const MIN_UNATTRIBUTED_WORDS: usize = 4;
/// How far (in tokens) an attribution may sit from its quote.
const ATTRIBUTION_REACH: usize = 25;

/// A person mention in the body.
#[derive(Debug, Clone, Copy)]
struct Person {
    start: usize,
    end: usize,
    entity: usize,
    possessive: bool,
}

/// What the text around a quote says about its speaker.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Attribution {
    Speaker(usize),
    /// A verb of saying whose subject is not a known person.
    Unknown,
    None,
}

/// Finds the quotes in `body`, whose text paragraphs are `paragraphs`.
pub fn find_quotes(
    body: &str,
    paragraphs: &[ByteRange],
    entities: &[FoundEntity],
) -> Vec<FoundQuote> {
    let lex = lexicon::get();
    let mut persons: Vec<Person> = entities
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == Some(EntityKind::Person))
        .flat_map(|(i, e)| {
            e.occurrences
                .iter()
                .filter(|o| o.field == Field::Body)
                .map(move |o| Person {
                    start: o.start,
                    end: o.end,
                    entity: i,
                    possessive: o.possessive,
                })
        })
        .collect();
    persons.sort_by_key(|p| p.start);

    let mut quotes: Vec<FoundQuote> = Vec::new();
    let mut last_speaker: Option<usize> = None;
    // An open quote carried over from the previous paragraph.
    let mut carried: Option<usize> = None;
    for paragraph in paragraphs {
        let text = paragraph.slice(body);
        let offset = paragraph.start as usize;
        let local = tokenize(text);
        let sentences = sentences(text, &local);
        let tokens: Vec<Token> = local
            .into_iter()
            .map(|t| Token {
                start: t.start + offset,
                end: t.end + offset,
                kind: t.kind,
            })
            .collect();
        let pairs = quote_pairs(&tokens);
        let mut inside = vec![false; tokens.len()];
        for pair in &pairs {
            let last = pair.close.unwrap_or(pair.end.saturating_sub(1));
            for flag in inside.iter_mut().take(last + 1).skip(pair.open) {
                *flag = true;
            }
        }
        let ctx = Paragraph {
            lex,
            body,
            tokens: &tokens,
            sentences,
            inside,
            persons: &persons,
            entities,
        };
        let mut paragraph_speaker: Option<usize> = None;
        let continues = carried.is_some() && pairs.first().is_some_and(|p| p.open == 0);
        let mut previous_speaker: Option<usize> = None;
        for (n, pair) in pairs.iter().enumerate() {
            let inner_start = tokens[pair.open].end;
            let inner_end = match pair.close {
                Some(close) => tokens[close].start,
                None => tokens
                    .get(pair.end)
                    .map_or(offset + text.len(), |t| t.start),
            };
            let mut attribution = ctx.before(pair.open);
            if attribution == Attribution::None
                && let Some(close) = pair.close
            {
                attribution = ctx.after(close, last_speaker);
            }
            // A quote reopened without being closed continues the one before it (the
            // convention for a quote running over several paragraphs, often flattened into
            // one block by scrapers).
            let continued = n > 0 && pairs[n - 1].close.is_none();
            let speaker = match attribution {
                Attribution::Speaker(s) => Some(s),
                Attribution::Unknown => None,
                Attribution::None if continued => previous_speaker,
                // A paragraph that opens with a quote and says nothing of its speaker
                // continues whoever spoke last.
                Attribution::None if pair.open == 0 => last_speaker,
                Attribution::None => None,
            };
            let range = trim_range(body, inner_start, inner_end);
            let runs_to_end = pair.close.is_none() && pair.end == tokens.len();
            if n == 0
                && continues
                && let Some(index) = carried
                && let Some(previous) = quotes.get_mut(index)
            {
                previous.range.end = range.end;
                previous.text = squash(previous.range.slice(body));
                if previous.speaker.is_none() {
                    previous.speaker = speaker;
                }
                previous_speaker = previous.speaker;
                paragraph_speaker = previous.speaker.or(paragraph_speaker);
                carried = runs_to_end.then_some(index);
                continue;
            }
            previous_speaker = speaker;
            if range.start >= range.end {
                continue;
            }
            if speaker.is_some() {
                paragraph_speaker = speaker;
            }
            quotes.push(FoundQuote {
                range,
                text: squash(range.slice(body)),
                speaker,
            });
            carried = runs_to_end.then_some(quotes.len() - 1);
        }
        if pairs.is_empty() {
            carried = None;
        }
        // Whoever this paragraph says spoke (quoted or not) is the one later quotes continue.
        if let Some(speaker) = ctx
            .last_subject_of_saying(last_speaker)
            .or(paragraph_speaker)
        {
            last_speaker = Some(speaker);
        }
    }
    quotes.retain(|q| {
        q.speaker.is_some() || q.text.split_whitespace().count() >= MIN_UNATTRIBUTED_WORDS
    });
    quotes
}

fn trim_range(body: &str, start: usize, end: usize) -> ByteRange {
    let slice = body.get(start..end.max(start)).unwrap_or("");
    let trimmed_start = start + (slice.len() - slice.trim_start().len());
    // A comma before the closing mark belongs to the sentence, not the quote.
    let kept = slice.trim_end().trim_end_matches(',').trim_end();
    let trimmed_end = (start + kept.len()).max(trimmed_start);
    ByteRange {
        start: u32::try_from(trimmed_start).unwrap_or(u32::MAX),
        end: u32::try_from(trimmed_end).unwrap_or(u32::MAX),
    }
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Paragraph<'p> {
    lex: &'static Lexicon,
    body: &'p str,
    /// Tokens with body offsets.
    tokens: &'p [Token],
    /// Sentences as token index ranges.
    sentences: Vec<std::ops::Range<usize>>,
    /// Whether each token is a quotation mark or quoted; quoted words never attribute.
    inside: Vec<bool>,
    persons: &'p [Person],
    entities: &'p [FoundEntity],
}

impl Paragraph<'_> {
    fn word(&self, i: usize) -> &str {
        self.tokens.get(i).map_or("", |t| t.text(self.body))
    }

    fn sentence_of(&self, i: usize) -> std::ops::Range<usize> {
        self.sentences
            .iter()
            .find(|s| s.contains(&i))
            .cloned()
            .unwrap_or(0..self.tokens.len())
    }

    /// The person mention that starts at token `i`, if any.
    fn person_at(&self, i: usize) -> Option<Person> {
        let start = self.tokens.get(i)?.start;
        self.persons.iter().copied().find(|p| p.start == start)
    }

    /// The person mention that ends at token `i`, if any.
    fn person_ending_at(&self, i: usize) -> Option<Person> {
        let end = self.tokens.get(i)?.end;
        self.persons.iter().copied().find(|p| p.end == end)
    }

    fn is_pronoun(&self, i: usize) -> bool {
        matches!(self.word(i).to_lowercase().as_str(), "he" | "she")
    }

    /// The person a "he" or "she" at token `i` refers to: the last non-possessive person
    /// mentioned before it, or whoever spoke last.
    fn resolve_pronoun(&self, i: usize, last_speaker: Option<usize>) -> Option<usize> {
        let at = self.tokens.get(i)?.start;
        self.persons
            .iter()
            .rev()
            .find(|p| p.end <= at && !p.possessive)
            .map(|p| p.entity)
            .or(last_speaker)
    }

    /// Attribution written before the quote opening at `open`, within its sentence:
    /// `Kerry said: "…"`, `Kerry on Friday stressed that "…"`.
    fn before(&self, open: usize) -> Attribution {
        let sentence = self.sentence_of(open);
        let floor = sentence.start.max(open.saturating_sub(ATTRIBUTION_REACH));
        let Some(verb) = (floor..open)
            .rev()
            .find(|&i| !self.inside[i] && self.lex.is_speech_verb(self.word(i)))
        else {
            return Attribution::None;
        };
        self.subject_of(verb, sentence.start, None)
    }

    /// The subject of the verb of saying at `verb`: the nearest non-possessive person before
    /// it in the same clause, a pronoun, or a title naming one person ("the foreign
    /// minister").
    fn subject_of(&self, verb: usize, floor: usize, last_speaker: Option<usize>) -> Attribution {
        for i in (floor..verb).rev() {
            let word = self.word(i);
            if word == ";" {
                break;
            }
            if let Some(person) = self.person_ending_at(i)
                && !person.possessive
            {
                return Attribution::Speaker(person.entity);
            }
            if self.is_pronoun(i) {
                return self
                    .resolve_pronoun(i, last_speaker)
                    .map_or(Attribution::Unknown, Attribution::Speaker);
            }
        }
        let clause: String = (floor..verb)
            .map(|i| self.word(i).to_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
        let titled: Vec<usize> = self
            .entities
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.kind == Some(EntityKind::Person)
                    && e.titles.iter().any(|t| contains_words(&clause, t))
            })
            .map(|(i, _)| i)
            .collect();
        match titled[..] {
            [one] => Attribution::Speaker(one),
            _ => Attribution::Unknown,
        }
    }

    /// Attribution written after the quote closing at `close`: `"…," Kerry said`,
    /// `"…," said Kerry`, `"…," he added`, `"…," John Kerry and Sergei Lavrov told …`.
    fn after(&self, close: usize, last_speaker: Option<usize>) -> Attribution {
        let sentence_end = self.sentence_of(close).end.max(close + 1);
        let limit = sentence_end.min(close + 1 + ATTRIBUTION_REACH);
        let mut speaker: Option<usize> = None;
        for i in close + 1..limit {
            if matches!(self.tokens[i].kind, TokenKind::Quote(_)) {
                break;
            }
            if self.lex.is_speech_verb(self.word(i)) {
                if speaker.is_some() {
                    return speaker.map_or(Attribution::None, Attribution::Speaker);
                }
                // "said Kerry", "said the US Secretary of State John Kerry".
                for j in i + 1..limit.min(i + 10) {
                    if let Some(person) = self.person_at(j) {
                        return Attribution::Speaker(person.entity);
                    }
                    if self.is_pronoun(j) {
                        return self
                            .resolve_pronoun(j, last_speaker)
                            .map_or(Attribution::Unknown, Attribution::Speaker);
                    }
                }
                return Attribution::Unknown;
            }
            if speaker.is_none() {
                if let Some(person) = self.person_at(i).filter(|p| !p.possessive) {
                    speaker = Some(person.entity);
                } else if self.is_pronoun(i) {
                    speaker = self.resolve_pronoun(i, last_speaker);
                }
            }
        }
        Attribution::None
    }

    /// The speaker of the last verb of saying in the paragraph, quoted or not: "Kerry said
    /// the US supported a united Syria." makes Kerry the speaker of a quote paragraph that
    /// follows.
    fn last_subject_of_saying(&self, last_speaker: Option<usize>) -> Option<usize> {
        let verb = (0..self.tokens.len())
            .rev()
            .find(|&i| !self.inside[i] && self.lex.is_speech_verb(self.word(i)))?;
        let floor = self.sentence_of(verb).start;
        match self.subject_of(verb, floor, last_speaker) {
            Attribution::Speaker(s) => Some(s),
            _ => None,
        }
    }
}

/// One quotation's marks, as token indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct QuotePair {
    open: usize,
    /// The closing mark, if the quote is closed.
    close: Option<usize>,
    /// Where an unclosed quote's words end (exclusive): the next opening mark, or the end of
    /// the paragraph.
    end: usize,
}

/// The quotations of a paragraph's tokens.
fn quote_pairs(tokens: &[Token]) -> Vec<QuotePair> {
    let mut pairs = Vec::new();
    let mut open: Option<usize> = None;
    for (i, token) in tokens.iter().enumerate() {
        let TokenKind::Quote(mark) = token.kind else {
            continue;
        };
        match (open, mark) {
            (None, QuoteMark::Open | QuoteMark::Straight) => open = Some(i),
            (Some(o), QuoteMark::Close | QuoteMark::Straight) => {
                pairs.push(QuotePair {
                    open: o,
                    close: Some(i),
                    end: i,
                });
                open = None;
            }
            // A second opening mark: the first quote was never closed.
            (Some(o), QuoteMark::Open) => {
                pairs.push(QuotePair {
                    open: o,
                    close: None,
                    end: i,
                });
                open = Some(i);
            }
            (None, QuoteMark::Close) => {}
        }
    }
    if let Some(o) = open {
        pairs.push(QuotePair {
            open: o,
            close: None,
            end: tokens.len(),
        });
    }
    pairs
}

/// Whether `haystack` contains `needle` as whole words.
fn contains_words(haystack: &str, needle: &str) -> bool {
    let padded = format!(" {haystack} ");
    padded.contains(&format!(" {needle} "))
}
