//! ChangeService: the change log as an ordered, resumable, filtered stream.

use std::time::Duration;

use newsstore::api::proto::change_service_client::ChangeServiceClient;
use newsstore::api::proto::{self, ChangeKind, WatchChangesRequest, WatchChangesResponse};
use tonic::{Code, Streaming};

use super::support::TestApp;

async fn watch(app: &TestApp, request: WatchChangesRequest) -> Streaming<WatchChangesResponse> {
    app.changes()
        .watch_changes(request)
        .await
        .unwrap()
        .into_inner()
}

/// The next `n` events, failing rather than hanging when they do not come.
async fn next(stream: &mut Streaming<WatchChangesResponse>, n: usize) -> Vec<WatchChangesResponse> {
    let mut events = Vec::new();
    while events.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event arrives in time")
            .expect("the stream stays healthy")
            .expect("the stream stays open");
        events.push(event);
    }
    events
}

fn summary(events: &[WatchChangesResponse]) -> Vec<(i32, String)> {
    events
        .iter()
        .map(|e| (e.kind, e.article_id.clone()))
        .collect()
}

#[tokio::test]
async fn changes_stream_in_order_live_and_resume_without_gaps() {
    let app = TestApp::spawn().await;
    app.create("a1", "Talks", "John Kerry met officials in Geneva.")
        .await;
    app.create("a2", "Markets", "Shares rose in Tokyo.").await;
    let mut stream = watch(&app, WatchChangesRequest::default()).await;
    let first = next(&mut stream, 2).await;
    let created = ChangeKind::ArticleCreated as i32;
    assert_eq!(
        summary(&first),
        [(created, "a1".into()), (created, "a2".into())]
    );
    assert!(first[0].sequence < first[1].sequence);
    assert_eq!(first[0].article.as_ref().unwrap().headline, "Talks");

    // Live: writes made while watching arrive, in order.
    app.create("a3", "Later", "Sergei Lavrov flew to Moscow.")
        .await;
    app.articles()
        .delete_article(proto::DeleteArticleRequest {
            id: "a2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let live = next(&mut stream, 2).await;
    assert_eq!(
        summary(&live),
        [
            (created, "a3".into()),
            (ChangeKind::ArticleDeleted as i32, "a2".into())
        ]
    );
    assert!(live[1].article.is_none());
    drop(stream);

    // Resuming after the last sequence seen gives what followed, and nothing twice.
    let resume_after = first[1].sequence;
    let mut resumed = watch(
        &app,
        WatchChangesRequest {
            after_sequence: resume_after,
            ..Default::default()
        },
    )
    .await;
    let again = next(&mut resumed, 2).await;
    assert_eq!(summary(&again), summary(&live));
    assert_eq!(again[0].sequence, resume_after + 1);

    // From now: nothing old, only what comes next.
    let mut fresh = watch(
        &app,
        WatchChangesRequest {
            from_now: true,
            ..Default::default()
        },
    )
    .await;
    app.create("a4", "Newest", "Officials met in Oslo.").await;
    assert_eq!(
        summary(&next(&mut fresh, 1).await),
        [(created, "a4".into())]
    );
}

#[tokio::test]
async fn watchers_hear_only_what_their_filters_ask_for() {
    let app = TestApp::spawn().await;
    app.create("kerry", "Talks", "John Kerry met officials in Geneva.")
        .await;
    app.create("tokyo", "Markets", "Shares rose in Tokyo.")
        .await;
    app.create("kerry-2", "More talks", "John Kerry flew to Oslo.")
        .await;
    let mut about_kerry = watch(
        &app,
        WatchChangesRequest {
            entity_ids: vec!["john-kerry".into()],
            ..Default::default()
        },
    )
    .await;
    let events = next(&mut about_kerry, 2).await;
    let ids: Vec<&str> = events.iter().map(|e| e.article_id.as_str()).collect();
    assert_eq!(ids, ["kerry", "kerry-2"]);
    // Entity decisions about the entity reach its watchers too.
    app.entities()
        .update_entity(proto::UpdateEntityRequest {
            entity: Some(proto::Entity {
                id: "john-kerry".into(),
                description: "US Secretary of State".into(),
                ..Default::default()
            }),
            update_mask: None,
            ..Default::default()
        })
        .await
        .unwrap();
    let decision = next(&mut about_kerry, 1).await;
    assert_eq!(decision[0].kind, ChangeKind::EntityUpdated as i32);
    assert_eq!(decision[0].entity_id, "john-kerry");

    let err = app
        .changes()
        .watch_changes(WatchChangesRequest {
            after_sequence: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_reader_that_stops_reading_gets_told_where_to_resume() {
    let app = TestApp::spawn_with(super::support::temp_dir(), |config| {
        config.watch_slow_reader = Duration::from_millis(200);
    })
    .await;
    let lead = "Officials met again in Geneva to talk about the ceasefire. ".repeat(40);
    let articles = (0..300)
        .map(|i| proto::CreateArticleRequest {
            article: Some(proto::Article {
                headline: format!("Report {i}"),
                body: format!("{lead}\n\nMore on day {i}."),
                ..Default::default()
            }),
            article_id: format!("r{i}"),
            ..Default::default()
        })
        .collect();
    app.articles()
        .batch_create_articles(proto::BatchCreateArticlesRequest {
            requests: articles,
            ..Default::default()
        })
        .await
        .unwrap();
    // A client with small HTTP/2 windows, so that not reading soon pushes back on the
    // server instead of being absorbed by transport buffers.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .initial_stream_window_size(Some(16 * 1024))
        .initial_connection_window_size(Some(32 * 1024))
        .connect()
        .await
        .unwrap();
    let mut stream = ChangeServiceClient::new(channel)
        .watch_changes(WatchChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    // Not reading: the server's buffer and the connection's windows fill up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut last_seen = 0;
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the stream ends in time")
        {
            Ok(Some(event)) => {
                assert_eq!(event.sequence, last_seen + 1, "no gaps, no reordering");
                last_seen = event.sequence;
            }
            Ok(None) => panic!("the stream ended without saying where to resume"),
            Err(status) => break status,
        }
    };
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert_eq!(
        super::support::metadata(&error)["resume_after_sequence"],
        last_seen.to_string(),
        "the resume point is in the ErrorInfo, not only the message"
    );
    assert!(last_seen < 300, "the stream stopped early ({last_seen})");
    assert!(
        error
            .message()
            .contains(&format!("after_sequence={last_seen}")),
        "{}",
        error.message()
    );
}

#[tokio::test]
async fn a_saved_query_lets_through_only_matching_articles() {
    let app = TestApp::spawn().await;
    let mut alerts = watch(
        &app,
        WatchChangesRequest {
            query: "ceasefire AND (Syria OR entity:\"Sergei Lavrov\")".into(),
            ..Default::default()
        },
    )
    .await;
    app.create("markets", "Markets", "Shares rose in Tokyo.")
        .await;
    app.create(
        "syria",
        "Ceasefire talks",
        "A ceasefire in Syria was agreed in Geneva.",
    )
    .await;
    app.create("other-war", "Ceasefire", "A ceasefire was agreed in Yemen.")
        .await;
    app.create(
        "lavrov",
        "Moscow",
        "Sergei Lavrov said the ceasefire would hold.",
    )
    .await;
    app.articles()
        .delete_article(proto::DeleteArticleRequest {
            id: "markets".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let events = next(&mut alerts, 3).await;
    let created = ChangeKind::ArticleCreated as i32;
    assert_eq!(
        summary(&events),
        [
            (created, "syria".into()),
            (created, "lavrov".into()),
            // Deletes pass: the article is gone, so a watcher must hear about it.
            (ChangeKind::ArticleDeleted as i32, "markets".into()),
        ]
    );

    let status = app
        .changes()
        .watch_changes(WatchChangesRequest {
            query: "ceasefire AND (".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_compacted_log_answers_out_of_range_with_the_oldest_sequence() {
    let app = TestApp::spawn_with(super::support::temp_dir(), |config| {
        config.retention.changes = 3;
        config.compact_every = Duration::from_millis(50);
    })
    .await;
    for i in 0..10 {
        app.create(&format!("a{i}"), "Talks", "Officials met in Geneva.")
            .await;
    }
    // Compaction runs in the background (and never past the search index); wait until it
    // has caught up.
    use tonic_types::StatusExt;
    let mut oldest = 0;
    let mut status = None;
    for _ in 0..100 {
        if let Err(err) = app
            .changes()
            .watch_changes(WatchChangesRequest::default())
            .await
        {
            assert_eq!(err.code(), Code::OutOfRange);
            assert_eq!(super::support::reason(&err), "CHANGES_COMPACTED");
            oldest = err.get_error_details().error_info().unwrap().metadata["oldest_sequence"]
                .parse()
                .unwrap();
            status = Some(err);
            if oldest == 8 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.expect("the log is compacted");
    assert_eq!(oldest, 8, "the newest three of ten are kept");
    assert!(
        status.message().contains("oldest available is 8"),
        "{}",
        status.message()
    );
    // Resuming from just before the oldest kept works, with nothing missing.
    let mut stream = watch(
        &app,
        WatchChangesRequest {
            after_sequence: oldest - 1,
            ..Default::default()
        },
    )
    .await;
    let events = next(&mut stream, 3).await;
    let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [8, 9, 10]);
}

#[tokio::test]
async fn a_watcher_resumes_after_a_restart_without_gaps() {
    let app = TestApp::spawn().await;
    app.create("a1", "Talks", "Officials met in Geneva.").await;
    let mut stream = watch(&app, WatchChangesRequest::default()).await;
    let seen = next(&mut stream, 1).await;
    app.create("a2", "More", "Officials met in Oslo.").await;
    let data = app.stop().await;
    // The stream ends with the server, saying where to resume.
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the stream ends with the server")
        {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::Unavailable);
    assert_eq!(super::support::reason(&ended), "SHUTTING_DOWN");
    let resume: i64 = super::support::metadata(&ended)["resume_after_sequence"]
        .parse()
        .unwrap();
    assert!(resume >= seen[0].sequence, "{resume}");

    let app = TestApp::spawn_with(data, |_| {}).await;
    app.create("a3", "Later", "Officials met in Paris.").await;
    let mut resumed = watch(
        &app,
        WatchChangesRequest {
            after_sequence: seen[0].sequence,
            ..Default::default()
        },
    )
    .await;
    let events = next(&mut resumed, 2).await;
    let created = ChangeKind::ArticleCreated as i32;
    assert_eq!(
        summary(&events),
        [(created, "a2".into()), (created, "a3".into())]
    );
    assert_eq!(events[0].sequence, seen[0].sequence + 1);
    assert_eq!(events[1].sequence, seen[0].sequence + 2);
}

#[tokio::test]
async fn source_and_tag_filters_and_many_watchers() {
    let app = TestApp::spawn().await;
    let create = |id: &str, source: &str, tags: &[&str]| proto::CreateArticleRequest {
        article: Some(proto::Article {
            headline: format!("Story {id}"),
            body: "Officials met in Geneva.".into(),
            source: source.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }),
        article_id: id.into(),
        ..Default::default()
    };
    let mut from_reuters = watch(
        &app,
        WatchChangesRequest {
            sources: vec!["REUTERS".into()],
            ..Default::default()
        },
    )
    .await;
    let mut about_politics = watch(
        &app,
        WatchChangesRequest {
            tags: vec!["Politics".into()],
            ..Default::default()
        },
    )
    .await;
    // Many idle watchers cost a parked task each; all of them hear the next write.
    let mut crowd = Vec::new();
    for _ in 0..200 {
        crowd.push(
            watch(
                &app,
                WatchChangesRequest {
                    from_now: true,
                    ..Default::default()
                },
            )
            .await,
        );
    }
    for (id, source, tags) in [
        ("r1", "Reuters", &["economy"][..]),
        ("a1", "AFP", &["politics"][..]),
        ("r2", "reuters", &["Politics", "syria"][..]),
    ] {
        app.articles()
            .create_article(create(id, source, tags))
            .await
            .unwrap();
    }
    let ids = |events: Vec<WatchChangesResponse>| -> Vec<String> {
        events.into_iter().map(|e| e.article_id).collect()
    };
    assert_eq!(ids(next(&mut from_reuters, 2).await), ["r1", "r2"]);
    assert_eq!(ids(next(&mut about_politics, 2).await), ["a1", "r2"]);
    for stream in &mut crowd {
        assert_eq!(ids(next(stream, 3).await), ["r1", "a1", "r2"]);
    }
}

#[tokio::test]
async fn one_client_may_hold_only_so_many_streams() {
    let app = TestApp::spawn_with(super::support::temp_dir(), |config| {
        config.max_watchers_per_client = 3;
    })
    .await;
    let request = || WatchChangesRequest {
        from_now: true,
        ..Default::default()
    };
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(watch(&app, request()).await);
    }
    let status = app.changes().watch_changes(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    // Closing one frees its slot.
    drop(open.pop());
    let mut reopened = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Ok(stream) = app.changes().watch_changes(request()).await {
            reopened = Some(stream);
            break;
        }
    }
    assert!(reopened.is_some(), "a closed stream gives its slot back");
}

/// A watcher's filter is bounded like any other (20 entity ids, 50 sources or tags), so a
/// caller cannot make every change be matched against megabytes of ids.
#[tokio::test]
async fn watch_filters_are_bounded() {
    let app = TestApp::spawn().await;
    for (request, field) in [
        (
            WatchChangesRequest {
                entity_ids: (0..21).map(|i| format!("e{i}")).collect(),
                ..Default::default()
            },
            "entity_ids",
        ),
        (
            WatchChangesRequest {
                sources: (0..51).map(|i| format!("s{i}")).collect(),
                ..Default::default()
            },
            "sources",
        ),
        (
            WatchChangesRequest {
                tags: (0..51).map(|i| format!("t{i}")).collect(),
                ..Default::default()
            },
            "tags",
        ),
        (
            WatchChangesRequest {
                tags: vec![" ".into()],
                ..Default::default()
            },
            "tags",
        ),
    ] {
        let status = app.changes().watch_changes(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(status.message().contains(field), "{}", status.message());
    }
    // Within the bounds, a stream opens.
    watch(
        &app,
        WatchChangesRequest {
            entity_ids: (0..20).map(|i| format!("e{i}")).collect(),
            from_now: true,
            ..Default::default()
        },
    )
    .await;
}

/// The per-client stream limit also counts per token, so one token cannot hold more
/// streams by calling from many addresses; and open streams count toward the in-flight
/// limit, so streams cannot pile up past it.
#[tokio::test]
async fn streams_count_per_token_and_toward_the_in_flight_limit() {
    use newsstore::api::layers::auth::AuthConfig;
    let app = TestApp::spawn_with(super::support::temp_dir(), |config| {
        config.max_watchers_per_client = 2;
        config.max_in_flight = 4;
        config.auth = AuthConfig {
            tokens: AuthConfig::parse_tokens("a:token-a-0123456789:read,b:token-b-0123456789:read")
                .unwrap(),
            open_reads: false,
        };
    })
    .await;
    let from = |ip: [u8; 4], token: &'static str| {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .local_address(Some(std::net::IpAddr::from(ip)));
        async move {
            let channel = endpoint.connect().await.unwrap();
            newsstore::api::proto::change_service_client::ChangeServiceClient::with_interceptor(
                channel,
                move |mut request: tonic::Request<()>| {
                    request
                        .metadata_mut()
                        .insert("authorization", format!("Bearer {token}").parse().unwrap());
                    Ok(request)
                },
            )
        }
    };
    let request = || WatchChangesRequest {
        from_now: true,
        ..Default::default()
    };
    let mut open = Vec::new();
    for ip in [[127, 0, 0, 1], [127, 0, 0, 2]] {
        open.push(
            from(ip, "token-a-0123456789")
                .await
                .watch_changes(request())
                .await
                .unwrap(),
        );
    }
    // Token a holds its two, even from a third address.
    let status = from([127, 0, 0, 3], "token-a-0123456789")
        .await
        .watch_changes(request())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("this token"),
        "{}",
        status.message()
    );
    // Token b from that address may; its two streams fill the in-flight limit of four.
    for _ in 0..2 {
        open.push(
            from([127, 0, 0, 3], "token-b-0123456789")
                .await
                .watch_changes(request())
                .await
                .unwrap(),
        );
    }
    let mut articles = newsstore::api::proto::article_service_client::ArticleServiceClient::new(
        app.channel.clone(),
    );
    let get = || {
        let mut get = tonic::Request::new(newsstore::api::proto::GetArticleRequest {
            id: "nope".into(),
            ..Default::default()
        });
        get.metadata_mut().insert(
            "authorization",
            "Bearer token-b-0123456789".parse().unwrap(),
        );
        get
    };
    let status = articles.get_article(get()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(super::support::reason(&status), "OVERLOADED");
    // A stream closed gives its in-flight slot back.
    drop(open.pop());
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if articles.get_article(get()).await.unwrap_err().code() == Code::NotFound {
            served = true;
            break;
        }
    }
    assert!(served, "a closed stream frees its in-flight slot");
}
