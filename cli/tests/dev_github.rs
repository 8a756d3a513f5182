//! `make dev` end to end, offline: the real `tollgate dev --port 0` with its
//! in-process GitHub stand-ins, deliveries sent by the real `tollgate fire`,
//! answers read from the printed entitlement-check, and the buyer's sign-in
//! driven through the stand-ins' authorize page.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};

/// A running `tollgate dev`, killed when the test ends, pass or fail.
struct Dev {
    child: Child,
    /// Printed name → URL: the four functions, `github.com`, `api.github.com`.
    urls: HashMap<String, String>,
    printed: Vec<String>,
    dir: tempfile::TempDir,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    fn start() -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["dev", "--port", "0"])
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
            .env_remove("TOLLGATE_PUBLIC_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tollgate dev");
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
            "tollgate dev stopped early: {printed:#?}"
        );
        // Keep draining (logs), so the server never writes into a closed pipe.
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
        Dev {
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

    /// Runs `tollgate fire github <args> --url <purchase-webhook>/github`
    /// with the server's secrets (or `secrets_file`).
    fn fire(&self, args: &[&str], secrets_file: Option<&PathBuf>) -> Output {
        let secrets_file = secrets_file.cloned().unwrap_or_else(|| secrets(&self.dir));
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["fire", "github"])
            .args(args)
            .args(["--url", &format!("{}/github", self.url("purchase-webhook"))])
            .env(
                "TOLLGATE_SECRETS",
                format!("file:{}", secrets_file.display()),
            )
            .env("RUST_LOG", "warn")
            .output()
            .expect("run tollgate fire")
    }

    async fn check(&self, feature: Option<&str>) -> Value {
        let mut body =
            json!({"marketplace": "github", "customer_id": "2001", "product": "acme-ci"});
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_fired_trial_purchase_is_entitled_and_a_fired_cancellation_leaves_the_free_tier() {
    let dev = Dev::start();
    let before = dev.check(None).await;
    assert_eq!(before["reason"], "no_subscription", "{before}");

    let out = dev.fire(&["purchased", "--trial"], None);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("200 OK"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(r#""status": "applied""#),
        "{}",
        stdout(&out)
    );

    let d = dev.check(Some("private-repos")).await;
    assert_eq!(d["allowed"], true, "{d}");
    assert_eq!(
        (&d["status"], &d["tier"], &d["plan"]),
        (&json!("trial"), &json!("team"), &json!("1002"))
    );
    let days = d["trial_days_left"].as_u64().unwrap();
    assert!((13..=14).contains(&days), "{d}");
    assert_eq!(d["seats"]["limit"], 5, "{d}");

    let out = dev.fire(&["cancelled"], None);
    assert!(out.status.success(), "{}", stdout(&out));
    // tollgate.example.toml: `cancelled_tier = "free"` (public repos only).
    let d = dev.check(Some("private-repos")).await;
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
    let d = dev.check(Some("public-repos")).await;
    assert_eq!(d["allowed"], true, "{d}");

    // The generated webhook secret is in the file and nowhere on screen.
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(secrets(&dev.dir)).unwrap()).unwrap();
    let secret = stored["github_webhook_secret"].as_str().unwrap();
    assert!(secret.len() >= 32);
    assert!(dev.printed.iter().all(|l| !l.contains(secret)));
}

#[tokio::test]
async fn a_delivery_signed_with_another_secret_is_refused_and_fire_exits_non_zero() {
    let dev = Dev::start();
    let wrong = dev.dir.path().join("wrong.json");
    std::fs::write(
        &wrong,
        r#"{"github_webhook_secret":"not-the-listing-secret"}"#,
    )
    .unwrap();

    let out = dev.fire(&["purchased", "--trial"], Some(&wrong));
    assert!(!out.status.success());
    assert!(stdout(&out).contains("401"), "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let d = dev.check(None).await;
    assert_eq!(d["reason"], "no_subscription", "nothing was stored: {d}");
}

#[tokio::test]
async fn the_setup_url_signs_the_demo_buyer_in_through_the_github_stand_ins() {
    let dev = Dev::start();
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

    let res = client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("Welcome, The Octocat"), "{page}");
    assert!(page.contains("<h2>Team</h2>"), "{page}");
    assert!(page.contains("acme (organization)"), "{page}");
    assert!(page.contains("5 seats"), "{page}");
    assert!(page.contains("Free trial"), "{page}");
}
