//! IPTC ninjs 2.x, the JSON news format: articles to ninjs documents and back.
//!
//! The mapping keeps what a caller wrote, so an export imported again gives the same
//! article (same id, same content hash):
//!
//! | newsstore                | ninjs 2.1                                               |
//! |--------------------------|---------------------------------------------------------|
//! | id                       | `uri` = `urn:newsstore:article:<id>`                    |
//! | headline                 | `headlines[role=main]`                                  |
//! | body                     | `bodies[contenttype=text/plain]` (text/html is accepted)|
//! | byline, language         | `by`, `language`                                        |
//! | source                   | `infosources[0].name`                                   |
//! | published time           | `firstcreated`; `versioncreated` is the update time     |
//! | revision                 | `version`                                               |
//! | tags                     | `subjects` (rel `newsstore:tag`, or none on import)     |
//! | entity tags (caller's)   | `people` / `organisations` / `places`, rel `about`, `uri` = `urn:newsstore:entity-tag:<position>`; misc ones as `subjects` with rel `newsstore:entity` |
//! | extracted entities       | the same lists with rel `newsstore:extracted`, `literal` = entity id, `uri` = Wikidata when known; skipped on import (extraction finds them again) |
//!
//! The entity records the articles point to travel beside them in a sidecar (see
//! [`entities`]), so a round trip keeps editors' merges, blocks and external ids.
//!
//! ids from other systems' `uri`s that are not ours become `ninjs-` and a hash of the uri,
//! so importing the same document twice finds the same article. What does not survive a
//! round trip: an entity tag that linked an entity id comes back linked by name and kind
//! (the id is exported as `literal`, but another store may not have that entity), and the
//! revision history (ninjs carries the current revision as `version`; an import starts a
//! new history at revision 1). A move that keeps history is a backup and a restore.

pub mod entities;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Article, ArticleInput, EntityKind, EntityTag, MentionOrigin, Timestamp};

/// The `uri` prefix of articles exported by newsstore.
pub const URI_PREFIX: &str = "urn:newsstore:article:";
const ENTITY_URI_PREFIX: &str = "urn:newsstore:entity:";
/// Marks a caller's entity tag with its position, which the content hash depends on and
/// the split into people, organisations and places would lose.
const TAG_URI_PREFIX: &str = "urn:newsstore:entity-tag:";
const REL_EXTRACTED: &str = "newsstore:extracted";
const REL_ABOUT: &str = "about";
const REL_TAG: &str = "newsstore:tag";
const REL_MISC_ENTITY: &str = "newsstore:entity";
/// An entity tag without a kind (the store resolves it by name).
const REL_ANY_ENTITY: &str = "newsstore:entity-any";
const SCHEMA: &str = "http://www.iptc.org/std/ninjs/ninjs-schema_2.1.json";

/// A ninjs document: the properties newsstore reads and writes. Others are ignored on
/// import.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard: Option<Standard>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firstcreated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioncreated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headlines: Vec<Text>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bodies: Vec<Text>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub infosources: Vec<Named>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<Named>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<Named>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organisations: Vec<Named>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub places: Vec<Named>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Standard {
    pub name: String,
    pub version: String,
    pub schema: String,
}

/// A headline or body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Text {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contenttype: Option<String>,
    pub value: String,
}

/// A person, organisation, place, subject or information source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Named {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
}

/// Why a ninjs document cannot become an article.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NinjsError {
    #[error("it is not a ninjs JSON document: {0}")]
    Json(String),
    #[error("it has no uri")]
    NoUri,
    #[error("it has no headline (headlines[].value)")]
    NoHeadline,
    #[error("it has no text body (bodies[] with contenttype text/plain or text/html)")]
    NoBody,
    #[error("its {field} {value:?} is not an RFC 3339 date-time")]
    BadTime { field: &'static str, value: String },
}

/// An article read from ninjs: its id and what a caller would have written.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub id: String,
    pub input: ArticleInput,
}

/// Parses a ninjs document.
pub fn parse(json: &str) -> Result<Imported, NinjsError> {
    let doc: Document = serde_json::from_str(json).map_err(|e| NinjsError::Json(e.to_string()))?;
    import(&doc)
}

/// The article id for a ninjs `uri`: ours when it is one of our exports, else a stable
/// hash of it.
pub fn article_id(uri: &str) -> String {
    if let Some(id) = uri.strip_prefix(URI_PREFIX)
        && crate::model::is_valid_article_id(id)
    {
        return id.to_string();
    }
    let digest = Sha256::digest(uri.as_bytes());
    format!("ninjs-{}", hex::encode(&digest[..12]))
}

