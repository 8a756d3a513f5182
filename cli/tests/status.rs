//! `tollgate status` through the binary, on an SQLite store seeded through
//! the library: a customer's subscriptions and events (text and JSON),
//! pending deliveries listed with exit 1, an empty store with exit 0.

use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use tollgate::ingest::{ingest, pending_delivery};
use tollgate::model::{
    Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Plan, PlanTerms, PriceModel,
    SubscriptionKey,
};
use tollgate::store::prelude::*;
use tollgate::store::sqlite::SqliteStore;

fn status(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("status")
        .args(args)
        .env(
            "TOLLGATE_CONFIG",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../tollgate.example.toml"),
        )
        .env("TOLLGATE_STORE", format!("sqlite:{}/t.db", dir.display()))
        .env(
            "TOLLGATE_SECRETS",
            format!("file:{}/secrets.json", dir.display()),
        )
        .env("RUST_LOG", "warn")
        .output()
        .expect("run tollgate status")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn store(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("t.db")).unwrap()
}

fn event(id: &str, effective_at: DateTime<Utc>, kind: EventKind) -> MarketEvent {
    MarketEvent {
        id: id.to_owned(),
        subscription: SubscriptionKey::new(Marketplace::Github, "42"),
        customer: Customer::new(CustomerKey::new(Marketplace::Github, "42")),
        product: "acme-ci".to_owned(),
        effective_at,
        kind,
    }
}

fn team(seats: u32) -> PlanTerms {
    let mut terms = PlanTerms::new(Plan {
        id: "435".to_owned(),
        name: Some("Team".to_owned()),
        price_model: Some(PriceModel::PerUnit),
    });
    terms.seats = Some(seats);
    terms
}

/// GitHub account 42: purchased (5 seats), then a change to 3 seats
/// announced, then an older purchase that arrives late (stale).
async fn seed_customer(dir: &Path) {
    let store = store(dir);
    let now = Utc::now();
    let day = TimeDelta::days(1);
    for e in [
        event(
            "d-purchase",
            now - day * 2,
            EventKind::Purchased {
                terms: team(5),
                awaiting: None,
            },
        ),
        event(
            "d-downgrade",
            now - day,
            EventKind::ChangePending {
                plan: team(3).plan,
                seats: Some(3),
                effective_at: now + day * 20,
            },
        ),
        event(
            "d-late",
            now - day * 3,
            EventKind::Purchased {
                terms: team(9),
                awaiting: None,
            },
        ),
    ] {
        ingest(&store, &e, now).await.unwrap();
    }
}

#[test]
fn an_empty_store_is_one_summary_per_marketplace_and_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = status(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "github: no pending deliveries\ngcp: no pending deliveries\n\
         q2: no pending deliveries\nno pending deliveries\n"
    );

    let out = status(dir.path(), &["--json", "--marketplace", "github"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["customer"], Value::Null);
    assert_eq!(v["pending_total"], 0);
    assert_eq!(v["summary"], "no pending deliveries");
    assert_eq!(v["pending"].as_array().unwrap().len(), 1);
    assert_eq!(v["pending"][0]["marketplace"], "github");
    assert_eq!(v["pending"][0]["count"], 0);
}

