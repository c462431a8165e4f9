//! IPTC ninjs: `newsstore export` then `newsstore import` gives the same articles; the
//! import is resumable and reports bad files; the seeds folder takes ninjs beside text.

use newsstore::api::proto::{self, Article, EntityKind, EntityTag};

use super::support::{TestApp, run_cli, temp_dir};

/// The caller-written part of an article, and its content hash.
fn written(article: &Article) -> Article {
    Article {
        id: article.id.clone(),
        headline: article.headline.clone(),
        body: article.body.clone(),
        byline: article.byline.clone(),
        source: article.source.clone(),
        language: article.language.clone(),
        published_time: article.published_time,
        tags: article.tags.clone(),
        entity_tags: article.entity_tags.clone(),
        content_hash: article.content_hash.clone(),
        ..Default::default()
    }
}

#[tokio::test]
async fn export_then_import_gives_the_same_articles() {
    let app = TestApp::spawn().await;
    let tag = |name: &str, kind: EntityKind| EntityTag {
        name: name.into(),
        kind: kind as i32,
        ..Default::default()
    };
    let mut originals = Vec::new();
    for (id, headline, body, tags, entity_tags) in [
        (
            "geneva-talks",
            "Kerry and Lavrov meet in Geneva",
            "US Secretary of State John Kerry met Sergei Lavrov in Geneva.\n\n\"We made \
             progress,\" Mr Kerry said.",
            vec!["politics".to_string(), "syria".to_string()],
            vec![
                tag("John Kerry", EntityKind::Person),
                tag("Geneva Accord", EntityKind::Misc),
            ],
        ),
        (
            "markets",
            "Shares rise in Tokyo",
            "Shares rose in Tokyo on Monday.",
            vec![],
            vec![tag("Tokyo Stock Exchange", EntityKind::Organization)],
        ),
        (
            "plain",
            "Rain in Oslo",
            "It rained in Oslo.",
            vec![],
            vec![],
        ),
    ] {
        let created = app
            .create_with(proto::CreateArticleRequest {
                article: Some(Article {
                    headline: headline.into(),
                    body: body.into(),
                    byline: "By Jane Reporter".into(),
                    source: "Reuters".into(),
                    language: "en-GB".into(),
                    published_time: Some(prost_types::Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 123_000_000,
                    }),
                    tags,
                    entity_tags,
                    ..Default::default()
                }),
                article_id: id.into(),
                ..Default::default()
            })
            .await;
        originals.push(written(&created));
    }
    let data = app.stop().await;

    let out = temp_dir();
    let data_dir = data.path().to_str().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let (ok, stdout, stderr) = run_cli(&["export", "--data-dir", data_dir, "--out", out_dir]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("exported 3 articles"), "{stdout}");
    let exported: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("geneva-talks.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(exported["uri"], "urn:newsstore:article:geneva-talks");
    assert_eq!(exported["standard"]["version"], "2.1");
    assert_eq!(
        exported["headlines"][0]["value"],
        "Kerry and Lavrov meet in Geneva"
    );
    let people = exported["people"].as_array().unwrap();
    assert!(
        people
            .iter()
            .any(|p| p["name"] == "Sergei Lavrov" && p["rel"] == "newsstore:extracted"),
        "extracted entities are exported: {people:?}"
    );

    // A bad file among them is reported and does not stop the rest.
    std::fs::write(out.path().join("broken.json"), "{ not json").unwrap();
    let target = temp_dir();
    let target_dir = target.path().to_str().unwrap();
    let (ok, stdout, _) = run_cli(&["import", out_dir, "--data-dir", target_dir]);
    assert!(!ok, "bad files make the exit code non-zero");
    assert!(stdout.contains("3 created"), "{stdout}");
    assert!(
        stdout.contains("broken.json") && stdout.contains("not a ninjs JSON document"),
        "{stdout}"
    );
    // Running it again resumes: nothing is imported twice.
    std::fs::remove_file(out.path().join("broken.json")).unwrap();
    let (ok, stdout, stderr) = run_cli(&["import", out_dir, "--data-dir", target_dir]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("0 created, 0 updated, 3 unchanged"),
        "{stdout}"
    );

    let app = TestApp::spawn_with(target, |_| {}).await;
    for original in &originals {
        let imported = app.get(&original.id).await.unwrap();
        assert_eq!(written(&imported), *original);
    }
}