/// The article a ninjs document describes.
pub fn import(doc: &Document) -> Result<Imported, NinjsError> {
    let uri = doc.uri.trim();
    if uri.is_empty() {
        return Err(NinjsError::NoUri);
    }
    let headline = doc
        .headlines
        .iter()
        .find(|h| h.role.as_deref() == Some("main"))
        .or_else(|| doc.headlines.first())
        .map(|h| h.value.trim().to_string())
        .filter(|h| !h.is_empty())
        .ok_or(NinjsError::NoHeadline)?;
    let body = body_text(&doc.bodies).ok_or(NinjsError::NoBody)?;
    let published = match &doc.firstcreated {
        Some(text) => Some(
            Timestamp::parse_rfc3339(text).ok_or_else(|| NinjsError::BadTime {
                field: "firstcreated",
                value: text.clone(),
            })?,
        ),
        None => None,
    };
    let mut tags = Vec::new();
    // With the position our exports record, when there is one.
    let mut entity_tags: Vec<(usize, EntityTag)> = Vec::new();
    let position = |item: &Named| {
        item.uri
            .as_deref()
            .and_then(|u| u.strip_prefix(TAG_URI_PREFIX))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    };
    for subject in &doc.subjects {
        let Some(name) = subject
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        match subject.rel.as_deref() {
            Some(rel @ (REL_MISC_ENTITY | REL_ANY_ENTITY)) => entity_tags.push((
                position(subject),
                EntityTag {
                    name: name.to_string(),
                    kind: (rel == REL_MISC_ENTITY).then_some(EntityKind::Misc),
                    entity_id: None,
                },
            )),
            Some(REL_EXTRACTED) => {}
            _ => tags.push(name.to_string()),
        }
    }
    for (list, kind) in [
        (&doc.people, EntityKind::Person),
        (&doc.organisations, EntityKind::Organization),
        (&doc.places, EntityKind::Location),
    ] {
        for item in list {
            if item.rel.as_deref() == Some(REL_EXTRACTED) {
                continue;
            }
            if let Some(name) = item
                .name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
            {
                entity_tags.push((
                    position(item),
                    EntityTag {
                        name: name.to_string(),
                        kind: Some(kind),
                        entity_id: None,
                    },
                ));
            }
        }
    }
    // Stable: documents without positions keep their list order.
    entity_tags.sort_by_key(|(position, _)| *position);
    let entity_tags = entity_tags.into_iter().map(|(_, tag)| tag).collect();
    Ok(Imported {
        id: article_id(uri),
        input: ArticleInput {
            headline,
            body,
            byline: doc.by.clone().unwrap_or_default(),
            source: doc
                .infosources
                .iter()
                .find_map(|s| s.name.clone())
                .unwrap_or_default(),
            language: doc.language.clone().unwrap_or_default(),
            published,
            tags,
            entity_tags,
        },
    })
}

/// The plain text of the first usable body: text/plain as is, text/html with its
/// paragraphs kept and its markup removed.
fn body_text(bodies: &[Text]) -> Option<String> {
    let plain = bodies.iter().find(|b| {
        b.contenttype
            .as_deref()
            .is_none_or(|t| t.starts_with("text/plain"))
    });
    if let Some(body) = plain {
        let text = body.value.trim();
        return (!text.is_empty()).then(|| text.to_string());
    }
    let html = bodies.iter().find(|b| {
        b.contenttype
            .as_deref()
            .is_some_and(|t| t.starts_with("text/html"))
    })?;
    let text = html_to_text(&html.value);
    (!text.is_empty()).then_some(text)
}

/// Block ends become blank lines, tags go, the common entities are decoded.
fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end].trim().to_ascii_lowercase();
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        if matches!(
            name.as_str(),
            "p" | "div" | "br" | "h1" | "h2" | "h3" | "h4" | "li" | "blockquote"
        ) {
            out.push_str("\n\n");
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    let paragraphs: Vec<String> = decoded
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect();
    paragraphs.join("\n\n")
}

