//! The command line itself: every command documents itself, usage errors
//! exit 2, and asking for help never reads the config, the store or the
//! secrets (so it works in an empty directory).

use std::path::Path;
use std::process::{Command, Output};

/// Every command with its own `--help`, and flags its help must mention.
const COMMANDS: &[(&[&str], &[&str])] = &[
    (&["dev"], &["--host", "--port", "--no-sim", "--reset"]),
    (&["demo"], &["--port", "--wait", "--check-url", "make demo"]),
    (&["fire"], &["github", "gcp", "q2"]),
    (
        &["fire", "github"],
        &[
            "<ACTION>",
            "purchased",
            "pending_change_cancelled",
            "--sim-url",
            "--check-url",
            "--account",
            "--login",
            "--org",
            "--user",
            "--plan",
            "--units",
            "--trial",
            "--now",
            "--effective-date",
            "--json",
        ],
    ),
    (
        &["fire", "q2"],
        &[
            "<ACTION>",
            "subscribe",
            "--sim-url",
            "--edition",
            "--users",
            "--json",
        ],
    ),
    (&["api-key"], &["new"]),
    (
        &["api-key", "new"],
        &[
            "<NAME>",
            "--scopes",
            "--expires-in",
            "--expires-at",
            "--json",
        ],
    ),
    (&["notify"], &["replay", "run"]),
    (
        &["notify", "replay"],
        &["--json", "dead letter", "webhook-id"],
    ),
    (&["notify", "run"], &["--interval"]),
    (&["token-key"], &["new"]),
    (&["token-key", "new"], &["--json"]),
    (&["link"], &["list", "remove"]),
    (&["link", "list"], &["<APP_USER>", "--json", "Exits 0"]),
    (
        &["link", "remove"],
        &[
            "<APP_USER>",
            "<CUSTOMER>",
            "--marketplace",
            "--json",
            "Exits 0",
        ],
    ),
    (
        &["replay"],
        &["--marketplace", "github", "gcp", "q2", "--json"],
    ),
    (
        &["reconcile"],
        &[
            "--marketplace",
            "github",
            "gcp",
            "--dry-run",
            "--json",
            "Exit codes",
        ],
    ),
    (
        &["sim"],
        &[
            "--host",
            "--port",
            "--callback-url",
            "--secrets-out",
            "--purchase-webhook-url",
        ],
    ),
    (
        &["status"],
        &["[CUSTOMER]", "--marketplace", "--events", "--json"],
    ),
];

/// Runs `tollgate` in `dir` with settings that would fail (or leave files
/// behind) if anything were read or opened.
fn tollgate_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .current_dir(dir)
        .env_remove("TOLLGATE_CONFIG")
        .env(
            "TOLLGATE_STORE",
            format!("sqlite:{}/store.db", dir.display()),
        )
        .env(
            "TOLLGATE_SECRETS",
            format!("file:{}/secrets.json", dir.display()),
        )
        .env("RUST_LOG", "warn")
        .output()
        .expect("run tollgate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn top_level_help_lists_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate_in(dir.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for (args, _) in COMMANDS.iter().filter(|(args, _)| args.len() == 1) {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{} ", args[0])))
            .unwrap_or_else(|| panic!("{} in {help}", args[0]));
        // A name and a one-line description of what it does.
        assert!(line.split_whitespace().count() > 3, "{line}");
    }
}

#[test]
fn every_command_help_exits_0_and_names_its_flags_without_reading_anything() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!dir.path().join("tollgate.toml").exists());
    for (args, flags) in COMMANDS {
        for help in ["--help", "-h"] {
            let argv: Vec<&str> = args.iter().copied().chain([help]).collect();
            let out = tollgate_in(dir.path(), &argv);
            let stdout = text(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{argv:?}: {stdout}{}",
                text(&out.stderr)
            );
            assert!(
                stdout.contains(&format!("Usage: tollgate {}", args.join(" "))),
                "{argv:?}: {stdout}"
            );
            for flag in *flags {
                assert!(stdout.contains(flag), "{argv:?} mentions {flag}: {stdout}");
            }
        }
    }
    // `tollgate help <command>` is the same help.
    let out = tollgate_in(dir.path(), &["help", "fire", "github"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("--effective-date"));

    // Nothing was opened or created: no store, no secrets, no config.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn dev_help_works_in_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["dev", "--help"])
        .current_dir(dir.path())
        .env("TOLLGATE_CONFIG", dir.path().join("missing.toml"))
        .env("TOLLGATE_STORE", "dynamodb:no-such-table")
        .env("TOLLGATE_SECRETS", "aws:no-such-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    assert!(
        help.contains("--no-sim") && help.contains("[default: 9101]"),
        "{help}"
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn dev_without_a_config_says_how_to_get_one_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate_in(dir.path(), &["dev", "--port", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("./tollgate.toml")
            && err.contains("cp tollgate.example.toml tollgate.toml")
            && err.contains("TOLLGATE_CONFIG"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn version_is_the_package_version() {
    let dir = tempfile::tempdir().unwrap();
    for args in [["--version"], ["-V"]] {
        let out = tollgate_in(dir.path(), &args);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            text(&out.stdout),
            format!("tollgate {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn usage_errors_exit_2_with_a_usage_message() {
    let dir = tempfile::tempdir().unwrap();
    // An unknown flag: the error names it and shows that command's usage.
    for (args, _) in COMMANDS {
        let argv: Vec<&str> = args.iter().copied().chain(["--no-such-flag"]).collect();
        let out = tollgate_in(dir.path(), &argv);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {stderr}");
        assert!(stderr.contains("--no-such-flag"), "{argv:?}: {stderr}");
        assert!(
            stderr.contains(&format!("Usage: tollgate {}", args.join(" "))),
            "{argv:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{argv:?}");
    }
    // Missing or invalid arguments and values.
    for argv in [
        &[][..],
        &["no-such-command"],
        &["fire"],
        &["fire", "github"],
        &["fire", "github", "renewed"],
        &["fire", "gcp", "purchased"],
        &["fire", "github", "purchased", "--units"],
        &["fire", "github", "purchased", "--units", "0"],
        &["fire", "github", "purchased", "--org", "--user"],
        &[
            "fire",
            "github",
            "purchased",
            "--effective-date",
            "10/03/2026",
        ],
        &["api-key"],
        &["api-key", "new"],
        &["api-key", "new", "ci", "--scopes"],
        &["api-key", "new", "ci", "--scopes", "admin"],
        &["replay", "--marketplace", "bitbucket"],
        &["reconcile", "--marketplace", "bitbucket"],
        &["reconcile", "--dry-run=yes"],
        &["status", "42"],
        &["link"],
        &["link", "list"],
        &["link", "remove", "github:1", "42"],
        &[
            "link",
            "remove",
            "github:1",
            "--marketplace",
            "bitbucket",
            "42",
        ],
        &["status", "--events", "-1"],
        &["dev", "--port", "99999"],
        &["demo", "--port", "x"],
        &["fire", "github", "changed", "--from-plan", "1002"],
        &["sim", "--host", "localhost"],
    ] {
        let out = tollgate_in(dir.path(), argv);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {stderr}");
        assert!(
            stderr.contains("Usage: tollgate") || stderr.contains("try '--help'"),
            "{argv:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{argv:?}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
