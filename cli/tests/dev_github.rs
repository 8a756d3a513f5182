//! `make dev` end to end, offline: the real `tollgate dev --port 0` with its
//! in-process GitHub stand-ins; every purchase change played by the real
//! `tollgate fire github` (the stand-in changes its purchase and sends the
//! signed webhook), answers read from the printed entitlement-check, and
//! the buyer's sign-in driven through the stand-ins' authorize page — so
//! what GitHub's API says, what the sign-in page shows and what `/v1/check`
//! answers are checked to agree.

mod common;

use std::process::Output;

use common::{Tollgate, stdout};
use serde_json::{Value, json};

/// `tollgate dev --port 0` with its GitHub stand-ins, ignoring any
/// `TOLLGATE_PUBLIC_URL` in the environment.
fn start() -> Tollgate {
    Tollgate::dev_with(&[], |cmd| {
        cmd.env_remove("TOLLGATE_PUBLIC_URL");
    })
}

/// Runs `tollgate fire github <args>` at this dev server.
fn fire(dev: &Tollgate, args: &[&str]) -> Output {
    dev.fire_command("github", args)
        .output()
        .expect("run tollgate fire")
}

/// `fire github <args> --json`, which must succeed; its report.
fn fire_json(dev: &Tollgate, args: &[&str]) -> Value {
    let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let out = fire(dev, &args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// entitlement-check's answer for the demo org (2001) and `feature`.
async fn check(dev: &Tollgate, feature: Option<&str>) -> Value {
    dev.check("github", "2001", feature).await
}

/// What the GitHub stand-in's API says about acme's purchase (as the
/// sign-in page and reconciliation read it).
async fn github_says(dev: &Tollgate) -> Value {
    let res = reqwest::Client::new()
        .get(format!("{}/_sim/purchases/2001", dev.url("github.com")))
        .send()
        .await
        .unwrap();
    res.json().await.unwrap()
}

/// The buyer's sign-in (Setup URL → the stand-in's authorize page →
/// callback with the cookie): the page's HTML.
async fn sign_in(dev: &Tollgate) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = |res: &reqwest::Response| {
        res.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let res = client
        .get(format!("{}/github/setup", dev.url("oauth-callback")))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let res = client.get(location(&res)).send().await.unwrap();
    let res = client
        .get(location(&res))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test]
async fn a_fired_trial_purchase_is_entitled_and_a_fired_cancellation_leaves_the_free_tier() {
    let dev = start();
    let before = check(&dev, None).await;
    assert_eq!(before["reason"], "no_subscription", "{before}");

    let out = fire(&dev, &["purchased", "--trial"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("marketplace_purchase.purchased") && text.contains("-> 200 applied"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.starts_with("ok: github purchased for account 2001")),
        "{text}"
    );

    let d = check(&dev, Some("private-repos")).await;
    assert_eq!(d["allowed"], true, "{d}");
    assert_eq!(
        (&d["status"], &d["tier"], &d["plan"]),
        (&json!("trial"), &json!("team"), &json!("1002"))
    );
    let days = d["trial_days_left"].as_u64().unwrap();
    assert!((13..=14).contains(&days), "{d}");
    assert_eq!(d["seats"]["limit"], 5, "{d}");

    // A trial ends at once when cancelled.
    let out = fire(&dev, &["cancelled"]);
    assert!(out.status.success(), "{}", stdout(&out));
    // tollgate.example.toml: `cancelled_tier = "free"` (public repos only).
    let d = check(&dev, Some("private-repos")).await;
    assert_eq!(
        (&d["allowed"], &d["reason"]),
        (&json!(false), &json!("feature_not_in_plan")),
        "{d}"
    );
    assert_eq!(
        (&d["status"], &d["tier"]),
        (&json!("cancelled"), &json!("free")),
        "{d}"
    );
    let d = check(&dev, Some("public-repos")).await;
    assert_eq!(d["allowed"], true, "{d}");
    // GitHub no longer lists the purchase either.
    assert!(github_says(&dev).await["error"].is_string());

    // The generated webhook secret is in the file and nowhere on screen.
    let stored = dev.secrets();
    let secret = stored["github_webhook_secret"].as_str().unwrap();
    assert!(secret.len() >= 32);
    assert!(dev.printed.iter().all(|l| !l.contains(secret)));
    // So is the key that signs the sign-in's `state`.
    let key = stored["oauth_state_key"].as_str().unwrap();
    assert_eq!(key.len(), 64);
    assert!(dev.printed.iter().all(|l| !l.contains(key)));
}

#[tokio::test]
async fn fire_changes_only_what_it_names_and_github_the_sign_in_page_and_the_check_agree() {
    let dev = start();
    // The seed: acme on Team, 5 seats, on a trial.
    let r = fire_json(&dev, &["purchased", "--trial"]);
    assert_eq!(r["purchase"]["unit_count"], 5, "{r}");

    // Fewer seats: the plan stays Team (not a downgrade to the defaults).
    let r = fire_json(&dev, &["changed", "--units", "2"]);
    assert_eq!(
        (&r["previous"]["unit_count"], &r["purchase"]["unit_count"]),
        (&json!(5), &json!(2)),
        "{r}"
    );
    assert_eq!(r["purchase"]["plan_id"], 1002, "{r}");
    assert_eq!(r["webhook"]["reply"]["status"], "applied", "{r}");
    assert_eq!(r["check"]["seats"]["limit"], 2, "{r}");
    assert_eq!(r["check"]["plan"], "1002", "{r}");
    assert_eq!(github_says(&dev).await["unit_count"], 2);
    let page = sign_in(&dev).await;
    assert!(page.contains("2 seats") && page.contains("Team"), "{page}");

    // Another plan: GitHub's record, the page and the check all say Business.
    let r = fire_json(&dev, &["changed", "--plan", "1003"]);
    assert_eq!(
        (&r["check"]["plan"], &r["check"]["tier"]),
        (&json!("1003"), &json!("business")),
        "{r}"
    );
    assert_eq!(github_says(&dev).await["plan_name"], "Business");
    let page = sign_in(&dev).await;
    assert!(page.contains("Business"), "{page}");

    // A pending change and its withdrawal keep the plan.
    let r = fire_json(&dev, &["pending_change", "--plan", "1002", "--units", "3"]);
    assert_eq!(r["purchase"]["pending_change"]["unit_count"], 3, "{r}");
    assert_eq!(r["check"]["plan"], "1003", "{r}");
    let r = fire_json(&dev, &["pending_change_cancelled"]);
    assert!(r["purchase"]["pending_change"].is_null(), "{r}");
    assert_eq!(r["check"]["plan"], "1003", "{r}");
}

#[tokio::test]
async fn a_paid_cancellation_keeps_access_to_the_end_of_the_cycle_unless_now() {
    let dev = start();
    fire_json(&dev, &["purchased", "--plan", "1003"]);

    let r = fire_json(&dev, &["cancelled"]);
    // GitHub announces it as a pending change back to the same purchase.
    assert_eq!(r["action"], "pending_change", "{r}");
    assert_eq!(r["purchase"]["pending_change"]["cancellation"], true, "{r}");
    let d = check(&dev, Some("private-repos")).await;
    assert_eq!(
        (&d["allowed"], &d["status"]),
        (&json!(true), &json!("pending_cancellation")),
        "{d}"
    );
    let until = d["access_until"].as_str().unwrap();
    assert_eq!(
        Some(until.get(..10).unwrap()),
        r["purchase"]["next_billing_date"].as_str(),
        "{d}"
    );

    let r = fire_json(&dev, &["cancelled", "--now"]);
    assert_eq!(r["action"], "cancelled", "{r}");
    assert!(r["purchase"].is_null(), "{r}");
    let d = check(&dev, Some("private-repos")).await;
    assert_eq!(
        (&d["allowed"], &d["status"]),
        (&json!(false), &json!("cancelled")),
        "{d}"
    );
}

#[tokio::test]
async fn an_event_the_function_does_not_apply_exits_non_zero_with_a_reset_hint() {
    let dev = start();
    fire_json(&dev, &["purchased", "--trial"]);
    let out = fire(
        &dev,
        &[
            "changed",
            "--plan",
            "1003",
            "--effective-date",
            "2020-01-02",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did not apply changed (stale)") && err.contains("make dev-reset"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("FAILED: github changed"),
        "{}",
        stdout(&out)
    );

    // A step the purchase does not allow is refused by the stand-in, and
    // nothing is sent.
    let out = fire(&dev, &["pending_change_cancelled"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no pending change"), "{err}");
}

#[tokio::test]
async fn the_setup_url_signs_the_demo_buyer_in_through_the_github_stand_ins() {
    let dev = start();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = |res: &reqwest::Response| {
        res.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };

    let oauth = dev.url("oauth-callback");
    let res = client
        .get(format!("{oauth}/github/setup"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.starts_with("__Host-tollgate_oauth=")
            && set_cookie.ends_with("; Path=/; Max-Age=600; Secure; HttpOnly; SameSite=Lax"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let authorize = location(&res);
    let github = dev.url("github.com");
    assert!(
        authorize.starts_with(&format!("{github}/login/oauth/authorize?")),
        "{authorize}"
    );

    let res = client.get(&authorize).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let callback = location(&res);
    assert!(
        callback.starts_with(&format!("{oauth}/github/callback?code=")),
        "{callback}"
    );

    // The browser sends back the cookie the setup URL set (github.com never
    // sees it); without it the callback is refused.
    let refused = client.get(&callback).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let res = client
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("Welcome, The Octocat"), "{page}");
    assert!(page.contains("<h2>Team</h2>"), "{page}");
    assert!(page.contains("acme (organization)"), "{page}");
    assert!(page.contains("5 seats"), "{page}");
    assert!(page.contains("Free trial"), "{page}");
}
