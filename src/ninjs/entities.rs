//! The entity sidecar of a ninjs export: `newsstore-entities.jsonl`, one JSON object per
//! line for every entity the store has ever had, so an import can restore the desk's work
//! that ninjs has no place for (merges, blocks, renames, descriptions, external ids).
//!
//! ninjs carries each article's entities (`people`, `organisations`, `places`, `subjects`
//! with `uri` = `urn:newsstore:entity:<id>`); the sidecar carries the records they point to:
//!
//! ```json
//! {"id":"john-kerry","name":"John Kerry","kind":"person","aliases":["Kerry"],
//!  "description":"US Secretary of State","external_ids":{"wikidata":"Q22316"},
//!  "edited":true,"blocked":false,"merged_into":null}
//! ```
//!
//! `kind` is `person`, `organization`, `location` or `misc`; `edited` says an editor set
//! the name, kind or aliases (so an import sets them too, rather than trusting extraction);
//! `merged_into` names the entity this one was merged into.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Entity, EntityKind};

/// The sidecar's file name, written beside the articles. Not `.json`, so importers that
/// read every `.json` file as an article leave it alone.
pub const FILE: &str = "newsstore-entities.jsonl";

/// One line of the sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityRecord {
    pub id: String,
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub external_ids: BTreeMap<String, String>,
    #[serde(default)]
    pub edited: bool,
    #[serde(default)]
    pub blocked: bool,
    #[serde(default)]
    pub merged_into: Option<String>,
}

impl EntityRecord {
    pub fn of(entity: &Entity) -> EntityRecord {
        EntityRecord {
            id: entity.id.clone(),
            name: entity.name.clone(),
            kind: match entity.kind {
                EntityKind::Person => "person",
                EntityKind::Organization => "organization",
                EntityKind::Location => "location",
                EntityKind::Misc => "misc",
            }
            .to_string(),
            aliases: entity.aliases.clone(),
            description: entity.description.clone(),
            external_ids: entity.external_ids.clone(),
            edited: entity.edited,
            blocked: entity.blocked,
            merged_into: entity.merged_into.clone(),
        }
    }

    /// The record's kind; `None` for a kind this version does not know.
    pub fn kind(&self) -> Option<EntityKind> {
        match self.kind.as_str() {
            "person" => Some(EntityKind::Person),
            "organization" => Some(EntityKind::Organization),
            "location" => Some(EntityKind::Location),
            "misc" => Some(EntityKind::Misc),
            _ => None,
        }
    }

    /// The record as one sidecar line (without its newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// Reads a sidecar: its records, or the number and reason of the first bad line.
pub fn parse(text: &str) -> Result<Vec<EntityRecord>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_a_line() {
        let record = EntityRecord {
            id: "john-kerry".into(),
            name: "John Kerry".into(),
            kind: "person".into(),
            aliases: vec!["Kerry".into()],
            description: "US Secretary of State".into(),
            external_ids: [("wikidata".to_string(), "Q22316".to_string())].into(),
            edited: true,
            blocked: false,
            merged_into: None,
        };
        assert_eq!(parse(&record.to_line()).unwrap(), vec![record.clone()]);
        assert_eq!(record.kind(), Some(EntityKind::Person));
        assert!(parse("{}\n").unwrap_err().starts_with("line 1:"));
    }
}
