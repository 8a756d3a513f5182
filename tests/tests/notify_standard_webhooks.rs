//! Change notifications against an independent implementation of the
//! Standard Webhooks specification: the `standardwebhooks` package from
//! PyPI (pinned in tools/requirements-test.txt, installed into .venv by
//! `make test`).
//!
//! Tollgate's sender POSTs a real notification over HTTP to a local
//! receiver, signed with a rotating pair of secrets; the Python library
//! verifies it with each secret (and refuses a tampered body). Then the
//! Python library signs a message that `tollgate-client`'s verifier must
//! accept. Without the venv's Python and the package the test fails, with
//! the command that installs them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use chrono::Utc;
use tollgate::clock::SystemClock;
use tollgate::config::Catalog;
use tollgate::ingest;
use tollgate::model::Marketplace;
use tollgate::notify::{HttpTransport, Sender};
use tollgate::secret::Secrets;
use tollgate::store::sqlite::SqliteStore;
use tollgate_client::notify::{EventType, verify_notification};
use tollgate_tests::conformance::{customer, purchase, sub_key};

const CURRENT: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PREVIOUS: &str = "whsec_cHJldmlvdXMtc2VjcmV0LWtleQ==";
const CLIENT: &str = "whsec_Y2xpZW50LXNpZGUtc2VjcmV0";

/// Verifies what Tollgate sent with each secret, checks a tampered body is
/// refused, and signs the same body under a new id for our verifier.
const SCRIPT: &str = r#"
import json, sys
from datetime import datetime, timezone
from standardwebhooks import Webhook

req = json.load(sys.stdin)
headers = {
    "webhook-id": req["id"],
    "webhook-timestamp": req["timestamp"],
    "webhook-signature": req["signature"],
}
out = {}
for name in ("current", "previous"):
    try:
        payload = Webhook(req["secrets"][name]).verify(req["body"], headers)
        out[name] = payload["data"]["event"]["id"]
    except Exception as e:
        out[name] = "refused: %r" % (e,)
try:
    Webhook(req["secrets"]["current"]).verify(req["body"] + " ", headers)
    out["tampered"] = "accepted"
except Exception:
    out["tampered"] = "refused"
try:
    Webhook(req["secrets"]["client"]).verify(req["body"], headers)
    out["other_secret"] = "accepted"
except Exception:
    out["other_secret"] = "refused"
now = datetime.now(tz=timezone.utc)
out["signed"] = {
    "id": "msg_from_python",
    "timestamp": str(int(now.timestamp())),
    "signature": Webhook(req["secrets"]["client"]).sign("msg_from_python", now, req["body"]),
}
print(json.dumps(out))
"#;

fn venv_python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let python = root.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `make test` (or `python3 -m venv .venv && .venv/bin/pip install \
         -r tools/requirements-test.txt`) to install the `standardwebhooks` package this test \
         checks notifications with",
        python.display()
    );
    python
}

fn run_python(python: &Path, input: &serde_json::Value) -> serde_json::Value {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the venv's python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write to python");
    let out = child.wait_with_output().expect("python ran");
    assert!(
        out.status.success(),
        "the standardwebhooks script did not run (is `standardwebhooks` installed in .venv? \
         `.venv/bin/pip install -r tools/requirements-test.txt`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver on 127.0.0.1 that records each POST and answers 204.
async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push((headers, body));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hooks"), received)
}

#[tokio::test]
async fn standardwebhooks_verifies_what_we_send_and_signs_what_our_client_accepts() {
    let python = venv_python();
    let (url, received) = receiver().await;
    let config = format!(
        r#"
[products.acme-ci]
name = "Acme CI"
[products.acme-ci.tiers.team]
features = ["private-repos"]
seats = "purchased"
[products.acme-ci.plans.github]
team = "team"

[[notifications.endpoints]]
url = "{url}"
secret = "notify_app"
"#
    );
    let catalog = Arc::new(Catalog::parse(&config, Path::new("tollgate.toml")).unwrap());
    let secrets = Secrets::from_pairs([("notify_app", CURRENT), ("notify_app_previous", PREVIOUS)]);
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let sender = Sender::new(
        Arc::clone(&store) as Arc<dyn tollgate::store::Outbox>,
        catalog,
        &secrets,
        Arc::new(HttpTransport::new().unwrap()),
        Arc::new(SystemClock),
    )
    .unwrap();

    // The real clock: the Python library judges the timestamp against it.
    let now = Utc::now();
    let buy = purchase(
        &sub_key("s1"),
        &customer(Marketplace::Github, "acme"),
        "e1",
        now,
        3,
    );
    ingest::ingest(&*store, &buy, now).await.unwrap();
    let report = sender.drain().await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");

    let (headers, body) = received.lock().unwrap().pop().expect("one POST");
    let header = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/json");
    let body_text = String::from_utf8(body.to_vec()).unwrap();
    let checked = run_python(
        &python,
        &serde_json::json!({
            "id": header("webhook-id"),
            "timestamp": header("webhook-timestamp"),
            "signature": header("webhook-signature"),
            "body": body_text,
            "secrets": {"current": CURRENT, "previous": PREVIOUS, "client": CLIENT},
        }),
    );
    assert_eq!(
        checked["current"], "e1",
        "standardwebhooks refused what we sent (current secret): {checked}"
    );
    assert_eq!(
        checked["previous"], "e1",
        "standardwebhooks refused what we sent (previous secret): {checked}"
    );
    assert_eq!(checked["tampered"], "refused", "{checked}");
    assert_eq!(checked["other_secret"], "refused", "{checked}");

    // What the Python library signed, our client verifier accepts.
    let signed = &checked["signed"];
    let mut theirs = axum::http::HeaderMap::new();
    for (name, field) in [
        ("webhook-id", "id"),
        ("webhook-timestamp", "timestamp"),
        ("webhook-signature", "signature"),
    ] {
        theirs.insert(name, signed[field].as_str().unwrap().parse().unwrap());
    }
    let notification = verify_notification(
        &theirs,
        body_text.as_bytes(),
        &[CLIENT],
        std::time::SystemTime::now(),
    )
    .expect("tollgate-client accepts what standardwebhooks signed");
    assert_eq!(notification.event_type, EventType::Created);
    assert_eq!(notification.data.event.id, "e1");
    assert!(notification.data.entitlement.allowed);
    // ... and only with the right secret and the exact body.
    assert!(
        verify_notification(
            &theirs,
            body_text.as_bytes(),
            &[CURRENT],
            std::time::SystemTime::now()
        )
        .is_err()
    );
    let tampered = body_text.replace("\"e1\"", "\"e2\"");
    assert!(
        verify_notification(
            &theirs,
            tampered.as_bytes(),
            &[CLIENT],
            std::time::SystemTime::now()
        )
        .is_err()
    );
}
