//! Schemathesis fuzzes entitlement-check against its OpenAPI document
//! (`openapi/entitlement-check.json`), every check on (`--checks all`): the
//! handler served over real HTTP on 127.0.0.1 as `tollgate dev` serves it —
//! the example config, the embedded store (a SQLite file), an API key
//! configured — with a few subscriptions and a link seeded so that the
//! document's examples reach real decisions and seat claims. Any finding
//! fails the test with Schemathesis' own report.
//!
//! Schemathesis is pinned in `tools/requirements-test.txt`; `make test`
//! installs it into `.venv`. Knobs: `TOLLGATE_SCHEMATHESIS_EXAMPLES` (test
//! cases per operation and phase, default 25) and
//! `TOLLGATE_SCHEMATHESIS_SEED` (replay a run; each run prints its seed).

#[path = "entitlement_check_support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tollgate::api::auth::{Scopes, generate};
use tollgate::clock::Clock;
use tollgate::ingest::{Ingested, ingest};
use tollgate::model::{AppUser, Customer, CustomerKey, EventKind, MarketEvent, Marketplace};
use tollgate::store::sqlite::SqliteStore;
use tollgate::store::{Store, UserLink};
use tollgate::testing::TestApp;
use tollgate_tests::serve::serve_function;

/// Test cases per operation, unless `TOLLGATE_SCHEMATHESIS_EXAMPLES` says.
const DEFAULT_EXAMPLES: u32 = 25;
/// A run that has not finished by then is killed and fails the test.
const RUN_LIMIT: Duration = Duration::from_secs(900);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_owned()
}

fn knob(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Applies `kind` to GitHub account `org`'s acme-ci subscription.
async fn seed(store: &dyn Store, org: &str, n: u32, kind: EventKind, now: DateTime<Utc>) {
    let event = MarketEvent {
        id: format!("schemathesis-seed-{n}"),
        subscription: tollgate::model::SubscriptionKey::new(Marketplace::Github, org),
        customer: Customer::new(CustomerKey::new(Marketplace::Github, org)),
        product: "acme-ci".into(),
        effective_at: now - chrono::Duration::days(1) + chrono::Duration::minutes(i64::from(n)),
        kind,
    };
    match ingest(store, &event, now).await.expect("seed event") {
        Ingested::Committed(o) => assert!(o.next.is_some(), "{:?}", o.log.note),
        Ingested::Duplicate => panic!("seed ids are unique"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_against_the_entitlement_check_api() {
    let root = repo_root();
    let tool = root.join(".venv/bin/schemathesis");
    assert!(
        tool.is_file(),
        "{} is missing: `make test` installs it (or run `.venv/bin/pip install -r \
         tools/requirements-test.txt`); this test never passes without running it",
        tool.display()
    );

    // As `tollgate dev` runs it: the example config, a SQLite file, the API
    // keys read from the secrets file (and re-read from it while warm).
    let dir = tempfile::tempdir().unwrap();
    let key = generate("schemathesis", Scopes::parse("check,seats").unwrap()).unwrap();
    let secrets = dir.path().join("secrets.json");
    std::fs::write(
        &secrets,
        serde_json::json!({ key.entry.secret_name(): key.entry.secret_value() }).to_string(),
    )
    .unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("dev.db")).unwrap());
    let mut app = TestApp::new()
        .store(Arc::clone(&store))
        .setting("TOLLGATE_SECRETS", &format!("file:{}", secrets.display()))
        .secret(&key.entry.secret_name(), &key.entry.secret_value())
        // `/v1/token` signs (and the JWKS publishes) with a fresh key.
        .secret(
            tollgate::api::token::TOKEN_KEY_SECRET,
            tollgate::api::token::generate_key().unwrap().expose(),
        );
    let now = app.fixed_clock().now();

    // The document's examples name customer 4242 and app user
    // github-user:1001 (linked to it): a 3-seat team plan. Beside it, a
    // trial, a cancelled plan and a suspended one.
    let trial_end = now + chrono::Duration::days(5);
    let seeds = [
        ("4242", support::purchased("1002", Some(3), None, None)),
        (
            "4243",
            support::purchased("1003", None, Some(trial_end), None),
        ),
        ("4244", support::purchased("1002", Some(2), None, None)),
        (
            "4244",
            EventKind::Cancelled {
                plan: None,
                access_until: None,
            },
        ),
        ("4245", support::purchased("1002", Some(2), None, None)),
        ("4245", EventKind::Suspended),
    ];
    for (n, (org, kind)) in (0u32..).zip(seeds) {
        seed(&*store, org, n, kind, now).await;
    }
    store
        .link_user(
            &AppUser("github-user:1001".into()),
            &UserLink::new(
                CustomerKey::new(Marketplace::Github, "4242"),
                now,
                chrono::Duration::days(30),
            ),
        )
        .await
        .unwrap();

    let handler = app.entitlement_check_configured().unwrap();
    let served = serve_function(handler).await;

    let examples = knob("TOLLGATE_SCHEMATHESIS_EXAMPLES")
        .map(|v| {
            v.parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or_else(|| panic!("TOLLGATE_SCHEMATHESIS_EXAMPLES `{v}`: a positive count"))
        })
        .unwrap_or(DEFAULT_EXAMPLES);
    let mut cmd = Command::new(&tool);
    cmd.arg("run")
        .arg(root.join("openapi/entitlement-check.json"))
        .args(["--url", &served.url("")])
        .args(["-H", &format!("Authorization: Bearer {}", key.key.expose())])
        .args(["--checks", "all"])
        .args(["--max-examples", &examples.to_string()])
        .args(["--request-timeout", "10"])
        .arg("--no-color");
    if let Some(seed) = knob("TOLLGATE_SCHEMATHESIS_SEED") {
        cmd.args(["--seed", &seed]);
    }
    // Its working files (`.hypothesis/`) go to the temporary directory; no
    // `schemathesis.toml` there, so only the flags above configure it.
    cmd.current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let started = Instant::now();
    let child = cmd.spawn().expect("start schemathesis");
    let pid = child.id();
    let run = tokio::task::spawn_blocking(move || child.wait_with_output());
    let output = match tokio::time::timeout(RUN_LIMIT, run).await {
        Ok(done) => done.unwrap().expect("schemathesis ran"),
        Err(_) => {
            // Ends only the process this test started, by its id.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("schemathesis did not finish within {RUN_LIMIT:?}");
        }
    };
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems (exit {:?}); its report:\n{report}",
        output.status.code()
    );
    println!(
        "{report}\nschemathesis: {examples} examples per operation, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
