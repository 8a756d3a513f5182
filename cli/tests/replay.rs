//! `tollgate replay` through the binary: a summary line (or, with `--json`,
//! one JSON object) and exit 0 when nothing is left pending.

use std::path::Path;
use std::process::{Command, Output};

fn replay(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("replay")
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
        .expect("run tollgate replay")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn nothing_pending_is_one_summary_line_and_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = replay(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "no pending github deliveries\n");

    let out = replay(dir.path(), &["--json", "--marketplace", "github"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary,
        serde_json::json!({"marketplace": "github", "replayed": 0, "done": 0, "failed": 0})
    );
}

#[test]
fn marketplaces_without_recorded_deliveries_are_refused_before_reading_anything() {
    let dir = tempfile::tempdir().unwrap();
    for m in ["gcp", "q2"] {
        let out = replay(dir.path(), &["--marketplace", m]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("record-first marketplaces only"),
            "{}",
            text(&out.stderr)
        );
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}
