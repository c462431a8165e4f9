//! Plain-text news documents, as found in the seeds folder.
//!
//! Two shapes are common and both are read the same way: the first line is the headline
//! (in the seed files it is a one-sentence standfirst, in BBC files a short headline), the
//! rest is the body, and a trailing `Source: …` line names the publisher. An optional
//! `By …` line right after the headline is the byline.

/// The fields a plain-text document yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub headline: String,
    pub body: String,
    pub byline: String,
    pub source: String,
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("the document is empty")]
    Empty,
    #[error("the document has a headline but no body")]
    NoBody,
    #[error("the headline is {0} characters long; at most {MAX_HEADLINE_CHARS} are allowed")]
    HeadlineTooLong(usize),
}

/// Longer first lines are not headlines, and would be refused by the API too.
pub const MAX_HEADLINE_CHARS: usize = 1000;

/// Parses a plain-text document.
pub fn parse(text: &str) -> Result<Document, DocumentError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.replace("\r\n", "\n");
    let mut lines: Vec<&str> = text.lines().collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let mut source = String::new();
    if let Some(last) = lines.last()
        && let Some(rest) = strip_prefix_ignore_case(last.trim(), "source:")
    {
        source = rest.trim().to_string();
        lines.pop();
    }
    let first = lines
        .iter()
        .position(|l| !l.trim().is_empty())
        .ok_or(DocumentError::Empty)?;
    let headline = lines[first]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let headline_chars = headline.chars().count();
    if headline_chars > MAX_HEADLINE_CHARS {
        return Err(DocumentError::HeadlineTooLong(headline_chars));
    }
    let mut rest = &lines[first + 1..];
    while rest.first().is_some_and(|l| l.trim().is_empty()) {
        rest = &rest[1..];
    }
    let mut byline = String::new();
    if let Some(line) = rest.first()
        && let Some(name) = strip_prefix_ignore_case(line.trim(), "by ")
        && name.split_whitespace().count() <= 6
        && rest.get(1).is_none_or(|next| next.trim().is_empty())
    {
        byline = name.trim().to_string();
        rest = &rest[1..];
    }
    let body = rest.join("\n").trim().to_string();
    if body.is_empty() {
        return Err(DocumentError::NoBody);
    }
    Ok(Document {
        headline,
        body,
        byline,
        source,
    })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_seed_style_document() {
        let doc = parse(
            "Kerry said talks go on.\n\nThe talks failed.\n\nSource: TRTWorld and agencies\n",
        )
        .unwrap();
        assert_eq!(doc.headline, "Kerry said talks go on.");
        assert_eq!(doc.body, "The talks failed.");
        assert_eq!(doc.source, "TRTWorld and agencies");
        assert_eq!(doc.byline, "");
    }

    #[test]
    fn reads_a_bbc_style_document_with_crlf_and_byline() {
        let doc = parse("\u{feff}Ad sales boost Time Warner profit\r\n\r\nBy Jo Smith\r\n\r\nQuarterly profits rose.\r\n\r\nMore text.\r\n")
            .unwrap();
        assert_eq!(doc.headline, "Ad sales boost Time Warner profit");
        assert_eq!(doc.byline, "Jo Smith");
        assert_eq!(doc.body, "Quarterly profits rose.\n\nMore text.");
        assert_eq!(doc.source, "");
    }

    #[test]
    fn refuses_empty_and_headline_only_documents() {
        assert_eq!(parse(""), Err(DocumentError::Empty));
        assert_eq!(parse("\n \n"), Err(DocumentError::Empty));
        assert_eq!(parse("Just a headline\n"), Err(DocumentError::NoBody));
        assert_eq!(parse("Source: X\n"), Err(DocumentError::Empty));
    }
}
