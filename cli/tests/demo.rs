//! `make demo`: the real `tollgate demo` against the real `tollgate dev
//! --port 0`, every URL taken from the dev server's banner. The tour must
//! pass every step (exit 0), print each step's request and entitlement,
//! and finish in well under a minute.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Tollgate, config_path, stdout};

/// `tollgate demo` pointed at `dev`'s printed URLs.
fn demo(dev: &Tollgate) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.arg("demo")
        .args(["--webhook-url", dev.url("purchase-webhook")])
        .args(["--oauth-url", dev.url("oauth-callback")])
        .args(["--check-url", dev.url("entitlement-check")])
        .args(["--github-sim-url", dev.url("github.com")])
        .args(["--gcp-sim-url", dev.url("googleapis.com")])
        .args(["--q2-sim-url", dev.url("q2-marketplace")])
        .env("TOLLGATE_CONFIG", config_path())
        .env("RUST_LOG", "warn");
    cmd
}

#[test]
fn the_demo_tours_every_marketplace_and_can_run_again() {
    let dev = Tollgate::dev(&[]);
    let started = Instant::now();
    let out = demo(&dev).output().expect("run tollgate demo");
    let took = started.elapsed();
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");

    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ok: demo finished: 21 steps on GitHub, Google and Q2"),
        "{last}"
    );
    for section in [
        "== GitHub Marketplace",
        "== Google Cloud Marketplace",
        "== Q2",
    ] {
        assert!(text.contains(section), "{section} in {text}");
    }
    // Each step shows its request and what Tollgate now says.
    for expected in [
        "$ tollgate fire github purchased --plan 1002 --units 3 --trial",
        "marketplace_purchase.purchased",
        "allowed, status trial, plan 1002, tier team, trial_days_left 14, seats 0/3",
        "Welcome, The Octocat",
        "seats 1/3",
        "marketplace_purchase.changed",
        "allowed, status pending_cancellation, plan 1003, tier business",
        "marketplace_purchase.cancelled",
        "denied (feature_not_in_plan), status cancelled, plan 1003, tier free",
        "not allowed (pending_signup)",
        "Sign-up page: 200",
        "ENTITLEMENT_PENDING_CANCELLATION",
        "SUBSCRIPTION_ORDER relayed by the extension",
        "BudgetHelperReports  denied (feature_not_in_plan)",
        "USER_ALREADY_EXISTS",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    // Every numbered step is there, in order.
    for n in 1..=21 {
        assert!(text.contains(&format!("\n[{n}] ")), "step {n} in:\n{text}");
    }

    // New customers each run: a second tour against the same store passes.
    let again = demo(&dev).output().expect("run tollgate demo again");
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[test]
fn the_demo_says_to_start_the_dev_server_when_none_runs() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["demo", "--port", &port.to_string()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("start `make dev` first") && err.contains(&port.to_string()),
        "{err}"
    );
}