/// The ninjs 2.1 document of a stored article.
pub fn export(article: &Article) -> Document {
    let input = &article.input;
    let mut doc = Document {
        uri: format!("{URI_PREFIX}{}", article.id),
        standard: Some(Standard {
            name: "ninjs".into(),
            version: "2.1".into(),
            schema: SCHEMA.into(),
        }),
        kind: Some("text".into()),
        version: Some(article.revision.to_string()),
        firstcreated: input.published.map(Timestamp::to_rfc3339),
        versioncreated: Some(article.updated.to_rfc3339()),
        language: (!input.language.is_empty()).then(|| input.language.clone()),
        by: (!input.byline.is_empty()).then(|| input.byline.clone()),
        headlines: vec![Text {
            role: Some("main".into()),
            contenttype: Some("text/plain".into()),
            value: input.headline.clone(),
        }],
        bodies: vec![Text {
            role: Some("main".into()),
            contenttype: Some("text/plain".into()),
            value: input.body.clone(),
        }],
        infosources: if input.source.is_empty() {
            Vec::new()
        } else {
            vec![Named {
                name: Some(input.source.clone()),
                ..Named::default()
            }]
        },
        subjects: input
            .tags
            .iter()
            .map(|tag| Named {
                name: Some(tag.clone()),
                rel: Some(REL_TAG.into()),
                ..Named::default()
            })
            .collect(),
        ..Document::default()
    };
    // The caller's entity tags, as written (so the content hash survives a round trip).
    for (position, tag) in input.entity_tags.iter().enumerate() {
        let named = Named {
            name: Some(tag.name.clone()),
            rel: Some(REL_ABOUT.into()),
            uri: Some(format!("{TAG_URI_PREFIX}{position}")),
            literal: tag.entity_id.clone(),
        };
        match tag.kind {
            Some(EntityKind::Person) => doc.people.push(named),
            Some(EntityKind::Organization) => doc.organisations.push(named),
            Some(EntityKind::Location) => doc.places.push(named),
            Some(EntityKind::Misc) => doc.subjects.push(Named {
                rel: Some(REL_MISC_ENTITY.into()),
                ..named
            }),
            None => doc.subjects.push(Named {
                rel: Some(REL_ANY_ENTITY.into()),
                ..named
            }),
        }
    }
    // What extraction found, for consumers; not read back on import.
    for mention in &article.derived.mentions {
        if mention.origin == MentionOrigin::Client {
            continue;
        }
        let named = Named {
            name: Some(mention.name.clone()),
            rel: Some(REL_EXTRACTED.into()),
            uri: Some(format!("{ENTITY_URI_PREFIX}{}", mention.entity_id)),
            literal: Some(mention.entity_id.clone()),
        };
        match mention.kind {
            EntityKind::Person => doc.people.push(named),
            EntityKind::Organization => doc.organisations.push(named),
            EntityKind::Location => doc.places.push(named),
            EntityKind::Misc => doc.subjects.push(named),
        }
    }
    doc
}

/// The document as pretty JSON.
pub fn to_json(doc: &Document) -> String {
    serde_json::to_string_pretty(doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_third_party_document() {
        let json = r#"{
          "uri": "urn:example:news:2024-0001",
          "standard": {"name": "ninjs", "version": "2.1",
                       "schema": "http://www.iptc.org/std/ninjs/ninjs-schema_2.1.json"},
          "type": "text", "version": "1",
          "firstcreated": "2024-05-01T09:30:00+02:00",
          "language": "en-GB", "by": "Jane Reporter", "pubstatus": "usable",
          "headlines": [{"role": "sub", "value": "Sub"}, {"role": "main", "value": "Council approves bridge"}],
          "bodies": [{"contenttype": "text/html",
                      "value": "<p>The council voted on <b>Tuesday</b>.</p><p>Work starts in May &amp; ends in June.</p>"}],
          "people": [{"name": "John Smith", "rel": "mentioned"}],
          "organisations": [{"name": "City Council"}],
          "places": [{"name": "Springfield"}],
          "subjects": [{"name": "Infrastructure"}],
          "infosources": [{"name": "Example News Agency", "uri": "https://news.example.com/"}]
        }"#;
        let imported = parse(json).unwrap();
        assert!(imported.id.starts_with("ninjs-"));
        assert_eq!(imported.id, parse(json).unwrap().id, "stable");
        let input = imported.input;
        assert_eq!(input.headline, "Council approves bridge");
        assert_eq!(
            input.body,
            "The council voted on Tuesday.\n\nWork starts in May & ends in June."
        );
        assert_eq!(input.source, "Example News Agency");
        assert_eq!(input.byline, "Jane Reporter");
        assert_eq!(input.tags, ["Infrastructure"]);
        assert_eq!(
            input.published,
            Timestamp::parse_rfc3339("2024-05-01T07:30:00Z")
        );
        let kinds: Vec<_> = input
            .entity_tags
            .iter()
            .map(|t| (t.name.as_str(), t.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("John Smith", Some(EntityKind::Person)),
                ("City Council", Some(EntityKind::Organization)),
                ("Springfield", Some(EntityKind::Location)),
            ]
        );
    }

    #[test]
    fn refuses_documents_it_cannot_store() {
        assert!(matches!(parse("{"), Err(NinjsError::Json(_))));
        assert_eq!(parse(r#"{"uri": ""}"#), Err(NinjsError::NoUri));
        assert_eq!(parse(r#"{"uri": "x"}"#), Err(NinjsError::NoHeadline));
        assert_eq!(
            parse(r#"{"uri": "x", "headlines": [{"value": "H"}]}"#),
            Err(NinjsError::NoBody)
        );
        assert!(matches!(
            parse(
                r#"{"uri": "x", "headlines": [{"value": "H"}], "bodies": [{"value": "B"}],
                    "firstcreated": "yesterday"}"#
            ),
            Err(NinjsError::BadTime { .. })
        ));
        assert_eq!(article_id("urn:newsstore:article:abc"), "abc");
        assert!(article_id("urn:newsstore:article:Not Valid").starts_with("ninjs-"));
    }
}
