//! Q2 logs, captured: no secret, signature, or payload field (names,
//! emails, addresses) ever reaches them, and internal failures carry the
//! request id. One test in its own binary, both stores in turn: tracing
//! caches per call site whether anyone listens, and call sites first hit
//! by concurrently running tests could be cached as unheard.

mod q2_support;

use http::StatusCode;
use q2_support::{Harness, USER, fixture, order};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_never_contain_the_payload_or_the_secret_on_either_store() {
    logs_never_contain_the_payload_or_the_secret(Harness::sqlite().await).await;
    logs_never_contain_the_payload_or_the_secret(Harness::dynamodb().await).await;
}

async fn logs_never_contain_the_payload_or_the_secret(h: Harness) {
    let (logs, _guard) = tollgate_tests::logs::capture();
    let body = fixture("order.snake.json");
    let forged = h.post_signed(b"attacker", h.now().timestamp(), body.clone());
    let forged_tag = forged.signature.clone().unwrap();
    assert_eq!(h.send(&forged).await.status, StatusCode::UNAUTHORIZED);
    let good = h.post(body);
    let tag = good.signature.clone().unwrap();
    assert!(h.send(&good).await.success());
    assert_eq!(
        h.deliver(&order("sub-b", USER)).await.code(),
        "USER_ALREADY_EXISTS"
    );
    h.flaky.fail_commits(true);
    assert_eq!(
        h.deliver(&order("sub-c", "8")).await.code(),
        "UNKNOWN_ERROR"
    );
    h.send(&h.post(b"{\"user_id\": \"jdoe@q2ebanking.com\"".to_vec()))
        .await;

    let text = logs.text();
    assert!(
        text.contains("delivery processed") && text.contains(r#""marketplace":"q2""#),
        "logs were captured: {text}"
    );
    assert!(
        text.contains("delivery refused") && text.contains("Q2 event refused"),
        "{text}"
    );
    assert!(text.contains("request_id"), "{text}");
    for secret_or_payload in [
        h.secret.as_str(),
        &tag[tag.find("v1=").unwrap() + 3..],
        &forged_tag[forged_tag.find("v1=").unwrap() + 3..],
        "jdoe@q2ebanking.com",
        "John Doe",
        "1 Main St",
        "bd58b532-323b-4627-a828-57729489b27b",
    ] {
        assert!(
            !text.contains(secret_or_payload),
            "`{secret_or_payload}` leaked into the logs:\n{text}"
        );
    }
}
