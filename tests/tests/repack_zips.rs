//! `tools/repack_zips.py`, which `make build` runs on every Lambda zip:
//! the zip it leaves must be smaller, and must still be what Lambda runs —
//! the same bytes under the same name, still executable, with the same
//! timestamp (so an unchanged build keeps an unchanged zip). Needs the
//! venv's Python with `zopfli` (tools/requirements-zip.txt, installed by
//! `make test`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Writes `argv[1]` as cargo-lambda does: one member, `bootstrap`, mode
/// 0755, deflated at the usual level 6, from the bytes of `argv[2]`.
const MAKE_ZIP: &str = r#"
import sys, zipfile
info = zipfile.ZipInfo("bootstrap", date_time=(2026, 11, 30, 1, 2, 4))
info.external_attr = 0o100755 << 16
info.create_system = 3
info.compress_type = zipfile.ZIP_DEFLATED
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr(info, open(sys.argv[2], "rb").read(), compresslevel=6)
"#;

/// What Lambda would see in the zip `argv[1]`.
const READ_ZIP: &str = r#"
import hashlib, json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    infos = z.infolist()
    print(json.dumps({
        "corrupt": z.testzip(),
        "members": [{
            "name": i.filename,
            "mode": oct(i.external_attr >> 16),
            "date_time": list(i.date_time),
            "method": i.compress_type,
            "sha256": hashlib.sha256(z.read(i)).hexdigest(),
        } for i in infos],
    }))
"#;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn python() -> PathBuf {
    let python = root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `make test` (it installs tools/requirements-test.txt, which includes zopfli)",
        python.display()
    );
    python
}

fn run(args: &[&str]) -> Output {
    Command::new(python())
        .args(args)
        .output()
        .expect("run the venv's python")
}

fn repack(zip: &Path) -> Output {
    let script = root().join("tools/repack_zips.py");
    run(&[script.to_str().unwrap(), zip.to_str().unwrap()])
}

fn read_zip(zip: &Path) -> Value {
    let out = run(&["-c", READ_ZIP, zip.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from the reader")
}

#[test]
fn the_zip_gets_smaller_and_lambda_sees_the_same_executable() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("bootstrap.zip");
    // Compressible, several hundred kB: the lock file and the README.
    let payload = dir.path().join("payload");
    let mut bytes = std::fs::read(root().join("Cargo.lock")).unwrap();
    bytes.extend(std::fs::read(root().join("README.md")).unwrap());
    std::fs::write(&payload, &bytes).unwrap();
    let made = run(&[
        "-c",
        MAKE_ZIP,
        zip.to_str().unwrap(),
        payload.to_str().unwrap(),
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let before_size = std::fs::metadata(&zip).unwrap().len();
    let before = read_zip(&zip);

    let out = repack(&zip);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after_size = std::fs::metadata(&zip).unwrap().len();
    assert!(
        after_size < before_size,
        "Zopfli should beat level 6: {before_size} -> {after_size}"
    );
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.contains(&format!("{before_size} -> {after_size} bytes")),
        "{line}"
    );

    let after = read_zip(&zip);
    assert_eq!(after["corrupt"], Value::Null, "{after}");
    assert_eq!(
        after["members"], before["members"],
        "same name, mode, time, bytes"
    );
    assert_eq!(after["members"][0]["mode"], "0o100755", "{after}");
    assert_eq!(after["members"][0]["method"], 8, "still deflate: {after}");

    // Again on its own output: nothing to gain, and nothing grows.
    let again = repack(&zip);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(std::fs::metadata(&zip).unwrap().len() <= after_size);
    assert_eq!(read_zip(&zip)["members"], before["members"]);
}

#[test]
fn a_file_that_is_not_a_zip_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("bootstrap.zip");
    std::fs::write(&zip, b"not a zip").unwrap();
    let out = repack(&zip);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(std::fs::read(&zip).unwrap(), b"not a zip");
    assert!(!dir.path().join("bootstrap.zip.zopfli").exists());
}
