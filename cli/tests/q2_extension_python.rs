//! The Python Q2 extension example (`examples/q2-extension`) against the
//! real functions: `tollgate dev --no-sim --port 0` on a fresh store, then
//! the example's `unittest` suite with the project's `.venv` Python (which
//! `make test` installs), pointed at the printed URLs and the signing secret
//! the dev server wrote. The suite's failures fail this test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// Kills the dev server when the test ends, pass or fail.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_python_extension_example_passes_its_tests_against_the_real_functions() {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make .venv/.test-tools` (make test does)",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["dev", "--port", "0", "--no-sim"])
        .env("TOLLGATE_CONFIG", root().join("tollgate.example.toml"))
        .env(
            "TOLLGATE_STORE",
            format!("sqlite:{}/dev.db", dir.path().display()),
        )
        .env("TOLLGATE_SECRETS", format!("file:{}", secrets.display()))
        .env("TOLLGATE_ALLOW_UNAUTHENTICATED", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start tollgate dev");
    let stdout = child.stdout.take().unwrap();
    let _server = Server(child);
    // The banner ends with `Ready` once everything listens.
    let mut lines = BufReader::new(stdout).lines();
    let mut urls = std::collections::HashMap::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("Ready") {
            break;
        }
        if let [name, url] = line.split_whitespace().collect::<Vec<_>>()[..]
            && url.starts_with("http://")
        {
            urls.insert(name.to_owned(), url.trim_end_matches('/').to_owned());
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let url = |name: &str| {
        urls.get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not printed: {urls:?}"))
    };
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&secrets).unwrap()).unwrap();
    let secret = stored["q2_signing_secret"]
        .as_str()
        .expect("the dev server wrote one");

    let example = root().join("examples/q2-extension");
    let out = Command::new(&python)
        .args(["-m", "unittest", "discover", "-s", "tests", "-t", ".", "-v"])
        .current_dir(&example)
        .env(
            "PYTHONPATH",
            format!(".:{}", example.join("tests/q2_sdk_stub").display()),
        )
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("TOLLGATE_URL", url("purchase-webhook"))
        .env("TOLLGATE_CHECK_URL", url("entitlement-check"))
        .env("TOLLGATE_Q2_SIGNING_SECRET", secret)
        .output()
        .expect("run python -m unittest");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Python suite failed:\n{report}");
    // The suite ran, and ran all of it: unittest reports `Ran N tests`.
    let ran: usize = report
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no test count in:\n{report}"));
    assert!(ran >= 13, "only {ran} Python tests ran:\n{report}");
}
