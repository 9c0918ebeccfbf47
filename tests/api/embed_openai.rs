//! The `openai` embedder against a local server speaking the OpenAI embeddings wire format:
//! end to end through a node (indexer and search), then the client's retries, backoff and
//! refusals one by one.

use std::time::{Duration, Instant};

use bosar_chat::embed::openai::{OpenAiEmbedder, RetryPolicy};
use bosar_chat::embed::{EmbedError, Embedder};
use serde_json::json;

use crate::helpers::vectors::wait_embedded;
use crate::helpers::{FakeOpenAi, Fault, WsClient, single_node};

#[actix_web::test]
async fn messages_are_embedded_and_searched_through_an_openai_compatible_server() {
    let fake = FakeOpenAi::start(Some("sk-test-key"));
    // The first calls meet a rate limit and an outage; the indexer's client rides them out.
    fake.fail_next(&[
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        Fault::ServerError,
    ]);
    let (db, node) = single_node(&[
        ("EMBEDDINGS_PROVIDER", "openai"),
        ("EMBEDDINGS_URL", &fake.url),
        ("EMBEDDINGS_API_KEY", "sk-test-key"),
        ("EMBEDDINGS_MODEL", "text-embedding-3-small"),
    ])
    .await;
    let alice = node.register("alice").await;
    node.create_room(&alice, "general", false).await;
    let mut ws = WsClient::connect(&node, &alice).await;
    ws.join("general", None).await;
    for body in [
        "invoice for the march consulting work",
        "the printer on floor two is jammed",
        "march invoice has been paid",
    ] {
        ws.send_message("general", body, None).await;
    }
    wait_embedded(&db, Duration::from_secs(20)).await;

    let (status, body) = node
        .get_authed(
            "/api/rooms/general/search?q=march%20invoice&limit=2",
            &alice,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut found: Vec<&str> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"]["body"].as_str().unwrap())
        .collect();
    found.sort_unstable();
    assert_eq!(
        found,
        [
            "invoice for the march consulting work",
            "march invoice has been paid"
        ]
    );

    let seen = fake.seen();
    assert!(seen.len() >= 4, "{seen:?}");
    for request in &seen {
        assert_eq!(request.authorization.as_deref(), Some("Bearer sk-test-key"));
        assert_eq!(request.body["model"], "text-embedding-3-small");
        assert_eq!(request.body["dimensions"], 384);
    }
    let inputs: Vec<String> = seen.iter().flat_map(|s| s.inputs()).collect();
    assert!(inputs.contains(&"the printer on floor two is jammed".to_owned()));
    assert!(
        inputs.contains(&"march invoice".to_owned()),
        "the query is embedded too"
    );

    // When the provider is down for good, search says `unavailable` rather than failing.
    fake.stop().await;
    ws.send(json!({"type": "search", "room": "general", "query": "printer", "ref": "x"}))
        .await;
    let reply = tokio::time::timeout(Duration::from_secs(60), ws.recv_type_any(&["error"]))
        .await
        .expect("an answer once the retries are spent");
    assert_eq!(
        (&reply["code"], &reply["ref"]),
        (&json!("unavailable"), &json!("x"))
    );
}

fn fast(fake: &FakeOpenAi, key: &str, attempts: u32) -> OpenAiEmbedder {
    OpenAiEmbedder::new(&fake.url, Some(key.to_owned()), "text-embedding-3-small").with_timing(
        Duration::from_millis(300),
        RetryPolicy {
            attempts,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(5),
        },
    )
}

#[actix_web::test]
async fn rate_limits_outages_and_timeouts_are_retried_with_backoff() {
    let fake = FakeOpenAi::start(Some("sk-good"));
    fake.fail_next(&[
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        Fault::ServerError,
        Fault::BadGateway,
        Fault::Slow(Duration::from_secs(2)),
    ]);
    let embedder = fast(&fake, "sk-good", 5);
    let started = Instant::now();
    let vectors = embedder
        .embed(&["one", "two", "three"])
        .await
        .expect("embedded");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(vectors.len(), 3);
    assert!(vectors.iter().all(|v| v.len() == 384));
    assert_eq!(
        vectors[1],
        bosar_chat::embed::hash::embed_one("two"),
        "input order kept"
    );
    assert_eq!(fake.seen().len(), 5, "4 failures, then the answer");

    // More inputs than one request takes are split, and every piece comes back in order.
    let many: Vec<String> = (0..600).map(|i| format!("text {i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let vectors = embedder.embed(&refs).await.expect("embedded");
    assert_eq!(vectors.len(), 600);
    assert_eq!(vectors[599], bosar_chat::embed::hash::embed_one("text 599"));
    let sizes: Vec<usize> = fake.seen()[5..].iter().map(|s| s.inputs().len()).collect();
    assert_eq!(sizes, [256, 256, 88]);

    // A provider that keeps failing is given up on after the last attempt.
    fake.fail_next(&[Fault::ServerError; 3]);
    let before = fake.seen().len();
    let error = fast(&fake, "sk-good", 3).embed(&["x"]).await.unwrap_err();
    assert!(matches!(error, EmbedError::Unavailable(_)), "{error}");
    assert!(error.to_string().contains("500"), "{error}");
    assert_eq!(fake.seen().len() - before, 3);
}

#[actix_web::test]
async fn bad_keys_and_wrong_dimensions_fail_at_once_with_a_clear_error() {
    let fake = FakeOpenAi::start(Some("sk-good"));
    let error = fast(&fake, "sk-wrong", 5).embed(&["x"]).await.unwrap_err();
    match &error {
        EmbedError::Refused { status, message } => {
            assert_eq!(*status, 401);
            assert!(message.contains("Incorrect API key"), "{message}");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    assert_eq!(fake.seen().len(), 1, "a refusal is not retried");

    fake.fail_next(&[Fault::WrongDimension(1536)]);
    let error = fast(&fake, "sk-good", 5).embed(&["x"]).await.unwrap_err();
    assert!(
        matches!(
            error,
            EmbedError::Dimension {
                expected: 384,
                got: 1536
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("1536") && error.to_string().contains("384"));
    assert_eq!(fake.seen().len(), 2, "a wrong dimension is not retried");

    // Nothing listening: the connection error is retried, then reported as unavailable.
    fake.stop().await;
    let error = fast(&fake, "sk-good", 2).embed(&["x"]).await.unwrap_err();
    assert!(matches!(error, EmbedError::Unavailable(_)), "{error}");
}
