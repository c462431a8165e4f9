//! Seeding at startup: idempotent, stable ids, bad files skipped.

use newsstore::api::proto;

use super::support::{TestApp, repo_seeds};

#[tokio::test]
async fn seeds_load_once_and_changed_files_become_new_revisions() {
    let seeds = super::support::temp_dir();
    std::fs::copy(
        repo_seeds().join("000_d5ebef1cd6c2904d.txt"),
        seeds.path().join("000_d5ebef1cd6c2904d.txt"),
    )
    .unwrap();
    std::fs::write(
        seeds.path().join("Second Story.txt"),
        "Markets rally in Tokyo\n\nShares in Tokyo rose sharply on Monday.\n",
    )
    .unwrap();
    let seed_dir = seeds.path().to_path_buf();
    let configure = |config: &mut newsstore::app::Config| config.seeds = Some(seed_dir.clone());

    let app = TestApp::spawn_with(super::support::temp_dir(), configure).await;
    assert_eq!(app.seed_report.created, 2);
    let seed = app.get("000_d5ebef1cd6c2904d").await.expect("seed loaded");
    assert_eq!(seed.revision, 1);
    assert_eq!(seed.source, "TRTWorld and agencies");
    assert_eq!(seed.language, "en");
    assert!(
        seed.headline
            .starts_with("US Secretary of State John Kerry said")
    );
    assert_eq!(
        seed.lead,
        "The United States and Russia failed to close a deal on nationwide cessation of \
         hostilities and extending military cooperation in Syria, saying they still have \
         issues to resolve before an agreement could be announced."
    );
    assert_eq!(
        seed.subheadings,
        [
            "A United Syria",
            "We Do Not Support an Independent Kurd Initiative",
            "Assad's Future"
        ]
    );
    assert_eq!(seed.captions.len(), 1);
    assert!(!seed.captions[0].contains("Image Source"));
    assert!(
        app.get("second-story").await.ok().is_some(),
        "id from the file name"
    );

    // Restart: nothing changes.
    let data = app.stop().await;
    let app = TestApp::spawn_with(data, configure).await;
    assert_eq!(app.seed_report.unchanged, 2);
    assert_eq!(app.seed_report.created + app.seed_report.updated, 0);
    assert_eq!(
        app.get("000_d5ebef1cd6c2904d").await.ok().unwrap().revision,
        1
    );
    let listed = app
        .articles()
        .list_articles(proto::ListArticlesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.articles.len(), 2, "no duplicates after a restart");

    // A changed file updates its article.
    std::fs::write(
        seeds.path().join("Second Story.txt"),
        "Markets rally in Tokyo\n\nShares in Tokyo rose sharply on Tuesday.\n",
    )
    .unwrap();
    let data = app.stop().await;
    let app = TestApp::spawn_with(data, configure).await;
    assert_eq!(app.seed_report.updated, 1);
    assert_eq!(app.seed_report.unchanged, 1);
    let second = app.get("second-story").await.ok().unwrap();
    assert_eq!(second.revision, 2);
    assert!(second.body.contains("Tuesday"));
}

#[tokio::test]
async fn bad_files_are_skipped_and_the_rest_load() {
    let seeds = super::support::temp_dir();
    let dir = seeds.path();
    std::fs::write(dir.join("good.txt"), "A headline\n\nA body about Geneva.\n").unwrap();
    std::fs::write(dir.join("empty.txt"), "").unwrap();
    std::fs::write(dir.join("binary.txt"), [0x7f, b'E', b'L', b'F', 0, 0, 0, 1]).unwrap();
    std::fs::write(dir.join("latin1.txt"), b"Caf\xe9\n\nBody.\n").unwrap();
    std::fs::write(dir.join("huge.txt"), "x".repeat(5000)).unwrap();
    std::fs::write(dir.join("notes.md"), "# not an article").unwrap();
    let seed_dir = dir.to_path_buf();
    let app = TestApp::spawn_with(super::support::temp_dir(), |config| {
        config.seeds = Some(seed_dir);
        config.max_seed_bytes = 4096;
    })
    .await;
    assert_eq!(app.seed_report.created, 1);
    let mut reasons: Vec<(String, String)> = app
        .seed_report
        .skipped
        .iter()
        .map(|(path, reason)| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                reason.clone(),
            )
        })
        .collect();
    reasons.sort();
    let names: Vec<&str> = reasons.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "binary.txt",
            "empty.txt",
            "huge.txt",
            "latin1.txt",
            "notes.md"
        ]
    );
    assert!(reasons[0].1.contains("binary"));
    assert!(reasons[1].1.contains("empty"));
    assert!(reasons[2].1.contains("larger than"));
    assert!(reasons[3].1.contains("not UTF-8"));
    assert!(app.get("good").await.ok().is_some());
}

