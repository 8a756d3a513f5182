//! Q2 under `make dev`, end to end and offline: the real `tollgate dev
//! --port 0`, events sent by the real `tollgate fire q2` (signed with the
//! `q2_signing_secret` the dev server wrote), Q2's answers and the
//! entitlement per extension read from what `fire` prints.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// A running `tollgate dev`, killed when the test ends, pass or fail.
struct Dev {
    child: Child,
    /// Printed name → URL of the four functions.
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
            .args(["dev", "--port", "0", "--no-sim"])
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
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tollgate dev");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // The banner's last line, `Ready`, is written once everything listens.
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

    /// Runs `tollgate fire q2 <args>` at this server, with its secrets (or
    /// `secrets_file`).
    fn fire(&self, args: &[&str], secrets_file: Option<&PathBuf>) -> Output {
        let secrets_file = secrets_file.cloned().unwrap_or_else(|| secrets(&self.dir));
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["fire", "q2"])
            .args(args)
            .args(["--url", &format!("{}/q2", self.url("purchase-webhook"))])
            .args([
                "--check-url",
                &format!("{}/v1/check", self.url("entitlement-check")),
            ])
            .env("TOLLGATE_CONFIG", config_path())
            .env(
                "TOLLGATE_SECRETS",
                format!("file:{}", secrets_file.display()),
            )
            .env("RUST_LOG", "warn")
            .output()
            .expect("run tollgate fire")
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

/// The line `fire` printed for `extension`.
fn line_for<'a>(printed: &'a str, extension: &str) -> &'a str {
    printed
        .lines()
        .find(|l| l.split_whitespace().next() == Some(extension))
        .unwrap_or_else(|| panic!("no line for {extension} in:\n{printed}"))
}

#[test]
fn fired_q2_events_are_answered_as_q2_reads_them_and_entitle_per_extension() {
    let dev = Dev::start();
    assert!(
        dev.printed.iter().any(|l| l.contains("fire q2 subscribe")),
        "the banner says how to fire Q2 events: {:#?}",
        dev.printed
    );

    let out = dev.fire(&["subscribe"], None);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("200 OK") && text.contains(r#""success": true"#),
        "{text}"
    );
    assert!(
        text.contains(r#""accountIdentifier": "9b0d6a52-2f0e-4e4f-9a39-0c1f7c1d2e11""#),
        "{text}"
    );
    assert!(
        text.contains(r#"customer "Local Credit Union:123456""#),
        "{text}"
    );
    assert!(
        line_for(&text, "BudgetHelperReports").contains("allowed (reason ok"),
        "{text}"
    );

    let out = dev.fire(&["update", "--edition", "STANDARD"], None);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        line_for(&text, "BudgetHelper").contains("allowed"),
        "{text}"
    );
    assert!(
        line_for(&text, "BudgetHelperReports").contains("denied (reason feature_not_in_plan"),
        "{text}"
    );

    // A second subscription for the same user: a failure answer, non-zero.
    let out = dev.fire(&["subscribe", "--subscription", "new"], None);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(r#""errorCode": "USER_ALREADY_EXISTS""#),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("USER_ALREADY_EXISTS"));

    // Cancelled: access to the end of the month already paid.
    let out = dev.fire(&["cancel"], None);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let line = line_for(&text, "BudgetHelper");
    assert!(
        line.contains("allowed")
            && line.contains("status pending_cancellation")
            && line.contains("access_until"),
        "{text}"
    );

    // An unknown product: CONFIGURATION_ERROR, non-zero.
    let out = dev.fire(
        &["subscribe", "--product", "not-configured", "--user", "9"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("CONFIGURATION_ERROR"),
        "{}",
        stdout(&out)
    );

    // The generated signing secret is in the file and nowhere on screen.
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(secrets(&dev.dir)).unwrap()).unwrap();
    let secret = stored["q2_signing_secret"].as_str().unwrap();
    assert!(secret.len() >= 32);
    assert!(dev.printed.iter().all(|l| !l.contains(secret)));
}

#[test]
fn an_event_signed_with_another_secret_is_refused_and_stores_nothing() {
    let dev = Dev::start();
    let wrong = dev.dir.path().join("wrong.json");
    std::fs::write(&wrong, r#"{"q2_signing_secret":"not-the-shared-secret"}"#).unwrap();

    let out = dev.fire(&["subscribe", "--user", "77"], Some(&wrong));
    assert!(!out.status.success());
    assert!(stdout(&out).contains("401"), "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    // Nothing was stored: the real secret's cancel of that subscription
    // finds nothing to end, and the user has no access.
    let out = dev.fire(&["cancel", "--user", "77"], None);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(line_for(&text, "BudgetHelper").contains("denied"), "{text}");
}
