//! `make dev` end to end, offline: the real `tollgate dev --port 0` with its
//! in-process GitHub stand-ins, deliveries sent by the real `tollgate fire`,
//! answers read from the printed entitlement-check, and the buyer's sign-in
//! driven through the stand-ins' authorize page.

mod common;

use std::path::PathBuf;
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

/// Runs `tollgate fire github <args> --url <purchase-webhook>/github`
/// with the server's secrets (or `secrets_file`).
fn fire(dev: &Tollgate, args: &[&str], secrets_file: Option<&PathBuf>) -> Output {
    dev.fire_command("github", args, secrets_file.map(PathBuf::as_path))
        .output()
        .expect("run tollgate fire")
}

/// entitlement-check's answer for the demo org (2001) and `feature`.
async fn check(dev: &Tollgate, feature: Option<&str>) -> Value {
    dev.check("github", "2001", feature).await
}

#[tokio::test]
async fn a_fired_trial_purchase_is_entitled_and_a_fired_cancellation_leaves_the_free_tier() {
    let dev = start();
    let before = check(&dev, None).await;
    assert_eq!(before["reason"], "no_subscription", "{before}");

    let out = fire(&dev, &["purchased", "--trial"], None);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("200 OK"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(r#""status": "applied""#),
        "{}",
        stdout(&out)
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

    let out = fire(&dev, &["cancelled"], None);
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
async fn a_delivery_signed_with_another_secret_is_refused_and_fire_exits_non_zero() {
    let dev = start();
    let wrong = dev.dir.path().join("wrong.json");
    std::fs::write(
        &wrong,
        r#"{"github_webhook_secret":"not-the-listing-secret"}"#,
    )
    .unwrap();

    let out = fire(&dev, &["purchased", "--trial"], Some(&wrong));
    assert!(!out.status.success());
    assert!(stdout(&out).contains("401"), "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let d = check(&dev, None).await;
    assert_eq!(d["reason"], "no_subscription", "nothing was stored: {d}");
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
