//! `tollgate link list` / `tollgate link remove` through the binary, on an
//! SQLite store seeded through the library: live links only, text and
//! JSON with their summary line, exit 1 when there is nothing to remove.

use std::path::Path;
use std::process::{Command, Output};

use chrono::{Duration, Utc};
use serde_json::Value;
use tollgate::model::{AppUser, CustomerKey, Marketplace};
use tollgate::store::UserLink;
use tollgate::store::prelude::*;
use tollgate::store::sqlite::SqliteStore;

fn tollgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("link")
        .args(args)
        .env(
            "TOLLGATE_CONFIG",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../tollgate.example.toml"),
        )
        .env("TOLLGATE_STORE", format!("sqlite:{}/t.db", dir.display()))
        .env(
            "TOLLGATE_SECRETS",
            format!("file:{}/secrets.json", dir.display()),
        )
        .env("RUST_LOG", "warn")
        .output()
        .expect("run tollgate link")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `github:1` linked to org 42 and its own account 1 (live), and to org 7
/// (expired an hour ago: it must not show).
async fn seed(dir: &Path) {
    let store = SqliteStore::open(&dir.join("t.db")).unwrap();
    let user = AppUser("github:1".into());
    let now = Utc::now();
    for (id, linked_ago, ttl) in [
        ("42", Duration::days(1), Duration::days(30)),
        ("1", Duration::days(2), Duration::days(30)),
        ("7", Duration::days(31), Duration::days(30)),
    ] {
        let link = UserLink::new(
            CustomerKey::new(Marketplace::Github, id),
            now - linked_ago,
            ttl,
        );
        store.link_user(&user, &link).await.unwrap();
    }
}

#[tokio::test]
async fn list_shows_live_links_and_remove_deletes_one() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path()).await;

    let out = tollgate(dir.path(), &["list", "github:1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert!(lines[0].starts_with("github:1  linked "), "{listing}");
    assert!(lines[0].contains("(in 27d23h)"), "{listing}");
    assert!(lines[1].starts_with("github:42  linked "), "{listing}");
    assert!(lines[1].contains("(in 28d23h)"), "{listing}");
    assert_eq!(lines[2], "github:1: 2 live links");

    let out = tollgate(dir.path(), &["list", "github:1", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = json["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1", "42"]);
    assert_eq!(json["links"][1]["marketplace"], "github");
    assert!(json["links"][1]["expires_at"].is_string());
    assert_eq!(json["summary"], "github:1: 2 live links");

    let out = tollgate(
        dir.path(),
        &["remove", "github:1", "--marketplace", "github", "42"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "removed the link from github:1 to github:42\n"
    );

    // Gone now; and the expired one was never there to remove.
    for id in ["42", "7"] {
        let out = tollgate(
            dir.path(),
            &[
                "remove",
                "github:1",
                "--marketplace",
                "github",
                id,
                "--json",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{id}");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["removed"], false);
        assert_eq!(
            json["summary"],
            format!("no live link from github:1 to github:{id}")
        );
        assert!(text(&out.stderr).contains("no live link"), "{id}");
    }

    let out = tollgate(dir.path(), &["list", "github:1"]);
    assert_eq!(
        text(&out.stdout).lines().last(),
        Some("github:1: 1 live link")
    );
    let out = tollgate(dir.path(), &["list", "google:nobody"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "google:nobody: no live links\n");
}