#[tokio::test]
async fn a_missing_seeds_folder_is_not_fatal() {
    let app = TestApp::spawn_with(super::support::temp_dir(), |config| {
        config.seeds = Some("/definitely/not/here".into());
    })
    .await;
    assert_eq!(app.seed_report.loaded(), 0);
    let listed = app
        .articles()
        .list_articles(proto::ListArticlesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.articles.is_empty());
}

#[tokio::test]
async fn api_edits_and_deletes_of_seed_articles_survive_restarts() {
    let seeds = super::support::temp_dir();
    std::fs::write(
        seeds.path().join("one.txt"),
        "Headline one\n\nBody about Geneva.\n",
    )
    .unwrap();
    std::fs::write(
        seeds.path().join("two.txt"),
        "Headline two\n\nBody about Moscow.\n",
    )
    .unwrap();
    let seed_dir = seeds.path().to_path_buf();
    let configure = |config: &mut newsstore::app::Config| config.seeds = Some(seed_dir.clone());
    let app = TestApp::spawn_with(super::support::temp_dir(), configure).await;
    assert_eq!(app.seed_report.created, 2);
    app.articles()
        .update_article(proto::UpdateArticleRequest {
            article: Some(proto::Article {
                id: "one".into(),
                tags: vec!["edited".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    app.articles()
        .delete_article(proto::DeleteArticleRequest {
            id: "two".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let data = app.stop().await;
    let app = TestApp::spawn_with(data, configure).await;
    assert_eq!(app.seed_report.unchanged, 2);
    assert_eq!(app.get("one").await.unwrap().tags, ["edited"]);
    assert_eq!(
        app.get("two").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

#[tokio::test]
async fn many_files_load_in_chunks_and_reload_only_what_changed() {
    // More files than one chunk of the loader holds, all naming one person, so the
    // entity's count is built up across several store writes.
    const FILES: usize = 300;
    let seeds = super::support::temp_dir();
    let story = |n: usize, day: &str| {
        format!(
            "Story {n}\n\nChancellor Angela Merkel visited Hamburg on {day}. \
             Merkel met dockworkers there, officials said.\n"
        )
    };
    for n in 0..FILES {
        std::fs::write(
            seeds.path().join(format!("story-{n:03}.txt")),
            story(n, "Monday"),
        )
        .unwrap();
    }
    let seed_dir = seeds.path().to_path_buf();
    let configure = |config: &mut newsstore::app::Config| config.seeds = Some(seed_dir.clone());
    let app = TestApp::spawn_with(super::support::temp_dir(), configure).await;
    assert_eq!(app.seed_report.created, FILES, "{:?}", app.seed_report);
    assert!(app.seed_report.skipped.is_empty());
    let merkel = |app: &TestApp| {
        let mut entities = app.entities();
        async move {
            entities
                .list_entities(proto::ListEntitiesRequest {
                    name_prefix: "Angela Merkel".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .entities
        }
    };
    let found = merkel(&app).await;
    assert_eq!(found.len(), 1, "one entity across every chunk: {found:?}");
    assert_eq!(found[0].article_count, FILES as i64);

    // Three changed files and an article deleted through the API: only the three are
    // written again; the deletion stands.
    for n in [0, 150, 299] {
        std::fs::write(
            seeds.path().join(format!("story-{n:03}.txt")),
            story(n, "Tuesday"),
        )
        .unwrap();
    }
    app.articles()
        .delete_article(proto::DeleteArticleRequest {
            id: "story-200".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let data = app.stop().await;
    let app = TestApp::spawn_with(data, configure).await;
    assert_eq!(app.seed_report.updated, 3, "{:?}", app.seed_report);
    assert_eq!(app.seed_report.unchanged, FILES - 3);
    assert_eq!(app.seed_report.created, 0);
    let changed = app.get("story-150").await.unwrap();
    assert_eq!(changed.revision, 2);
    assert!(changed.body.contains("Tuesday"));
    assert_eq!(app.get("story-151").await.unwrap().revision, 1);
    assert_eq!(
        app.get("story-200").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    assert_eq!(merkel(&app).await[0].article_count, FILES as i64 - 1);
}
