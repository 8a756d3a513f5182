//! The Python Q2 extension example (`examples/q2-extension`) against the
//! real functions: `tollgate dev --no-sim --port 0` on a fresh store, then
//! the example's `unittest` suite with the project's `.venv` Python (which
//! `make test` installs), pointed at the printed URLs and the signing secret
//! the dev server wrote. The suite's failures fail this test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Tollgate;

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
    let dev = Tollgate::dev(&["--no-sim"]);
    let stored = dev.secrets();
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
        .env("TOLLGATE_URL", dev.url("purchase-webhook"))
        .env("TOLLGATE_CHECK_URL", dev.url("entitlement-check"))
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
