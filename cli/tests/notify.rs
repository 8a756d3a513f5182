//! `tollgate notify replay` through the binary, on an SQLite store whose
//! dead letters are seeded through the library, against a local receiver:
//! exit 1 while the receiver refuses (the letter kept), exit 0 once it
//! accepts (the letter removed, the original `webhook-id` kept), exit 2 on
//! a usage error; progress on stderr, one summary line (or JSON) on stdout.

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tollgate::store::sqlite::SqliteStore;
use tollgate::store::{DeadLetter, Outbox};

const SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGhlLWFwcA==";

struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    ids: Arc<Mutex<Vec<String>>>,
}

async fn receiver() -> Receiver {
    let status = Arc::new(AtomicU16::new(503));
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let (answer, seen) = (Arc::clone(&status), Arc::clone(&ids));
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: http::HeaderMap| {
            let (answer, seen) = (Arc::clone(&answer), Arc::clone(&seen));
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                seen.lock().unwrap().push(id.to_owned());
                http::StatusCode::from_u16(answer.load(Ordering::SeqCst)).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/hooks"),
        status,
        ids,
    }
}

fn setup(dir: &Path, url: &str) {
    let config = format!(
        r#"
[products.acme-ci]
name = "Acme CI"
[products.acme-ci.tiers.team]
features = ["private-repos"]

[[notifications.endpoints]]
name = "app"
url = "{url}"
secret = "notify_app"
"#
    );
    std::fs::write(dir.join("tollgate.toml"), config).unwrap();
    std::fs::write(
        dir.join("secrets.json"),
        serde_json::json!({ "notify_app": SECRET }).to_string(),
    )
    .unwrap();
}

/// Runs the binary off the runtime's thread (the receiver answers on it).
async fn notify(dir: &Path, args: &[&str]) -> Output {
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("notify")
            .args(&args)
            .env("TOLLGATE_CONFIG", dir.join("tollgate.toml"))
            .env("TOLLGATE_STORE", format!("sqlite:{}/t.db", dir.display()))
            .env(
                "TOLLGATE_SECRETS",
                format!("file:{}/secrets.json", dir.display()),
            )
            .env("RUST_LOG", "warn")
            .output()
            .expect("run tollgate notify")
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn replay_exits_1_while_the_receiver_refuses_and_0_once_it_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = receiver().await;
    setup(dir.path(), &receiver.url);
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let letter = DeadLetter {
        id: "msg_0123456789abcdef0123456789abcdef".into(),
        endpoint: "app".into(),
        body: r#"{"type":"subscription.created"}"#.into(),
        event_type: "subscription.created".into(),
        attempts: 8,
        last_error: "HTTP 503".into(),
        dead_at: Utc::now(),
    };
    // Dead letters are written with the outbox entry they end, atomically;
    // seed one through an entry of its own.
    seed(&store, &letter).await;

    let out = notify(dir.path(), &["replay"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "1 dead letter(s): 0 delivered, 1 still failing"
    );
    assert!(text(&out.stderr).contains("[1/1]"), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("HTTP 503"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(store.dead_letters().await.unwrap().len(), 1);

    receiver.status.store(204, Ordering::SeqCst);
    let out = notify(dir.path(), &["replay", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary,
        serde_json::json!({"dead_letters": 1, "delivered": 1, "failed": 0})
    );
    assert!(store.dead_letters().await.unwrap().is_empty());
    assert_eq!(
        *receiver.ids.lock().unwrap(),
        [letter.id.clone(), letter.id.clone()],
        "the original webhook-id, on every replay"
    );

    // Nothing left: exit 0.
    let out = notify(dir.path(), &["replay"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        "0 dead letter(s): 0 delivered, 0 still failing"
    );

    // A usage error: exit 2, before anything is read.
    let out = notify(dir.path(), &["replay", "--bogus"]).await;
    assert_eq!(out.status.code(), Some(2));
}

async fn seed(store: &SqliteStore, letter: &DeadLetter) {
    use tollgate::ingest;
    use tollgate::model::{Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Plan};
    use tollgate::model::{PlanTerms, SubscriptionKey};
    let now = Utc::now();
    let event = MarketEvent {
        id: "e1".into(),
        subscription: SubscriptionKey::new(Marketplace::Github, "42"),
        customer: Customer::new(CustomerKey::new(Marketplace::Github, "42")),
        product: "acme-ci".into(),
        effective_at: now,
        kind: EventKind::Purchased {
            terms: PlanTerms::new(Plan::new("team")),
            awaiting: None,
        },
    };
    ingest::ingest(store, &event, now).await.unwrap();
    let entry = store.due_notifications(now, 1).await.unwrap().remove(0);
    store
        .settle_notification(&entry.id, entry.version, None, std::slice::from_ref(letter))
        .await
        .unwrap();
}