#[tokio::test]
async fn a_customer_shows_its_subscriptions_and_recent_events() {
    let dir = tempfile::tempdir().unwrap();
    seed_customer(dir.path()).await;

    let out = status(dir.path(), &["--marketplace", "github", "42"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for expected in [
        "customer github:42",
        "subscription github:42 (acme-ci): active",
        "plan Team (435)",
        "seats 0/5",
        "pending change: plan Team (435), 3 seats on ",
        "events (last 3 of 3):",
        "purchased  applied",
        "change_pending  applied",
        "purchased  stale",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in {stdout}");
    }
    assert_eq!(
        stdout.lines().last(),
        Some("github:42: 1 subscription (active); no pending deliveries"),
        "{stdout}"
    );

    // --events limits the log to the most recent ones.
    let out = status(
        dir.path(),
        &["--marketplace", "github", "42", "--events", "1"],
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("events (last 1 of 3):"), "{stdout}");
    assert!(
        stdout.contains("purchased  stale") && !stdout.contains("change_pending"),
        "{stdout}"
    );

    let out = status(dir.path(), &["--marketplace", "github", "42", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sub = &v["customer"]["subscriptions"][0];
    assert_eq!(v["customer"]["id"], "42");
    assert_eq!(sub["subscription"], "github:42");
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["plan"]["id"], "435");
    assert_eq!(sub["seats"], serde_json::json!({"limit": 5, "used": 0}));
    assert_eq!(sub["pending_change"]["kind"], "plan");
    assert_eq!(sub["events_total"], 3);
    let events: Vec<(&str, &str)> = sub["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["note"].is_string() && e["time"].is_string(), "{e}");
            (
                e["event"].as_str().unwrap(),
                e["disposition"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("purchased", "applied"),
            ("change_pending", "applied"),
            ("purchased", "stale")
        ]
    );

    // A customer without subscriptions says so.
    let out = status(dir.path(), &["--marketplace", "gcp", "42"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).ends_with("gcp:42: no subscriptions; no pending deliveries\n"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test]
async fn pending_deliveries_are_listed_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = store(dir.path());
        let received = Utc::now() - TimeDelta::minutes(90);
        for (id, at) in [
            ("d-old", received),
            ("d-new", received + TimeDelta::hours(1)),
        ] {
            let d = pending_delivery(Marketplace::Github, id, "marketplace_purchase", b"{}", at);
            store.record_delivery(&d).await.unwrap();
        }
    }

    let out = status(dir.path(), &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "github: 2 pending, oldest 1h30m ago; GitHub never retries: run `tollgate replay`"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("  d-old  marketplace_purchase  received "),
        "{stdout}"
    );
    assert!(stdout.contains("  d-new  marketplace_purchase"), "{stdout}");
    assert!(stdout.contains("gcp: no pending deliveries"), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("2 deliveries pending (github 2, oldest 1h30m)"),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("2 deliveries pending"));

    let out = status(dir.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pending_total"], 2);
    let github = &v["pending"][0];
    assert_eq!(github["marketplace"], "github");
    assert_eq!(github["count"], 2);
    assert!(github["oldest_age_seconds"].as_i64().unwrap() >= 90 * 60);
    assert!(github["hint"].as_str().unwrap().contains("tollgate replay"));
    assert_eq!(github["deliveries"][0]["id"], "d-old");
    assert_eq!(github["deliveries"][1]["kind"], "marketplace_purchase");

    // Another marketplace alone has nothing pending.
    let out = status(dir.path(), &["--marketplace", "q2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn help_works_without_a_config_and_a_customer_needs_a_marketplace() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("status")
            .args(args)
            .current_dir(dir.path())
            .env("TOLLGATE_CONFIG", dir.path().join("missing.toml"))
            .env("TOLLGATE_STORE", "dynamodb:no-such-table")
            .env("TOLLGATE_SECRETS", "aws:no-such-secret")
            .output()
            .unwrap()
    };
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    for flag in [
        "[CUSTOMER]",
        "--marketplace",
        "--events",
        "--json",
        "1 when",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    for argv in [
        &["42"][..],
        &["--events", "many"],
        &["--marketplace", "aws"],
    ] {
        let out = run(argv);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{argv:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

/// A signed body re-sent under a new delivery id, through the real
/// purchase-webhook: `status` reports the replay (text, JSON, summary).
#[tokio::test]
async fn content_replays_are_reported() {
    use std::sync::Arc;
    use tollgate::marketplace::github::signature::sign;
    use tollgate::web::{Body, serve};

    let dir = tempfile::tempdir().unwrap();
    {
        let store: Arc<dyn tollgate::store::Store> = Arc::new(store(dir.path()));
        let webhook = tollgate::testing::TestApp::new()
            .config_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../tollgate.example.toml").as_ref())
            .store(store)
            .system_clock()
            .secret("github_webhook_secret", "whsec")
            .purchase_webhook()
            .unwrap();
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/github/octokit-purchased-per-unit.json"
        ))
        .unwrap();
        for (id, expected) in [("d-first", "applied"), ("d-again", "ignored")] {
            let req = http::Request::builder()
                .method("POST")
                .uri("/github")
                .header("content-type", "application/json")
                .header("x-github-event", "marketplace_purchase")
                .header("x-github-delivery", id)
                .header("x-hub-signature-256", sign(b"whsec", &body))
                .body(Body::from(body.clone()))
                .unwrap();
            let res = serve(&webhook, req).await;
            let reply: Value = serde_json::from_slice(res.body().as_ref()).unwrap();
            assert_eq!(reply["status"], expected, "{reply}");
        }
    }

    let out = status(dir.path(), &["--marketplace", "github"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("github: 1 content replays (a body already delivered"),
        "{stdout}"
    );
    assert!(stdout.contains("  d-again  "), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("no pending deliveries; 1 content replay"),
        "{stdout}"
    );

    let out = status(dir.path(), &["--marketplace", "github", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["replays_total"], 1);
    assert_eq!(v["replays"][0]["marketplace"], "github");
    assert_eq!(v["replays"][0]["recent"][0]["delivery"], "d-again");
}

/// A change reconciliation committed (event id `reconcile:…`) is marked as
/// such in the customer's events; a delivery's is not.
#[tokio::test]
async fn changes_made_by_reconcile_are_marked_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = store(dir.path());
        let now = Utc::now();
        let day = TimeDelta::days(1);
        let purchased = event(
            "d-purchase",
            now - day * 2,
            EventKind::Purchased {
                terms: team(5),
                awaiting: None,
            },
        );
        let reconciled = event(
            &format!(
                "{}2026-03-01T06:00:00Z:1",
                tollgate::reconcile::EVENT_ID_PREFIX
            ),
            now - day,
            EventKind::Changed { terms: team(8) },
        );
        for e in [purchased, reconciled] {
            ingest(&store, &e, now).await.unwrap();
        }
    }

    let out = status(dir.path(), &["--marketplace", "github", "42"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let events: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("  applied  "))
        .collect();
    assert_eq!(events.len(), 2, "{stdout}");
    assert!(
        events[0].contains("  purchased  applied") && !events[0].contains("reconcile"),
        "{stdout}"
    );
    assert!(
        events[1].contains("  changed (reconcile)  applied"),
        "{stdout}"
    );

    let out = status(dir.path(), &["--marketplace", "github", "42", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sources: Vec<(&str, &str)> = v["customer"]["subscriptions"][0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["source"].as_str().unwrap()))
        .collect();
    assert_eq!(
        sources,
        [("purchased", "delivery"), ("changed", "reconcile")]
    );
}
