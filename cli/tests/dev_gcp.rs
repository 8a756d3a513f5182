//! Google Cloud Marketplace under `make dev`, offline and end to end: the
//! real `tollgate dev --port 0` with its in-process Google stand-in, every
//! step played by the real `tollgate fire gcp` (the stand-in pushes signed
//! Pub/Sub messages to pubsub-push, the sign-up token is POSTed to
//! oauth-callback), and every outcome read from entitlement-check's real
//! `/v1/check` answers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// A running `tollgate dev` or `tollgate sim`, killed when the test ends,
/// pass or fail.
struct Server {
    child: Child,
    /// Printed `name url` lines: the four functions, `googleapis.com`, ...
    urls: HashMap<String, String>,
    printed: Vec<String>,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `tollgate dev --port 0` on a fresh store and secrets file.
    fn dev() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args(["dev", "--port", "0"])
            .env("TOLLGATE_CONFIG", config_path())
            .env(
                "TOLLGATE_STORE",
                format!("sqlite:{}/dev.db", dir.path().display()),
            )
            .env(
                "TOLLGATE_SECRETS",
                format!("file:{}", secrets(&dir).display()),
            )
            .env("TOLLGATE_ALLOW_UNAUTHENTICATED", "1")
            .env_remove("TOLLGATE_PUBLIC_URL");
        // Settings the dev server must override for its stand-in, whatever
        // the environment says.
        for var in [
            "TOLLGATE_GCP_PROVIDER_ID",
            "TOLLGATE_GCP_PUSH_AUDIENCE",
            "TOLLGATE_PROCUREMENT_URL",
        ] {
            cmd.env(var, "https://wrong.invalid");
        }
        Self::spawn(cmd, dir)
    }

    /// `tollgate sim --port 0`, pushing Google's messages to `push_url`.
    fn sim(push_url: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args(["sim", "--port", "0", "--gcp-push-url", push_url])
            .arg("--secrets-out")
            .arg(secrets(&dir));
        Self::spawn(cmd, dir)
    }

    fn spawn(mut cmd: Command, dir: tempfile::TempDir) -> Server {
        let mut child = cmd
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tollgate");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // The banner is written once everything listens; its last line,
        // `Ready`, is the readiness signal.
        let mut printed = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let done = line.starts_with("Ready");
            printed.push(line);
            if done {
                break;
            }
        }
        assert!(
            printed.last().is_some_and(|l| l.starts_with("Ready")),
            "tollgate stopped early: {printed:#?}"
        );
        // Keep draining, so the server never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let urls = printed
            .iter()
            .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                [name, url] if url.starts_with("http://") => {
                    Some((name.to_owned(), url.trim_end_matches('/').to_owned()))
                }
                _ => None,
            })
            .collect();
        Server {
            child,
            urls,
            printed,
            dir,
        }
    }

    fn url(&self, name: &str) -> &str {
        self.urls
            .get(name)
            .unwrap_or_else(|| panic!("{name} in {:#?}", self.printed))
    }

    /// `tollgate fire gcp <args>` against this dev server.
    fn fire(&self, args: &[&str]) -> Output {
        let check = format!("{}/v1/check", self.url("entitlement-check"));
        let signup = format!("{}/gcp/signup", self.url("oauth-callback"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args(["fire", "gcp"])
            .args(args)
            .args(["--sim-url", self.url("googleapis.com")])
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
    fn fire_json(&self, args: &[&str]) -> Value {
        let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        let out = self.fire(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["ok"], true, "{report}");
        report
    }

    async fn check(&self, account: &str, feature: Option<&str>) -> Value {
        let mut body = json!({"marketplace": "gcp", "customer_id": account, "product": "acme-ci"});
        if let Some(f) = feature {
            body["feature"] = json!(f);
        }
        let res = reqwest::Client::new()
            .post(format!("{}/v1/check", self.url("entitlement-check")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }
}

fn config_path() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../tollgate.example.toml").to_owned()
}

fn secrets(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("secrets.json")
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
    let dev = Server::dev();
    let account = "acct-1";
    let before = dev.check(account, None).await;
    assert_eq!(before["reason"], "no_subscription", "{before}");

    // Ordered before sign-up: recorded, not entitled.
    let report = dev.fire_json(&["order", "--account", account, "--plan", "team-monthly"]);
    assert_eq!(
        acked_events(&report),
        ["ACCOUNT_ACTIVE", "ENTITLEMENT_CREATION_REQUESTED"]
    );
    let entitlement = report["entitlement"].as_str().unwrap().to_owned();
    assert_eq!(report["check"]["reason"], "pending_signup", "{report}");
    let d = dev.check(account, None).await;
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
    let out = dev.fire(&["signup", "--account", account]);
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
    let d = dev.check(account, Some("private-repos")).await;
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
    let report = dev.fire_json(&[
        "request-plan-change",
        "--plan",
        "business-yearly",
        "--account",
        account,
    ]);
    assert_eq!(report["entitlement"], entitlement.as_str());
    assert_eq!(
        acked_events(&report),
        [
            "ENTITLEMENT_PLAN_CHANGE_REQUESTED",
            "ENTITLEMENT_PLAN_CHANGED"
        ]
    );
    let d = dev.check(account, Some("sso")).await;
    assert_eq!(
        (&d["allowed"], &d["plan"], &d["tier"]),
        (&json!(true), &json!("business-yearly"), &json!("business")),
        "{d}"
    );

    // The customer cancels: still entitled until the end of the term.
    let report = dev.fire_json(&["cancel", "--entitlement", &entitlement]);
    assert_eq!(acked_events(&report), ["ENTITLEMENT_PENDING_CANCELLATION"]);
    let d = dev.check(account, Some("sso")).await;
    assert_eq!(
        (&d["allowed"], &d["status"]),
        (&json!(true), &json!("pending_cancellation")),
        "{d}"
    );
    let until: DateTime<Utc> = d["access_until"].as_str().unwrap().parse().unwrap();
    assert!(until > Utc::now() + chrono::Duration::days(25), "{d}");

    // ... and takes it back.
    let report = dev.fire_json(&["revert-cancellation", "--account", account]);
    assert_eq!(acked_events(&report), ["ENTITLEMENT_CANCELLATION_REVERTED"]);
    let d = dev.check(account, Some("sso")).await;
    assert_eq!(
        (&d["allowed"], &d["status"]),
        (&json!(true), &json!("active")),
        "{d}"
    );

    // Cancelled for good at the end of the term: the paid plan's access
    // ends (tollgate.example.toml leaves `cancelled_tier = "free"`).
    dev.fire_json(&["cancel", "--account", account]);
    let report = dev.fire_json(&["end-term", "--account", account]);
    assert_eq!(
        acked_events(&report),
        ["ENTITLEMENT_CANCELLING", "ENTITLEMENT_CANCELLED"]
    );
    assert_eq!(
        report["google"]["entitlements"][0]["state"],
        "ENTITLEMENT_CANCELLED"
    );
    let d = dev.check(account, Some("private-repos")).await;
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
    let d = dev.check(account, Some("sso")).await;
    assert_eq!(d["allowed"], false, "{d}");

    // The service account's key went into the secrets file, never on screen.
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(secrets(&dev.dir)).unwrap()).unwrap();
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
    let dev = Server::dev();
    // Nothing to cancel.
    let out = dev.fire(&["cancel", "--account", "nobody"]);
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
    let report = dev.fire_json(&["order", "--account", "acct-2"]);
    let entitlement = report["entitlement"].as_str().unwrap();
    let out = dev.fire(&[
        "revert-cancellation",
        "--entitlement",
        entitlement,
        "--json",
    ]);
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
    // `tollgate sim` alone, pushing to a port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let push_url = format!("http://127.0.0.1:{closed}/");
    let sim = Server::sim(&push_url);
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
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(secrets(&sim.dir)).unwrap()).unwrap();
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
