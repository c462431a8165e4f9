//! The layout of an article body: text paragraphs, subheadings and image captions.
//!
//! Bodies arrive as plain text with blank lines between blocks. Web-scraped news also carries
//! page furniture in that text: caption blocks (often the caption twice, once with a credit
//! such as "( Image Source )") and short subheading lines. Telling them apart matters
//! beyond display: the lead is the first real paragraph, not a caption.

use crate::model::ByteRange;

/// One block of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Paragraph(ByteRange),
    Subheading(ByteRange),
    /// The block's range and its caption texts with credits removed.
    Caption(ByteRange, Vec<String>),
}

/// Markers of an image credit or caption line.
const CAPTION_MARKERS: &[&str] = &[
    "image source",
    "image copyright",
    "image caption",
    "getty images",
    "photo credit",
    "(photo:",
    "(image:",
    "(picture:",
    "photograph:",
];

/// Credit fragments removed from caption text, matched without regard to case.
const CREDIT_PATTERNS: &[&str] = &["( image source )", "(image source)", "image source"];

/// Splits `body` into blocks. Blank lines separate blocks; a body with no blank lines but
/// several lines is taken to have one block per line.
pub fn blocks(body: &str) -> Vec<Block> {
    let raw = raw_blocks(body);
    raw.into_iter()
        .filter_map(|range| classify(body, range))
        .collect()
}

/// Byte ranges of the non-empty blocks, trimmed of surrounding whitespace.
fn raw_blocks(body: &str) -> Vec<ByteRange> {
    let has_blank_line = body.split('\n').skip(1).any(|line| line.trim().is_empty());
    let mut out = Vec::new();
    let mut block_start: Option<usize> = None;
    let mut block_end = 0;
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        if content.trim().is_empty() {
            if let Some(s) = block_start.take() {
                out.push(trimmed(body, s, block_end));
            }
            continue;
        }
        let end = start + content.len();
        if !has_blank_line {
            out.push(trimmed(body, start, end));
            continue;
        }
        block_start.get_or_insert(start);
        block_end = end;
    }
    if let Some(s) = block_start {
        out.push(trimmed(body, s, block_end));
    }
    out.retain(|r| r.start < r.end);
    out
}

fn trimmed(text: &str, start: usize, end: usize) -> ByteRange {
    let slice = &text[start..end];
    let lead = slice.len() - slice.trim_start().len();
    let trail = slice.len() - slice.trim_end().len();
    let start = start + lead;
    let end = (end - trail).max(start);
    ByteRange {
        start: u32::try_from(start).unwrap_or(u32::MAX),
        end: u32::try_from(end).unwrap_or(u32::MAX),
    }
}

fn classify(body: &str, range: ByteRange) -> Option<Block> {
    let text = range.slice(body);
    if text.is_empty() {
        return None;
    }
    let lower = text.to_lowercase();
    if CAPTION_MARKERS.iter().any(|m| lower.contains(m)) || is_repeated_caption(text) {
        return Some(Block::Caption(range, caption_texts(text)));
    }
    if is_subheading(text) {
        return Some(Block::Subheading(range));
    }
    Some(Block::Paragraph(range))
}

/// A block of several lines that say the same thing (a caption shown twice).
fn is_repeated_caption(text: &str) -> bool {
    let lines: Vec<String> = text.lines().map(squash).collect();
    lines.len() >= 2
        && lines
            .iter()
            .skip(1)
            .all(|line| line.starts_with(lines[0].as_str()) || lines[0].starts_with(line.as_str()))
}

/// A short single line without closing punctuation: "Assad's Future".
fn is_subheading(text: &str) -> bool {
    let words = text.split_whitespace().count();
    !text.contains('\n')
        && (1..=12).contains(&words)
        && text.len() <= 100
        && !text.ends_with(['.', '!', '?', ':', ';', ',', '"', '”', '\'', ')'])
        && !text.starts_with(['"', '“', '(', '-', '*', '•'])
        && text.chars().next().is_some_and(char::is_alphanumeric)
}

/// Whitespace collapsed to single spaces.
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The distinct captions of a caption block, credits removed.
fn caption_texts(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut clean = squash(line);
        for pattern in CREDIT_PATTERNS {
            // ASCII lower-casing keeps byte offsets, so `at` indexes `clean` too.
            if let Some(at) = clean.to_ascii_lowercase().find(pattern) {
                clean.replace_range(at..at + pattern.len(), "");
            }
        }
        let clean = squash(&clean);
        if clean.is_empty() {
            continue;
        }
        match out
            .iter_mut()
            .find(|c| c.starts_with(&clean) || clean.starts_with(c.as_str()))
        {
            // Keep the longer of two versions of one caption.
            Some(existing) if clean.len() > existing.len() => *existing = clean,
            Some(_) => {}
            None => out.push(clean),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(body: &str) -> Vec<String> {
        blocks(body)
            .into_iter()
            .map(|b| match b {
                Block::Paragraph(r) => format!("P:{}", r.slice(body)),
                Block::Subheading(r) => format!("S:{}", r.slice(body)),
                Block::Caption(_, texts) => format!("C:{}", texts.join("|")),
            })
            .collect()
    }

    #[test]
    fn recognises_captions_subheadings_and_paragraphs() {
        let body = "Kerry and Lavrov  speak in Geneva.\nKerry and Lavrov speak in Geneva. ( Image Source )\n\n\
                    The talks failed.\n\nAssad's Future\n\n\"We want peace.";
        assert_eq!(
            kinds(body),
            [
                "C:Kerry and Lavrov speak in Geneva.",
                "P:The talks failed.",
                "S:Assad's Future",
                "P:\"We want peace."
            ]
        );
    }

    #[test]
    fn one_block_per_line_without_blank_lines() {
        assert_eq!(
            kinds("One.\nTwo.\r\nThree."),
            ["P:One.", "P:Two.", "P:Three."]
        );
    }

    #[test]
    fn empty_and_whitespace_bodies_have_no_blocks() {
        assert!(blocks("").is_empty());
        assert!(blocks(" \n\n\t\n").is_empty());
    }
}
