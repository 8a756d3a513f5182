//! Google Cloud Marketplace under `make dev`, offline and end to end: the
//! real `tollgate dev --port 0` with its in-process Google stand-in, every
//! step played by the real `tollgate fire gcp` (the stand-in pushes signed
//! Pub/Sub messages to pubsub-push, the sign-up token is POSTed to
//! oauth-callback), and every outcome read from entitlement-check's real
//! `/v1/check` answers.

mod common;

use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use common::Tollgate;
use serde_json::{Value, json};

/// `tollgate dev --port 0` with its Google stand-in, on a fresh store and
/// secrets file.
fn start() -> Tollgate {
    Tollgate::dev_with(&[], |cmd| {
        cmd.env_remove("TOLLGATE_PUBLIC_URL");
        // Settings the dev server must override for its stand-in, whatever
        // the environment says.
        for var in [
            "TOLLGATE_GCP_PROVIDER_ID",
            "TOLLGATE_GCP_PUSH_AUDIENCE",
            "TOLLGATE_PROCUREMENT_URL",
        ] {
            cmd.env(var, "https://wrong.invalid");
        }
    })
}

/// `tollgate fire gcp <args>` against this dev server.
fn fire(dev: &Tollgate, args: &[&str]) -> Output {
    let check = format!("{}/v1/check", dev.url("entitlement-check"));
    let signup = format!("{}/gcp/signup", dev.url("oauth-callback"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.args(["fire", "gcp"])
        .args(args)
        .args(["--sim-url", dev.url("googleapis.com")])
        .args(["--check-url", &check]);
    if args.first() == Some(&"signup") {
        cmd.args(["--signup-url", &signup]);
    }
    cmd.env("RUST_LOG", "warn")
        .env_remove("TOLLGATE_API_KEY")
        .output()
        .expect("run tollgate fire gcp")
}

/// `fire gcp <args> --json`, which must succeed; its report.
fn fire_json(dev: &Tollgate, args: &[&str]) -> Value {
    let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let out = fire(dev, &args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    report
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The event types of a report's pushes, each of which was acknowledged.
fn acked_events(report: &Value) -> Vec<String> {
    report["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["acked"], true, "{p}");
            assert_eq!(p["status"], 200, "{p}");
            p["event_type"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn an_order_waits_for_sign_up_then_follows_every_change_google_pushes() {
    let dev = start();
    let account = "acct-1";
    let before = dev.check("gcp", account, None).await;
    assert_eq!(before["reason"], "no_subscription", "{before}");

    // Ordered before sign-up: recorded, not entitled.
    let report = fire_json(
        &dev,
        &["order", "--account", account, "--plan", "team-monthly"],
    );
    assert_eq!(
        acked_events(&report),
        ["ACCOUNT_ACTIVE", "ENTITLEMENT_CREATION_REQUESTED"]
    );
    let entitlement = report["entitlement"].as_str().unwrap().to_owned();
    assert_eq!(report["check"]["reason"], "pending_signup", "{report}");
    let d = dev.check("gcp", account, None).await;
    assert_eq!(
        (&d["allowed"], &d["reason"], &d["status"], &d["plan"]),
        (
            &json!(false),
            &json!("pending_signup"),
            &json!("pending"),
            &json!("team-monthly")
        ),
        "{d}"
    );
    assert_eq!(d["subscription"]["id"], entitlement.as_str(), "{d}");

    // Sign-up (text output, as an operator sees it): the page approves the
    // account and the waiting order; Google's activation is pushed.
    let out = fire(&dev, &["signup", "--account", account]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("Sign-up page: 200"), "{shown}");
    assert!(shown.contains("You're signed up for Acme CI"), "{shown}");
    assert!(shown.contains("Plan: team"), "{shown}");
    assert!(shown.contains("sign-up approval APPROVED"), "{shown}");
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    // The approvals' messages are pushed as they happen, in the background
    // or by the flush `signup` ends with: either way, they are in.
    assert!(last.starts_with("ok: gcp signup done"), "{shown}");
    assert!(
        last.ends_with("; acct-1 is entitled (tier team, status active)"),
        "{shown}"
    );
    let d = dev.check("gcp", account, Some("private-repos")).await;
    assert_eq!(
        (&d["allowed"], &d["status"], &d["plan"], &d["tier"]),
        (
            &json!(true),
            &json!("active"),
            &json!("team-monthly"),
            &json!("team")
        ),
        "{d}"
    );
    // A plan change: Tollgate approves the mapped plan; it applies at once.
    let report = fire_json(
        &dev,
        &[
            "request-plan-change",
            "--plan",
            "business-yearly",
            "--account",
            account,
        ],
    );
    assert_eq!(report["entitlement"], entitlement.as_str());
    assert_eq!(
        acked_events(&report),
        [
            "ENTITLEMENT_PLAN_CHANGE_REQUESTED",
            "ENTITLEMENT_PLAN_CHANGED"
        ]
    );
    let d = dev.check("gcp", account, Some("sso")).await;
    assert_eq!(
        (&d["allowed"], &d["plan"], &d["tier"]),
        (&json!(true), &json!("business-yearly"), &json!("business")),
        "{d}"
    );

    // The customer cancels: still entitled until the end of the term.
    let report = fire_json(&dev, &["cancel", "--entitlement", &entitlement]);
    assert_eq!(acked_events(&report), ["ENTITLEMENT_PENDING_CANCELLATION"]);
    let d = dev.check("gcp", account, Some("sso")).await;
    assert_eq!(
        (&d["allowed"], &d["status"]),
        (&json!(true), &json!("pending_cancellation")),
        "{d}"
    );
    let until: DateTime<Utc> = d["access_until"].as_str().unwrap().parse().unwrap();
    assert!(until > Utc::now() + chrono::Duration::days(25), "{d}");

    // ... and takes it back.
    let report = fire_json(&dev, &["revert-cancellation", "--account", account]);
    assert_eq!(acked_events(&report), ["ENTITLEMENT_CANCELLATION_REVERTED"]);
    let d = dev.check("gcp", account, Some("sso")).await;
    assert_eq!(
        (&d["allowed"], &d["status"]),
        (&json!(true), &json!("active")),
        "{d}"
    );

    // Cancelled for good at the end of the term: the paid plan's access
    // ends (tollgate.example.toml leaves `cancelled_tier = "free"`).
    fire_json(&dev, &["cancel", "--account", account]);
    let report = fire_json(&dev, &["end-term", "--account", account]);
    assert_eq!(
        acked_events(&report),
        ["ENTITLEMENT_CANCELLING", "ENTITLEMENT_CANCELLED"]
    );
    assert_eq!(
        report["google"]["entitlements"][0]["state"],
        "ENTITLEMENT_CANCELLED"
    );
    let d = dev.check("gcp", account, Some("private-repos")).await;
    assert_eq!(
        (&d["allowed"], &d["reason"], &d["status"], &d["tier"]),
        (
            &json!(false),
            &json!("feature_not_in_plan"),
            &json!("cancelled"),
            &json!("free")
        ),
        "{d}"
    );
    let d = dev.check("gcp", account, Some("sso")).await;
    assert_eq!(d["allowed"], false, "{d}");

    // The service account's key went into the secrets file, never on screen.
    let stored = dev.secrets();
    let key: Value =
        serde_json::from_str(stored["gcp_service_account_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        key["token_uri"],
        format!("{}/token", dev.url("googleapis.com"))
    );
    let pem = key["private_key"].as_str().unwrap();
    let body_line = pem.lines().nth(1).unwrap();
    assert!(dev.printed.iter().all(|l| !l.contains(body_line)));
}

#[tokio::test]
async fn refused_steps_and_an_unreachable_stand_in_fail_with_the_reason() {
    let dev = start();
    // Nothing to cancel.
    let out = fire(&dev, &["cancel", "--account", "nobody"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("account nobody has no live entitlement"),
        "{err}"
    );
    let last = String::from_utf8_lossy(&out.stdout);
    assert!(
        last.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("FAILED: gcp cancel"),
        "{last}"
    );

    // The stand-in refuses what Google would not do (409).
    let report = fire_json(&dev, &["order", "--account", "acct-2"]);
    let entitlement = report["entitlement"].as_str().unwrap();
    let out = fire(
        &dev,
        &[
            "revert-cancellation",
            "--entitlement",
            entitlement,
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["error"].as_str().unwrap().contains("answered 409"),
        "{report}"
    );

    // No stand-in there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["fire", "gcp", "order", "--no-check", "--sim-url"])
        .arg(format!("http://127.0.0.1:{closed}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the Google stand-in"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn a_push_nobody_acknowledges_fails_fire_and_says_why() {
    // `tollgate sim` alone, pushing to an endpoint that hangs up on every
    // connection without answering. (A port merely left closed could be
    // taken by another test's server in the meantime.)
    let hang_up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hang_up.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in hang_up.incoming() {
            drop(conn);
        }
    });
    let push_url = format!("http://127.0.0.1:{port}/");
    let sim = Tollgate::sim(tempfile::tempdir().unwrap(), &["--gcp-push-url", &push_url]);
    let google = sim.url("googleapis.com").to_owned();
    let exports: Vec<&String> = sim
        .printed
        .iter()
        .filter(|l| l.trim_start().starts_with("export TOLLGATE_"))
        .collect();
    assert!(
        exports
            .iter()
            .any(|l| l.ends_with(&format!("TOLLGATE_PROCUREMENT_URL={google}")))
            && exports
                .iter()
                .any(|l| l.ends_with(&format!("TOLLGATE_GCP_PUSH_AUDIENCE={push_url}"))),
        "{:#?}",
        sim.printed
    );
    let stored = sim.secrets();
    assert!(stored["gcp_service_account_key"].is_string());

    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "fire",
            "gcp",
            "order",
            "--no-check",
            "--json",
            "--sim-url",
            &google,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pushed = report["pushed"].as_array().unwrap();
    assert_eq!(pushed.len(), 2, "{report}");
    assert!(
        pushed
            .iter()
            .all(|p| p["acked"] == false && p["status"].is_null())
    );
    let why = report["error"].as_str().unwrap();
    assert!(why.starts_with("2 of 2 push(es) not acknowledged"), "{why}");
    assert!(why.contains("no answer"), "{why}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not acknowledged"));
}

#[test]
fn fire_gcp_documents_its_steps_and_flags_and_refuses_unknown_ones() {
    let tollgate = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = tollgate(&["fire", "gcp", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for step in [
        "order",
        "signup",
        "request-plan-change",
        "cancel-plan-change",
        "cancel",
        "revert-cancellation",
        "end-term",
        "end-offer",
        "cancel-now",
        "delete",
        "delete-account",
        "deliver",
    ] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{step} ")))
            .unwrap_or_else(|| panic!("{step} in {help}"));
        assert!(line.split_whitespace().count() > 3, "{line}");
    }
    let out = tollgate(&["fire", "gcp", "cancel", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--entitlement",
        "--account",
        "--sim-url",
        "--check-url",
        "--no-check",
        "--json",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    let out = tollgate(&["fire", "gcp", "signup", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--signup-url"));
    for bad in [
        &["fire", "gcp", "refund"][..],
        &["fire", "gcp", "order", "--plna", "x"],
    ] {
        assert_eq!(tollgate(bad).status.code(), Some(2), "{bad:?}");
    }
}
