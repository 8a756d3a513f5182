//! Q2 under `make dev`, end to end and offline: the real `tollgate dev
//! --port 0`, events sent by the real `tollgate fire q2` (signed with the
//! `q2_signing_secret` the dev server wrote), Q2's answers and the
//! entitlement per extension read from what `fire` prints.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{Tollgate, config_path, stdout};

/// Runs `tollgate fire q2 <args>` at this server, with its secrets (or
/// `secrets_file`).
fn fire(dev: &Tollgate, args: &[&str], secrets_file: Option<&PathBuf>) -> Output {
    dev.fire_command("q2", args, secrets_file.map(PathBuf::as_path))
        .args([
            "--check-url",
            &format!("{}/v1/check", dev.url("entitlement-check")),
        ])
        .env("TOLLGATE_CONFIG", config_path())
        .output()
        .expect("run tollgate fire")
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
    let dev = Tollgate::dev(&["--no-sim"]);
    assert!(
        dev.printed.iter().any(|l| l.contains("fire q2 subscribe")),
        "the banner says how to fire Q2 events: {:#?}",
        dev.printed
    );

    let out = fire(&dev, &["subscribe"], None);
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

    let out = fire(&dev, &["update", "--edition", "STANDARD"], None);
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
    let out = fire(&dev, &["subscribe", "--subscription", "new"], None);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(r#""errorCode": "USER_ALREADY_EXISTS""#),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("USER_ALREADY_EXISTS"));

    // Cancelled: access to the end of the month already paid.
    let out = fire(&dev, &["cancel"], None);
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
    let out = fire(
        &dev,
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
    let stored = dev.secrets();
    let secret = stored["q2_signing_secret"].as_str().unwrap();
    assert!(secret.len() >= 32);
    assert!(dev.printed.iter().all(|l| !l.contains(secret)));
}

#[test]
fn an_event_signed_with_another_secret_is_refused_and_stores_nothing() {
    let dev = Tollgate::dev(&["--no-sim"]);
    let wrong = dev.dir.path().join("wrong.json");
    std::fs::write(&wrong, r#"{"q2_signing_secret":"not-the-shared-secret"}"#).unwrap();

    let out = fire(&dev, &["subscribe", "--user", "77"], Some(&wrong));
    assert!(!out.status.success());
    assert!(stdout(&out).contains("401"), "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    // Nothing was stored: the real secret's cancel of that subscription
    // finds nothing to end, and the user has no access.
    let out = fire(&dev, &["cancel", "--user", "77"], None);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(line_for(&text, "BudgetHelper").contains("denied"), "{text}");
}
