//! Asking entitlement-check what a customer may do now, the way the
//! vendor's app asks: `POST /v1/check` (with `TOLLGATE_API_KEY` as a bearer
//! key when set, for a dev server with API keys).

use std::time::Duration;

use serde_json::Value;

use super::FireError;

/// A local check answers well within this.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Posts `question` to `url`; the answer, which must be 2xx JSON.
pub async fn ask(url: &str, question: &Value) -> Result<Value, FireError> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| FireError::Setup(e.to_string()))?;
    let mut req = client.post(url).json(question);
    if let Some(key) = std::env::var("TOLLGATE_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
    {
        req = req.bearer_auth(key.trim());
    }
    let res = req.send().await.map_err(|e| {
        FireError::Unreachable(if e.is_connect() {
            format!(
                "cannot reach entitlement-check at {url}: is `make dev` (tollgate dev) running? (--check-url says where) ({e})"
            )
        } else {
            format!("POST {url}: {e}")
        })
    })?;
    let status = res.status();
    let text = res
        .text()
        .await
        .map_err(|e| FireError::Unreachable(format!("reading the check: {e}")))?;
    if !status.is_success() {
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            " (API keys exist: set TOLLGATE_API_KEY)"
        } else {
            ""
        };
        return Err(FireError::NotApplied(format!(
            "entitlement-check answered {status}: {}{hint}",
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        )));
    }
    serde_json::from_str(&text)
        .map_err(|e| FireError::Unreachable(format!("entitlement-check's answer: {e}")))
}

/// A `/v1/check` answer on one line: the verdict, then every field that is
/// not `null` (a `null` field does not apply to this answer).
pub fn line(d: &Value) -> String {
    let verdict = if d["allowed"] == true {
        "allowed".to_owned()
    } else {
        format!("denied ({})", d["reason"].as_str().unwrap_or("?"))
    };
    let mut parts = vec![verdict];
    for key in ["status", "plan", "tier"] {
        if let Some(v) = d[key].as_str() {
            parts.push(format!("{key} {v}"));
        }
    }
    if let Some(n) = d["trial_days_left"].as_u64() {
        parts.push(format!("trial_days_left {n}"));
    }
    if let Some(until) = d["access_until"].as_str() {
        parts.push(format!("access_until {until}"));
    }
    if let (Some(used), Some(limit)) = (d["seats"]["used"].as_u64(), d["seats"].get("limit")) {
        let limit = limit
            .as_u64()
            .map_or_else(|| "unlimited".to_owned(), |l| l.to_string());
        parts.push(format!("seats {used}/{limit}"));
    }
    parts.join(", ")
}
