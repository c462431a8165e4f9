//! Editorial decisions: merge, block, edit.

use super::*;

#[test]
fn merging_moves_mentions_names_and_counts_to_the_survivor() {
    let (_dir, store) = store_with(&[
        ("a1", "Talks", "John Kerry met officials in Geneva.", 1_000),
        ("a2", "Talks", "Secretary Jon Kerry spoke in Geneva.", 2_000),
        (
            "a3",
            "More",
            "John Kerry and Jon Kerry were both there.",
            3_000,
        ),
    ]);
    let survivor = store.get_entity("john-kerry").unwrap().unwrap();
    let merged = store.get_entity("jon-kerry").unwrap().unwrap();
    assert_eq!((survivor.article_count, merged.article_count), (2, 2));
    let last_seq = store.last_seq();

    let decision = store
        .merge_entities("john-kerry", &["jon-kerry".to_string()], None)
        .unwrap();
    assert_eq!(decision.articles_updated, 2);
    assert_eq!(decision.entity.article_count, 3);
    assert!(decision.entity.aliases.contains(&"Jon Kerry".to_string()));
    assert_eq!(decision.entity.first_seen, Some(Timestamp(1_000)));
    assert_eq!(decision.entity.last_seen, Some(Timestamp(3_000)));
    // The merged id resolves to the survivor; nothing mentions it any more.
    assert_eq!(
        store.resolve_entity("jon-kerry").unwrap().unwrap().id,
        "john-kerry"
    );
    for article in ["a1", "a2", "a3"] {
        let ids = mentioned(&store, article);
        assert!(
            ids.contains(&"john-kerry".to_string()),
            "{article}: {ids:?}"
        );
        assert!(
            !ids.contains(&"jon-kerry".to_string()),
            "{article}: {ids:?}"
        );
    }
    let a3 = store.get_article("a3").unwrap().unwrap();
    let kerry = &a3
        .derived
        .mentions
        .iter()
        .find(|m| m.entity_id == "john-kerry")
        .unwrap();
    assert_eq!(kerry.count, 2, "both mentions folded into one");
    // The change log has the two rewritten articles and the merge.
    let changes = store.changes_after(last_seq, 10).unwrap();
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[2].kind, ChangeKind::EntitiesMerged);
    assert_eq!(changes[2].merged_ids, ["jon-kerry"]);
    assert_eq!(store.check().unwrap(), Vec::<String>::new());

    // New articles that say "Jon Kerry" link to the survivor.
    create(
        &store,
        "a4",
        "Later",
        "Jon Kerry returned to Geneva.",
        4_000,
    );
    assert!(mentioned(&store, "a4").contains(&"john-kerry".to_string()));
    assert_eq!(
        store
            .get_entity("john-kerry")
            .unwrap()
            .unwrap()
            .article_count,
        4
    );
    // A merged entity takes no further decisions.
    let err = store
        .merge_entities("jon-kerry", &["geneva".to_string()], None)
        .unwrap_err();
    assert_eq!(err.reason(), "ENTITY_MERGED");
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn blocking_removes_an_entity_everywhere_and_from_new_articles() {
    let (_dir, store) = store_with(&[
        ("a1", "Talks", "John Kerry met officials in Geneva.", 1_000),
        (
            "a2",
            "Talks",
            "Officials gathered in Geneva on Monday.",
            2_000,
        ),
    ]);
    let decision = store.set_blocked("geneva", true, None).unwrap();
    assert_eq!(decision.articles_updated, 2);
    assert!(decision.entity.blocked);
    assert_eq!(decision.entity.article_count, 0);
    assert!(!mentioned(&store, "a1").contains(&"geneva".to_string()));
    assert!(mentioned(&store, "a2").is_empty());
    let salience: f32 = store
        .get_article("a1")
        .unwrap()
        .unwrap()
        .derived
        .mentions
        .iter()
        .map(|m| m.salience)
        .sum();
    assert!((salience - 1.0).abs() < 1e-4);
    // Blocked names are not tagged in new articles, nor listed.
    create(
        &store,
        "a3",
        "Again",
        "Delegates returned to Geneva.",
        3_000,
    );
    assert!(!mentioned(&store, "a3").contains(&"geneva".to_string()));
    let listed = store.list_entities(None, "", 100, None).unwrap();
    assert!(listed.items.iter().all(|e| e.id != "geneva"));
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    // Unblocked, the name is tagged again in new articles.
    store.set_blocked("geneva", false, None).unwrap();
    create(
        &store,
        "a4",
        "Again",
        "Delegates returned to Geneva.",
        4_000,
    );
    assert!(mentioned(&store, "a4").contains(&"geneva".to_string()));
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn editors_rename_retype_and_describe_entities() {
    let (_dir, store) =
        store_with(&[("a1", "Talks", "John Kerry met officials in Geneva.", 1_000)]);
    let patch = crate::model::EntityPatch {
        name: Some("John Forbes Kerry".into()),
        description: Some("US Secretary of State".into()),
        external_ids: Some([("wikidata".to_string(), "Q22316".to_string())].into()),
        ..Default::default()
    };
    let decision = store.update_entity("john-kerry", patch, None).unwrap();
    assert_eq!(decision.entity.name, "John Forbes Kerry");
    assert!(decision.entity.aliases.contains(&"John Kerry".to_string()));
    assert!(decision.entity.edited);
    assert_eq!(decision.articles_updated, 1);
    let a1 = store.get_article("a1").unwrap().unwrap();
    assert!(
        a1.derived
            .mentions
            .iter()
            .any(|m| m.name == "John Forbes Kerry")
    );
    // The old name still finds the entity in new articles.
    create(&store, "a2", "Again", "John Kerry flew home.", 2_000);
    assert!(mentioned(&store, "a2").contains(&"john-kerry".to_string()));
    // A changed kind: the ranking follows, and the tagger's guess no longer splits it.
    let retyped = store
        .update_entity(
            "geneva",
            crate::model::EntityPatch {
                kind: Some(crate::model::EntityKind::Organization),
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(retyped.entity.kind, crate::model::EntityKind::Organization);
    create(&store, "a3", "Again", "Officials met in Geneva.", 3_000);
    assert!(mentioned(&store, "a3").contains(&"geneva".to_string()));
    let orgs = store
        .list_entities(Some(crate::model::EntityKind::Organization), "", 10, None)
        .unwrap();
    assert!(orgs.items.iter().any(|e| e.id == "geneva"));
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    // Bad values are refused with the field named.
    let err = store
        .update_entity(
            "geneva",
            crate::model::EntityPatch {
                external_ids: Some([("wikidata".to_string(), "22316".to_string())].into()),
                ..Default::default()
            },
            None,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { ref field, .. } if field == "entity.external_ids")
    );
    assert_eq!(
        store
            .update_entity("nobody", crate::model::EntityPatch::default(), None)
            .unwrap_err()
            .reason(),
        "ENTITY_NOT_FOUND"
    );
}

#[test]
fn a_renamed_entity_keeps_its_old_name_even_with_a_full_alias_list() {
    let (_dir, store) = store_with(&[("a1", "Talks", "John Kerry met officials in Geneva.", 1)]);
    let many: Vec<String> = (0..crate::store::editorial::MAX_ALIASES)
        .map(|i| format!("Alias Number {i}"))
        .collect();
    let patch = |name: Option<&str>, aliases: Option<Vec<String>>| crate::model::EntityPatch {
        name: name.map(str::to_string),
        aliases,
        ..Default::default()
    };
    store
        .update_entity("john-kerry", patch(None, Some(many)), None)
        .unwrap();
    let renamed = store
        .update_entity("john-kerry", patch(Some("John Forbes Kerry"), None), None)
        .unwrap();
    assert_eq!(renamed.entity.aliases[0], "John Kerry");
    assert_eq!(renamed.entity.aliases.len(), 65);
    create(&store, "a2", "Again", "John Kerry flew home.", 2);
    assert!(mentioned(&store, "a2").contains(&"john-kerry".to_string()));
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}
