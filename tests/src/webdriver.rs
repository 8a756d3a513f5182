//! A tiny W3C WebDriver client (plain JSON over HTTP, on `reqwest`) that
//! drives Debian's headless Chromium through its `chromedriver`, for the
//! browser tests (`tests/tests/browser.rs`).
//!
//! [`Chrome::start`] starts chromedriver on a free 127.0.0.1 port and one
//! browser session with a fresh profile; dropping the [`Chrome`] ends the
//! session (which closes the browser) and stops chromedriver. Waiting is on
//! conditions: [`Chrome::wait_for`] polls a script until it answers, with a
//! deadline. A few things WebDriver has no command for (full-page
//! screenshots, a phone's viewport) go through chromedriver's Chrome
//! DevTools passthrough (`goog/cdp/execute`).
//!
//! Chromium and chromedriver come from Debian (`apt-get install chromium
//! chromium-driver`; `make test` installs them when missing). Without them
//! [`Chrome::start`] fails the test and says so.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a browser that cannot be driven should stop the test with the reason"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where Debian's packages put the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a single condition may take before the test fails.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// A phone's viewport (an iPhone 12-15 class screen), in CSS pixels.
pub const PHONE: (u32, u32) = (390, 844);
/// The desktop window the session starts with.
pub const DESKTOP: (u32, u32) = (1280, 900);

/// One headless Chromium session and the chromedriver serving it.
pub struct Chrome {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    port: u16,
    session_id: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// The flags that make Chromium work as root on a machine without network:
/// no sandbox (root), no GPU, and none of its background traffic (updates,
/// sync, QUIC probes), which misbehaves on a closed network.
fn chromium_args(profile: &Path) -> Vec<String> {
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-breakpad".into(),
        "--disable-crash-reporter".into(),
        "--disable-dev-shm-usage".into(),
        format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
        format!("--user-data-dir={}", profile.display()),
    ]
}

