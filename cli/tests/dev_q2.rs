//! Q2 under `make dev`, end to end and offline: the real `tollgate dev
//! --port 0` with its Q2 stand-in, every event played by the real `tollgate
//! fire q2` (the stand-in changes the user's subscription and relays the
//! event signed with the `q2_signing_secret` the dev server wrote), Q2's
//! answers and the entitlement per extension read from what `fire` prints.

mod common;

use std::process::Output;

use common::{Tollgate, stdout};

/// Runs `tollgate fire q2 <args>` at this server.
fn fire(dev: &Tollgate, args: &[&str]) -> Output {
    dev.fire_command("q2", args)
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

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn fired_q2_events_start_from_the_subscription_q2_holds_and_entitle_per_extension() {
    let dev = Tollgate::dev(&[]);
    assert!(
        dev.printed.iter().any(|l| l.contains("fire q2 subscribe")),
        "the banner says how to fire Q2 events: {:#?}",
        dev.printed
    );

    let out = fire(&dev, &["subscribe"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("SUBSCRIPTION_ORDER relayed by the extension")
            && text.contains(r#""success":true"#),
        "{text}"
    );
    assert!(
        text.contains("after:  ACTIVE PREMIUM, 1 user(s), MONTHLY"),
        "{text}"
    );
    assert!(
        text.contains(r#"customer "Local Credit Union:123456""#),
        "{text}"
    );
    assert!(
        line_for(&text, "BudgetHelperReports").contains("allowed, status active"),
        "{text}"
    );

    // Only the users change: the edition stays PREMIUM.
    let out = fire(&dev, &["update", "--users", "3"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("after:  ACTIVE PREMIUM, 3 user(s)"), "{text}");
    assert!(
        line_for(&text, "BudgetHelperReports").contains("allowed"),
        "{text}"
    );

    let out = fire(&dev, &["update", "--edition", "STANDARD"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("after:  ACTIVE STANDARD, 3 user(s)"),
        "{text}"
    );
    assert!(
        line_for(&text, "BudgetHelper").contains("allowed"),
        "{text}"
    );
    assert!(
        line_for(&text, "BudgetHelperReports").contains("denied (feature_not_in_plan)"),
        "{text}"
    );

    // An update that names nothing is refused before anything is sent.
    let out = fire(&dev, &["update"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nothing changes"), "{}", stderr(&out));

    // A second subscription for the same user: a failure answer, non-zero.
    let out = fire(
        &dev,
        &[
            "subscribe",
            "--subscription",
            "0c9a4f1e-8d7b-4e2a-9f3c-5b6d7e8f9a0b",
        ],
    );
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("USER_ALREADY_EXISTS"), "{text}");
    assert!(stderr(&out).contains("USER_ALREADY_EXISTS"));

    // Cancelled: access to the end of the month already paid.
    let out = fire(&dev, &["cancel"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let line = line_for(&text, "BudgetHelper");
    assert!(
        line.contains("allowed")
            && line.contains("status pending_cancellation")
            && line.contains("access_until"),
        "{text}"
    );
    // Nothing live is left to cancel at Q2.
    let out = fire(&dev, &["cancel"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no live subscription"),
        "{}",
        stderr(&out)
    );

    // An unknown product: CONFIGURATION_ERROR, non-zero.
    let out = fire(
        &dev,
        &["subscribe", "--product", "not-configured", "--user", "9"],
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
