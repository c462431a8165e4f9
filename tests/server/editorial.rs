//! Editorial decisions through EntityService: update, merge, block and unblock, and how
//! articles, lists, search and later extraction follow them.

use newsstore::api::proto::{self, Entity, EntityKind};
use prost_types::FieldMask;
use tonic::Code;

use super::support::{TestApp, metadata, reason, search};

fn ids_of(article: &proto::Article) -> Vec<String> {
    article
        .entities
        .iter()
        .map(|e| e.entity_id.clone())
        .collect()
}

async fn list_by_entity(app: &TestApp, entity: &str) -> Vec<String> {
    let response = app
        .articles()
        .list_articles(proto::ListArticlesRequest {
            filter: Some(proto::ArticleFilter {
                entity_ids: vec![entity.into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut ids: Vec<String> = response.articles.into_iter().map(|a| a.id).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn merging_moves_articles_names_and_search_to_the_survivor() {
    let app = TestApp::spawn().await;
    app.create("a1", "Talks", "John Kerry met officials in Geneva.")
        .await;
    app.create("a2", "Talks", "Secretary Jon Kerry spoke in Geneva.")
        .await;
    assert_eq!(list_by_entity(&app, "jon-kerry").await, ["a2"]);

    let merged = app
        .entities()
        .merge_entities(proto::MergeEntitiesRequest {
            survivor_id: "john-kerry".into(),
            merged_ids: vec!["jon-kerry".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(merged.articles_updated, 1);
    let survivor = merged.entity.unwrap();
    assert_eq!(survivor.article_count, 2);
    assert!(survivor.aliases.contains(&"Jon Kerry".to_string()));

    // The merged id resolves to the survivor; articles and lists follow.
    assert_eq!(app.entity("jon-kerry").await.unwrap().id, "john-kerry");
    assert_eq!(list_by_entity(&app, "john-kerry").await, ["a1", "a2"]);
    // Filters naming the merged id keep working: they mean the survivor now.
    assert_eq!(list_by_entity(&app, "jon-kerry").await, ["a1", "a2"]);
    let a2 = app.get("a2").await.unwrap();
    assert!(ids_of(&a2).contains(&"john-kerry".to_string()));
    let kerry = a2
        .entities
        .iter()
        .find(|e| e.entity_id == "john-kerry")
        .unwrap();
    assert_eq!(kerry.name, "John Kerry");
    // Search follows through the change log.
    let found = app
        .search_until(search("entity:john-kerry"), |r| r.total_size == 2)
        .await;
    assert_eq!(found.total_size, 2);
    let by_old_id = app
        .articles()
        .search_articles(search("entity:jon-kerry"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_old_id.total_size, 2);
    // A new article naming the merged entity links to the survivor.
    let a3 = app
        .create("a3", "Later", "Jon Kerry returned to Geneva.")
        .await;
    assert!(ids_of(&a3).contains(&"john-kerry".to_string()));

    // Bad merges get clear errors.
    let mut entities = app.entities();
    let again = entities
        .merge_entities(proto::MergeEntitiesRequest {
            survivor_id: "jon-kerry".into(),
            merged_ids: vec!["geneva".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(reason(&again), "ENTITY_MERGED");
    assert_eq!(metadata(&again)["entity_id"], "jon-kerry");
    assert_eq!(metadata(&again)["survivor_id"], "john-kerry");
    let missing = entities
        .merge_entities(proto::MergeEntitiesRequest {
            survivor_id: "john-kerry".into(),
            merged_ids: vec!["nobody".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let itself = entities
        .merge_entities(proto::MergeEntitiesRequest {
            survivor_id: "john-kerry".into(),
            merged_ids: vec!["john-kerry".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(itself.code(), Code::InvalidArgument);
    let empty = entities
        .merge_entities(proto::MergeEntitiesRequest {
            survivor_id: "john-kerry".into(),
            merged_ids: vec![],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&empty), "REQUIRED_FIELD_MISSING");
}

#[tokio::test]
async fn blocked_entities_leave_articles_lists_and_new_extraction() {
    let app = TestApp::spawn().await;
    app.create("a1", "Talks", "John Kerry met officials in Geneva.")
        .await;
    let blocked = app
        .entities()
        .block_entity(proto::BlockEntityRequest {
            id: "geneva".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(blocked.articles_updated, 1);
    assert!(blocked.entity.unwrap().blocked);
    assert!(!ids_of(&app.get("a1").await.unwrap()).contains(&"geneva".to_string()));
    let listed = app
        .entities()
        .list_entities(proto::ListEntitiesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.entities.iter().all(|e| e.id != "geneva"));
    let a2 = app
        .create("a2", "Again", "Delegates returned to Geneva.")
        .await;
    assert!(!ids_of(&a2).contains(&"geneva".to_string()));
    // A client's tag naming the blocked entity, by id or by name, is dropped the same way
    // the tagger's is: the write goes through (a desk's decision never stops a pipeline),
    // the tag stays in entity_tags, and no mention is made.
    for tag in [
        proto::EntityTag {
            entity_id: "geneva".into(),
            ..Default::default()
        },
        proto::EntityTag {
            name: "Geneva".into(),
            kind: proto::EntityKind::Location as i32,
            ..Default::default()
        },
    ] {
        let tagged = app
            .articles()
            .create_article(proto::CreateArticleRequest {
                article: Some(proto::Article {
                    headline: "Tagged".into(),
                    body: "A body.".into(),
                    entity_tags: vec![tag.clone()],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .article
            .unwrap();
        assert!(tagged.entities.is_empty(), "{tag:?}: {:?}", tagged.entities);
        assert_eq!(tagged.entity_tags, vec![tag]);
    }
    // Merging into a blocked entity is refused, naming it in the ErrorInfo.
    app.create("a4", "Elsewhere", "Delegates met in Oslo on Monday.")
        .await;
    let err = app
        .entities()
        .merge_entities(proto::MergeEntitiesRequest {
            survivor_id: "geneva".into(),
            merged_ids: vec!["oslo".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "ENTITY_BLOCKED");
    assert_eq!(metadata(&err)["entity_id"], "geneva");

    let unblocked = app
        .entities()
        .unblock_entity(proto::UnblockEntityRequest {
            id: "geneva".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!unblocked.entity.unwrap().blocked);
    let a3 = app
        .create("a3", "Again", "Delegates returned to Geneva.")
        .await;
    assert!(ids_of(&a3).contains(&"geneva".to_string()));
    let err = app
        .entities()
        .block_entity(proto::BlockEntityRequest {
            id: "nobody".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn editors_update_names_kinds_descriptions_and_external_ids() {
    let app = TestApp::spawn().await;
    app.create("a1", "Talks", "John Kerry met officials in Geneva.")
        .await;
    let updated = app
        .entities()
        .update_entity(proto::UpdateEntityRequest {
            entity: Some(Entity {
                id: "john-kerry".into(),
                name: "John Forbes Kerry".into(),
                description: "US Secretary of State".into(),
                external_ids: [("wikidata".to_string(), "Q22316".to_string())].into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["name".into(), "description".into(), "external_ids".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.articles_updated, 1);
    let entity = updated.entity.unwrap();
    assert_eq!(entity.name, "John Forbes Kerry");
    assert!(entity.aliases.contains(&"John Kerry".to_string()));
    assert_eq!(entity.external_ids["wikidata"], "Q22316");
    assert!(entity.edited);
    let a1 = app.get("a1").await.unwrap();
    assert!(a1.entities.iter().any(|e| e.name == "John Forbes Kerry"));
    assert_eq!(
        app.entity("john-kerry").await.unwrap().description,
        "US Secretary of State"
    );

    // Without a mask, the fields set are changed.
    let retyped = app
        .entities()
        .update_entity(proto::UpdateEntityRequest {
            entity: Some(Entity {
                id: "geneva".into(),
                kind: EntityKind::Organization as i32,
                ..Default::default()
            }),
            update_mask: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        retyped.entity.unwrap().kind,
        EntityKind::Organization as i32
    );

    let bad = |entity: Entity, paths: &[&str]| proto::UpdateEntityRequest {
        entity: Some(entity),
        update_mask: Some(FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
        ..Default::default()
    };
    let kerry = || Entity {
        id: "john-kerry".into(),
        ..Default::default()
    };
    for (request, code, expected) in [
        (
            bad(kerry(), &["article_count"]),
            Code::InvalidArgument,
            "INVALID_UPDATE_MASK",
        ),
        (
            bad(kerry(), &["colour"]),
            Code::InvalidArgument,
            "INVALID_UPDATE_MASK",
        ),
        (
            bad(kerry(), &["name"]),
            Code::InvalidArgument,
            "REQUIRED_FIELD_MISSING",
        ),
        (
            bad(
                Entity {
                    external_ids: [("wikidata".to_string(), "22316".to_string())].into(),
                    ..kerry()
                },
                &["external_ids"],
            ),
            Code::InvalidArgument,
            "INVALID_FIELD_VALUE",
        ),
        (
            bad(
                Entity {
                    id: "nobody".into(),
                    description: "x".into(),
                    ..Default::default()
                },
                &["description"],
            ),
            Code::NotFound,
            "ENTITY_NOT_FOUND",
        ),
        (
            bad(kerry(), &[]),
            Code::InvalidArgument,
            "INVALID_UPDATE_MASK",
        ),
    ] {
        let err = app.entities().update_entity(request).await.unwrap_err();
        assert_eq!(err.code(), code, "{}", err.message());
        assert_eq!(reason(&err), expected, "{}", err.message());
    }
}

#[tokio::test]
async fn reextraction_applies_decisions_to_stored_articles_while_serving() {
    use newsstore::api::proto::admin_service_client::AdminServiceClient;

    let app = TestApp::spawn().await;
    app.create("a1", "Talks", "Delegates met in Geneva on Monday.")
        .await;
    app.create("a2", "Markets", "Shares rose in Tokyo on Monday.")
        .await;
    // Blocking removed Geneva from a1; unblocking does not bring it back by itself.
    app.entities()
        .block_entity(proto::BlockEntityRequest {
            id: "geneva".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    app.entities()
        .unblock_entity(proto::UnblockEntityRequest {
            id: "geneva".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!ids_of(&app.get("a1").await.unwrap()).contains(&"geneva".to_string()));
    let a2_before = app.get("a2").await.unwrap();

    let mut stream = AdminServiceClient::new(app.channel.clone())
        .reextract_articles(proto::ReextractArticlesRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut updates = Vec::new();
    while let Some(update) = stream.message().await.unwrap() {
        updates.push(update);
    }
    let last = updates.last().expect("progress arrives");
    assert!(last.done);
    assert_eq!(
        (
            last.articles_total,
            last.articles_done,
            last.articles_changed
        ),
        (2, 2, 1)
    );
    // a1 mentions Geneva again, in a new revision; a2 did not change at all.
    let a1 = app.get("a1").await.unwrap();
    assert!(ids_of(&a1).contains(&"geneva".to_string()));
    assert_eq!(
        a1.revision, 3,
        "created, rewritten by the block, re-extracted"
    );
    assert_eq!(app.get("a2").await.unwrap().etag, a2_before.etag);
    // Search follows through the change log.
    let found = app
        .search_until(search("entity:geneva"), |r| r.total_size == 1)
        .await;
    assert_eq!(found.hits[0].article.as_ref().unwrap().id, "a1");

    // The command line does the same through a running server.
    // (Off the test's runtime thread, which also runs the server.)
    let addr = app.addr.to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_newsstore"))
            .args(["reextract", "--server", &addr])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("re-extracted 2 articles") && stdout.contains("0 changed"),
        "{stdout}"
    );
}