/// Fails the test, saying how to get the browser, when it is not installed.
pub fn require_browser() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "the browser tests need Debian's chromium and chromium-driver ({} missing): \
         `make test` installs them (apt-get install chromium chromium-driver)",
        missing.join(", ")
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl Chrome {
    /// Starts chromedriver and a browser session with a fresh profile.
    pub async fn start() -> Self {
        require_browser();
        let port = free_port();
        let log = std::env::temp_dir().join(format!("tollgate-chromedriver-{port}.log"));
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let mut guard = DriverGuard(Some(driver));
        // chromedriver answers /status once it listens.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(res) => res
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            if let Some(status) = guard.0.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "chromedriver exited ({status}) before it was ready; its log: {}",
                    log.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not get ready on port {port} within 20 s; its log: {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let profile = tempfile::tempdir().expect("a temporary browser profile");
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": chromium_args(profile.path()),
                    },
                    "goog:loggingPrefs": { "browser": "ALL" },
                }
            }
        });
        let res = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("chromedriver answers a new session");
        let status = res.status();
        let body: Value = res.json().await.expect("a JSON answer");
        let session_id = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "chromedriver could not start Chromium ({status}): {}; its log: {}",
                    body["value"]["message"],
                    log.display()
                )
            })
            .to_owned();
        let driver = guard.0.take().expect("the driver process");
        let chrome = Self {
            http,
            session: format!("{base}/session/{session_id}"),
            port,
            session_id,
            driver,
            _profile: profile,
        };
        chrome
            .command(
                "POST",
                "/timeouts",
                json!({"pageLoad": 20_000, "script": 10_000}),
            )
            .await;
        chrome
    }

    /// One WebDriver command; panics with the driver's error.
    pub async fn command(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_command(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// One WebDriver command: its `value`, or the driver's error.
    pub async fn try_command(
        &self,
        method: &str,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.session);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let res = req.send().await.map_err(|e| e.to_string())?;
        let status = res.status();
        let body: Value = res.json().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(body["value"].clone())
        } else {
            Err(format!(
                "{status} {}: {}",
                body["value"]["error"], body["value"]["message"]
            ))
        }
    }

    /// Navigates and waits for the page to load (WebDriver's "normal" page
    /// load strategy), following redirects as a browser does.
    pub async fn goto(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url })).await;
    }

    pub async fn current_url(&self) -> String {
        self.command("GET", "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `body` as a function (with `args` as `arguments`) in the page;
    /// its return value.
    pub async fn js(&self, body: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            json!({ "script": body, "args": args }),
        )
        .await
    }

    /// Polls `script` (a function body) until it returns something other
    /// than `null`/`false`, for at most `within`; that value. Fails the test
    /// with `what` when the deadline passes.
    pub async fn wait_for(&self, what: &str, script: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            // A navigation in progress can make a script fail: try again.
            if let Ok(v) = self
                .try_command(
                    "POST",
                    "/execute/sync",
                    json!({ "script": script, "args": [] }),
                )
                .await
                && !v.is_null()
                && v != Value::Bool(false)
            {
                return v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "waited {:?} for {what}; the browser is at {}",
                    within,
                    self.current_url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        let found = self
            .command(
                "POST",
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_owned();
        self.command("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    /// Presses and releases one key (WebDriver's key codes: Tab is
    /// `\u{E004}`) as the keyboard would.
    pub async fn press(&self, key: &str) {
        self.command(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key},
                {"type": "keyUp", "value": key},
            ]}]}),
        )
        .await;
        self.command("DELETE", "/actions", Value::Null).await;
    }

    /// The browser's cookies for the current page, `HttpOnly` ones included.
    pub async fn cookies(&self) -> Vec<Value> {
        self.command("GET", "/cookie", Value::Null)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// What the page logged to the console since the last call.
    pub async fn console(&self) -> Vec<Value> {
        self.try_command("POST", "/se/log", json!({"type": "browser"}))
            .await
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// A Chrome DevTools command, through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.command(
            "POST",
            "/goog/cdp/execute",
            json!({ "cmd": cmd, "params": params }),
        )
        .await
    }

    /// Lays the page out as a phone would show it: a `width`×`height`
    /// viewport, mobile (the page's `<meta name=viewport>` applies), 3×
    /// pixels; `None` goes back to the desktop window.
    pub async fn emulate_phone(&self, viewport: Option<(u32, u32)>) {
        match viewport {
            Some((width, height)) => {
                self.cdp(
                    "Emulation.setDeviceMetricsOverride",
                    json!({"width": width, "height": height, "deviceScaleFactor": 3, "mobile": true}),
                )
                .await;
            }
            None => {
                self.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
                    .await;
            }
        }
    }

    /// A PNG of the whole page (not just the viewport).
    pub async fn screenshot(&self) -> Vec<u8> {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let (w, h) = (
            size["width"].as_f64().unwrap_or(1280.0).ceil(),
            size["height"].as_f64().unwrap_or(900.0).ceil(),
        );
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1},
                }),
            )
            .await;
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .expect("a base64 PNG")
    }

    /// Writes [`Chrome::screenshot`] to `path` (creating its directory).
    pub async fn save_screenshot(&self, path: &Path) -> PathBuf {
        let png = self.screenshot().await;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
        path.to_owned()
    }
}

/// Stops chromedriver if the session never started.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Chrome {
    /// Ends the session (chromedriver closes the browser), then stops
    /// chromedriver. Synchronous, so it also runs when a test panics.
    fn drop(&mut self) {
        let _ = delete_session(self.port, &self.session_id);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE /session/<id>` over a plain socket (no runtime needed in drop).
fn delete_session(port: u16, session_id: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "DELETE /session/{session_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    // chromedriver answers once the browser has quit; it may keep the
    // connection open, so read one answer (headers, then Content-Length).
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return Ok(());
            }
        }
    }
}
