//! What the integration tests share: the real `tollgate dev` (or `tollgate
//! sim`) started on free ports with its own store and secrets file, ready
//! once its banner ends with `Ready`, and stopped when the test ends.
//!
//! Each test file compiles its own copy of this module and uses part of it,
//! so the helpers not every file needs allow `dead_code`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};

/// A running `tollgate dev` or `tollgate sim`, killed when the test ends,
/// pass or fail.
pub struct Tollgate {
    child: Child,
    /// Printed `name url` lines: the four functions, the stand-ins
    /// (`github.com`, `api.github.com`, `googleapis.com`), without the
    /// trailing `/`.
    urls: HashMap<String, String>,
    /// The banner, up to and including its `Ready` line.
    pub printed: Vec<String>,
    /// Holds the store (`dev.db`) and the secrets file.
    pub dir: tempfile::TempDir,
}

impl Drop for Tollgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tollgate {
    /// `tollgate dev --port 0 <args>` on a fresh store and secrets file.
    #[allow(dead_code)]
    pub fn dev(args: &[&str]) -> Tollgate {
        Self::dev_with(args, |_| {})
    }

    /// [`Tollgate::dev`], with `env` adjusting the command's environment.
    pub fn dev_with(args: &[&str], env: impl FnOnce(&mut Command)) -> Tollgate {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args(["dev", "--port", "0"])
            .args(args)
            .env("TOLLGATE_CONFIG", config_path())
            .env(
                "TOLLGATE_STORE",
                format!("sqlite:{}/dev.db", dir.path().display()),
            )
            .env(
                "TOLLGATE_SECRETS",
                format!("file:{}", secrets_file(dir.path()).display()),
            )
            .env("TOLLGATE_ALLOW_UNAUTHENTICATED", "1");
        env(&mut cmd);
        Self::spawn("tollgate dev", cmd, dir)
    }

    /// `tollgate sim --port 0 <args> --secrets-out <dir>/secrets.json`.
    #[allow(dead_code)]
    pub fn sim(dir: tempfile::TempDir, args: &[&str]) -> Tollgate {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args(["sim", "--port", "0"])
            .args(args)
            .arg("--secrets-out")
            .arg(secrets_file(dir.path()));
        Self::spawn("tollgate sim", cmd, dir)
    }

    fn spawn(what: &str, mut cmd: Command, dir: tempfile::TempDir) -> Tollgate {
        let mut child = cmd
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
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
        let tollgate = Tollgate {
            child,
            urls: urls(&printed),
            printed,
            dir,
        };
        assert!(
            tollgate
                .printed
                .last()
                .is_some_and(|l| l.starts_with("Ready")),
            "{what} stopped early: {:#?}",
            tollgate.printed
        );
        // Keep draining (logs), so the server never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        tollgate
    }

    /// The printed URL of `name`, without the trailing `/`.
    #[allow(dead_code)]
    pub fn url(&self, name: &str) -> &str {
        self.urls
            .get(name)
            .unwrap_or_else(|| panic!("{name} in {:#?}", self.printed))
    }

    /// The secrets file the server reads (`dev`) or wrote (`sim`).
    fn secrets_path(&self) -> PathBuf {
        secrets_file(self.dir.path())
    }

    /// What the secrets file holds now.
    #[allow(dead_code)]
    pub fn secrets(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.secrets_path()).unwrap()).unwrap()
    }

    /// `tollgate fire <marketplace> <args>` at this server: `--sim-url`
    /// its stand-in for the marketplace, `--check-url` its
    /// entitlement-check, the demo configuration; ready to take more flags
    /// and run.
    #[allow(dead_code)]
    pub fn fire_command(&self, marketplace: &str, args: &[&str]) -> Command {
        let sim = match marketplace {
            "github" => "github.com",
            "gcp" => "googleapis.com",
            _ => "q2-marketplace",
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args(["fire", marketplace])
            .args(args)
            .args(["--sim-url", self.url(sim)])
            .args([
                "--check-url",
                &format!("{}/v1/check", self.url("entitlement-check")),
            ])
            .env("TOLLGATE_CONFIG", config_path())
            .env("RUST_LOG", "warn");
        cmd
    }

    /// entitlement-check's answer (`POST /v1/check`, which must answer 200)
    /// for `customer_id`'s `acme-ci` on `marketplace`, and `feature` if given.
    #[allow(dead_code)]
    pub async fn check(
        &self,
        marketplace: &str,
        customer_id: &str,
        feature: Option<&str>,
    ) -> Value {
        let mut body =
            json!({"marketplace": marketplace, "customer_id": customer_id, "product": "acme-ci"});
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

/// The printed `name url` lines, by name.
fn urls(printed: &[String]) -> HashMap<String, String> {
    printed
        .iter()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [name, url] if url.starts_with("http://") => {
                Some((name.to_owned(), url.trim_end_matches('/').to_owned()))
            }
            _ => None,
        })
        .collect()
}

/// The demo configuration, `tollgate.example.toml`.
pub fn config_path() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../tollgate.example.toml").to_owned()
}

/// The secrets file in a server's `dir`.
pub fn secrets_file(dir: &Path) -> PathBuf {
    dir.join("secrets.json")
}

/// A command's standard output, as text.
#[allow(dead_code)]
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