#[tokio::test]
async fn the_seeds_folder_takes_ninjs_documents_beside_text() {
    let seeds = temp_dir();
    std::fs::write(
        seeds.path().join("wire-1.json"),
        r#"{"uri": "urn:example:wire:1", "type": "text",
            "headlines": [{"role": "main", "value": "Ceasefire agreed"}],
            "bodies": [{"contenttype": "text/plain", "value": "A ceasefire in Syria was agreed in Geneva."}],
            "people": [{"name": "Staffan de Mistura"}],
            "subjects": [{"name": "conflict"}]}"#,
    )
    .unwrap();
    // A second document with the same uri: the first by name wins, on every load.
    std::fs::write(
        seeds.path().join("wire-2.json"),
        r#"{"uri": "urn:example:wire:1",
            "headlines": [{"value": "Duplicate"}], "bodies": [{"value": "Other text."}]}"#,
    )
    .unwrap();
    std::fs::write(
        seeds.path().join("local.txt"),
        "Rain in Oslo\n\nIt rained in Oslo all day.\n",
    )
    .unwrap();
    let seed_dir = seeds.path().to_path_buf();
    let app = TestApp::spawn_with(temp_dir(), move |config| {
        config.seeds = Some(seed_dir);
    })
    .await;
    assert_eq!(app.seed_report.created, 2, "{:?}", app.seed_report);
    let skipped = &app.seed_report.skipped;
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].0.ends_with("wire-2.json"), "{skipped:?}");
    let id = newsstore::ninjs::article_id("urn:example:wire:1");
    let wire = app.get(&id).await.unwrap();
    assert_eq!(wire.headline, "Ceasefire agreed");
    assert_eq!(wire.tags, ["conflict"]);
    assert!(
        wire.entities
            .iter()
            .any(|m| m.name == "Staffan de Mistura" && m.kind == EntityKind::Person as i32)
    );
    assert_eq!(app.get("local").await.unwrap().headline, "Rain in Oslo");
}

/// Editors' work survives a ninjs round trip: the entity sidecar carries merges, blocks,
/// descriptions and external ids, and import restores them (idempotently). The export is
/// taken from a running server, through the API, and refuses a non-empty folder.
#[tokio::test]
async fn a_round_trip_keeps_merges_blocks_and_external_ids() {
    let app = TestApp::spawn().await;
    app.create("a1", "Talks", "John Kerry met Sergei Lavrov in Geneva.")
        .await;
    app.create("a2", "Later", "Jon Kerry returned to Geneva on Monday.")
        .await;
    app.create("a3", "Oslo", "Delegates met in Oslo on Tuesday.")
        .await;
    let mut entities = app.entities();
    entities
        .merge_entities(proto::MergeEntitiesRequest {
            survivor_id: "john-kerry".into(),
            merged_ids: vec!["jon-kerry".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    entities
        .update_entity(proto::UpdateEntityRequest {
            entity: Some(proto::Entity {
                id: "john-kerry".into(),
                description: "US Secretary of State".into(),
                external_ids: [("wikidata".to_string(), "Q22316".to_string())].into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".into(), "external_ids".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    entities
        .block_entity(proto::BlockEntityRequest {
            id: "oslo".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let dir = temp_dir();
    let out = dir.path().join("export");
    let out_arg = out.to_str().unwrap().to_string();
    let server = app.addr.to_string();
    let export = {
        let (out_arg, server) = (out_arg.clone(), server.clone());
        move || run_cli(&["export", "--server", &server, "--out", &out_arg])
    };
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(export.clone()).await.unwrap();
    assert!(ok, "{stderr}");
    assert!(stdout.contains("exported 3 articles"), "{stdout}");
    let sidecar = std::fs::read_to_string(out.join("newsstore-entities.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = sidecar
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let record = |id: &str| records.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(record("jon-kerry")["merged_into"], "john-kerry");
    assert_eq!(record("john-kerry")["external_ids"]["wikidata"], "Q22316");
    assert_eq!(record("oslo")["blocked"], true);
    // Nothing is left beside the export.
    let beside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(beside.len(), 1, "{beside:?}");
    // A second export into the same folder is refused.
    let (ok, _, stderr) = tokio::task::spawn_blocking(export).await.unwrap();
    assert!(!ok);
    assert!(stderr.contains("is not empty"), "{stderr}");

    let target = temp_dir();
    let target_arg = target.path().to_str().unwrap().to_string();
    let (ok, stdout, stderr) = run_cli(&["import", &out_arg, "--data-dir", &target_arg]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("3 created"), "{stdout}");
    assert!(
        stdout.contains("entity records: 1 updated, 1 merged, 1 blocked"),
        "{stdout}"
    );
    // Again: nothing left to do.
    let (ok, stdout, stderr) = run_cli(&["import", &out_arg, "--data-dir", &target_arg]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("entity records: 0 updated, 0 merged, 0 blocked"),
        "{stdout}"
    );

    let moved = TestApp::spawn_with(target, |_| {}).await;
    let kerry = moved.entity("jon-kerry").await.unwrap();
    assert_eq!(
        kerry.id, "john-kerry",
        "the merged id resolves to the survivor"
    );
    assert_eq!(kerry.description, "US Secretary of State");
    assert_eq!(kerry.external_ids["wikidata"], "Q22316");
    assert!(moved.entity("oslo").await.unwrap().blocked);
    let a2 = moved.get("a2").await.unwrap();
    assert!(
        a2.entities.iter().any(|e| e.entity_id == "john-kerry"),
        "{:?}",
        a2.entities
    );
    let a3 = moved.get("a3").await.unwrap();
    assert!(a3.entities.iter().all(|e| e.entity_id != "oslo"));
}
