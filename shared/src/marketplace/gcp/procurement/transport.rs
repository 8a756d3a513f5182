//! One call: its deadline, the bearer token, retries, Google's error body
//! and decoding the reply.
//!
//! **Retrying state changes.** `approve`, `reject`, `approvePlanChange`,
//! `rejectPlanChange` and `reset` are retried like reads. Each moves a
//! resource out of the one state that allows it, so a repeat is never a
//! second effect: it either does the same transition (the first attempt
//! did not reach Google) or is refused with 400 `FAILED_PRECONDITION`
//! (it did). That refusal is then ambiguous — our own earlier attempt, or
//! a real conflict — so after an attempt that may have been applied (5xx
//! or a timeout, not a 429 or a refused connection) it is reported with
//! `after_retry: true`, and the caller reads the resource to know. The
//! alternative, not retrying, turns every 503 into a failed delivery that
//! Pub/Sub redelivers: the same repeat, later.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::super::credentials::{
    AccessToken, describe_json_error, error_chain, safe_code, safe_text,
};
use super::{ProcurementClient, ProcurementError};
use crate::outbound::{ReadError, read_capped};

/// Replies larger than this are refused rather than buffered (a page of
/// 200 entitlements is well under 1 MiB).
const MAX_REPLY_BYTES: usize = 8 * 1024 * 1024;
/// The longest `Retry-After` read (beyond any deadline anyway).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// No pause is taken that leaves less than this for the next attempt.
const MIN_ATTEMPT: Duration = Duration::from_millis(50);

/// One API call, as sent on every attempt.
pub(super) struct Call {
    pub(super) endpoint: &'static str,
    pub(super) method: reqwest::Method,
    pub(super) url: String,
    pub(super) query: Vec<(&'static str, String)>,
    /// A JSON body.
    pub(super) body: Option<Vec<u8>>,
    /// A state change: see the module docs.
    pub(super) action: bool,
    /// The reply's body is read and returned; otherwise a 2xx status is the
    /// whole answer (an unreadable `{}` after it is no failure).
    pub(super) wants_body: bool,
}

/// How one attempt failed.
struct Failure {
    error: ProcurementError,
    /// The request may have been applied.
    ambiguous: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(error: ProcurementError) -> Self {
        Self {
            error,
            ambiguous: false,
            retry_after: None,
        }
    }
}

impl ProcurementClient {
    /// Runs `call` under the retry policy; returns the 2xx reply's body.
    pub(super) async fn execute(&self, call: &Call) -> Result<Vec<u8>, ProcurementError> {
        let endpoint = call.endpoint;
        let policy = self.retry;
        let deadline = Instant::now() + policy.deadline;
        let mut attempt: u32 = 0;
        let mut applied_maybe = false;
        let mut refreshed = false;
        // What the last attempt ended with, reported if the deadline cuts
        // the next one short (more telling than "no time left").
        let mut last: Option<ProcurementError> = None;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(last.unwrap_or(ProcurementError::Timeout { endpoint }));
            }
            let failure = match tokio::time::timeout(remaining, self.tokens.token()).await {
                Err(_) => return Err(last.unwrap_or(ProcurementError::Timeout { endpoint })),
                Ok(Err(e)) => Failure::new(e.into()),
                Ok(Ok(token)) => {
                    let limit = remaining.min(policy.attempt_timeout);
                    match self.attempt(call, &token, limit).await {
                        Ok(body) => return Ok(body),
                        // The token may have been revoked or expired early:
                        // once, drop it and go again at once.
                        Err(f)
                            if matches!(f.error, ProcurementError::Unauthenticated { .. })
                                && !refreshed =>
                        {
                            refreshed = true;
                            self.tokens.invalidate(&token).await;
                            if attempt < policy.max_attempts {
                                last = Some(f.error);
                                continue;
                            }
                            f
                        }
                        Err(f) => f,
                    }
                }
            };
            let mut error = failure.error;
            if call.action
                && applied_maybe
                && let ProcurementError::FailedPrecondition { after_retry, .. } = &mut error
            {
                *after_retry = true;
            }
            applied_maybe |= failure.ambiguous;
            if !error.is_transient() || attempt >= policy.max_attempts {
                return Err(error);
            }
            let pause = failure
                .retry_after
                .unwrap_or_else(|| full_jitter(policy.base_delay, policy.max_delay, attempt));
            if Instant::now() + pause + MIN_ATTEMPT >= deadline {
                // Waiting would leave no time for another attempt: the
                // caller hears now.
                return Err(error);
            }
            tracing::warn!(
                endpoint,
                attempt,
                pause_ms = pause.as_millis() as u64,
                error = %error,
                "Procurement API call failed; retrying"
            );
            tokio::time::sleep(pause).await;
            last = Some(error);
        }
    }

    async fn attempt(
        &self,
        call: &Call,
        token: &AccessToken,
        limit: Duration,
    ) -> Result<Vec<u8>, Failure> {
        let endpoint = call.endpoint;
        // `bearer_auth` marks the header sensitive.
        let mut req = self
            .http
            .request(call.method.clone(), &call.url)
            .bearer_auth(token.expose())
            .timeout(limit);
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        if let Some(body) = &call.body {
            req = req
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let res = req.send().await.map_err(|e| transport(endpoint, e))?;
        let status = res.status();
        let retry_after = retry_after(res.headers(), Utc::now());
        let body = match read_capped(res, MAX_REPLY_BYTES).await {
            Ok(body) => body,
            Err(_) if status.is_success() && !call.wants_body => Vec::new(),
            Err(ReadError::TooLarge { cap }) => {
                return Err(Failure::new(ProcurementError::TooLarge { endpoint, cap }));
            }
            // Google answered, so the request was processed.
            Err(ReadError::Transport(e)) => {
                let mut f = transport(endpoint, e);
                f.ambiguous = true;
                return Err(f);
            }
        };
        if status.is_success() {
            return Ok(body);
        }
        let mut error = error_from_reply(endpoint, status.as_u16(), &body, token.expose());
        if let ProcurementError::RateLimited { retry_after: r, .. } = &mut error {
            *r = retry_after;
        }
        Err(Failure {
            error,
            ambiguous: status.is_server_error(),
            retry_after,
        })
    }
}

/// A pause of 0 to `min(max, base · 2^(attempt-1))`, uniformly drawn ("full
/// jitter": retries of many callers spread out instead of arriving
/// together).
pub(super) fn full_jitter(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let cap = base.saturating_mul(1u32 << exp).min(max);
    let mut b = [0u8; 8];
    // No entropy (never on Lambda or Linux): half the cap.
    let fraction = match getrandom::fill(&mut b) {
        Ok(()) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    };
    cap.mul_f64(fraction)
}

/// `Retry-After` as seconds or an HTTP date
/// (<https://www.rfc-editor.org/rfc/rfc9110#field.retry-after>).
pub(super) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let raw = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match raw.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
            (at - now).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

fn transport(endpoint: &'static str, e: reqwest::Error) -> Failure {
    // A refused connection never reached Google; anything later may have.
    let ambiguous = !e.is_connect();
    let error = if e.is_timeout() {
        ProcurementError::Timeout { endpoint }
    } else {
        ProcurementError::Unreachable {
            endpoint,
            message: error_chain(&e.without_url()),
        }
    };
    Failure {
        error,
        ambiguous,
        retry_after: None,
    }
}

/// Google's error body: `{"error": {"code", "message", "status",
/// "details"}}` (<https://cloud.google.com/apis/design/errors#http_mapping>).
#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBody {
    error: GoogleError,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GoogleError {
    message: Option<String>,
    status: Option<String>,
    details: Vec<serde_json::Value>,
}

/// The error a non-2xx reply means: by Google's status name first (it is
/// the precise one), else by the HTTP status.
pub(super) fn error_from_reply(
    endpoint: &'static str,
    status: u16,
    body: &[u8],
    token: &str,
) -> ProcurementError {
    let google = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_default();
    let message = google
        .message
        .as_deref()
        .and_then(|m| safe_text(m, &[token]));
    let google_status = google.status.as_deref().and_then(safe_code);
    let reason = google.details.iter().find_map(|d| {
        let is_info = d
            .get("@type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| t.ends_with("google.rpc.ErrorInfo"));
        is_info
            .then(|| d.get("reason").and_then(|r| r.as_str()).and_then(safe_code))
            .flatten()
    });
    use ProcurementError as E;
    match (status, google_status.as_deref()) {
        (404, _) | (_, Some("NOT_FOUND")) => E::NotFound { endpoint },
        (_, Some("FAILED_PRECONDITION")) => E::FailedPrecondition {
            endpoint,
            message,
            after_retry: false,
        },
        (429, _) | (_, Some("RESOURCE_EXHAUSTED")) => E::RateLimited {
            endpoint,
            retry_after: None,
        },
        (401, _) | (_, Some("UNAUTHENTICATED")) => E::Unauthenticated { endpoint, message },
        (403, _) | (_, Some("PERMISSION_DENIED")) => E::PermissionDenied {
            endpoint,
            reason,
            message,
        },
        (500..=599, _) => E::Unavailable { endpoint, status },
        (400, _) => E::InvalidArgument {
            endpoint,
            status,
            google_status,
            message,
        },
        _ => E::Status {
            endpoint,
            status,
            google_status,
            message,
        },
    }
}

/// Deserializes a reply. The error names the position (and a missing
/// field), never a value: serde_json's own message would quote it.
pub(super) fn decode<T: DeserializeOwned>(
    endpoint: &'static str,
    body: &[u8],
) -> Result<T, ProcurementError> {
    serde_json::from_slice(body).map_err(|e| ProcurementError::Decode {
        endpoint,
        message: describe_json_error(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marketplace::gcp::procurement::Entitlement;
    use reqwest::header::HeaderValue;

    #[test]
    fn googles_error_bodies_become_typed_errors() {
        let e = error_from_reply(
            "entitlements.approve",
            400,
            br#"{"error":{"code":400,"message":"Precondition check failed.","status":"FAILED_PRECONDITION"}}"#,
            "tok",
        );
        assert!(
            matches!(&e, ProcurementError::FailedPrecondition { message: Some(m), after_retry: false, .. } if m == "Precondition check failed."),
            "{e:?}"
        );
        assert!(!e.is_transient());
        let e = error_from_reply(
            "entitlements.get",
            400,
            br#"{"error":{"code":400,"message":"bad filter","status":"INVALID_ARGUMENT"}}"#,
            "tok",
        );
        assert_eq!(
            e.to_string(),
            "entitlements.get: Google found the request invalid (400 INVALID_ARGUMENT): bad filter"
        );
        let e = error_from_reply(
            "entitlements.get",
            403,
            br#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"IAM_PERMISSION_DENIED"}]}}"#,
            "tok",
        );
        assert_eq!(
            e.to_string(),
            "entitlements.get: permission denied by Google (403 IAM_PERMISSION_DENIED): The caller does not have permission"
        );
        assert!(matches!(
            error_from_reply("x", 404, b"<html>", "t"),
            ProcurementError::NotFound { .. }
        ));
        assert!(matches!(
            error_from_reply("x", 503, b"", "t"),
            ProcurementError::Unavailable { status: 503, .. }
        ));
        assert!(error_from_reply("x", 429, b"", "t").is_transient());
        // A message quoting our token is dropped, not echoed.
        let e = error_from_reply(
            "x",
            401,
            br#"{"error":{"code":401,"message":"bad token ya29.abc","status":"UNAUTHENTICATED"}}"#,
            "ya29.abc",
        );
        assert!(!e.to_string().contains("ya29"), "{e}");
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 01 Mar 2026 12:00:30 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn full_jitter_stays_under_the_exponential_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for attempt in 1..10 {
            let cap = (base * 2u32.pow(attempt - 1)).min(max);
            for _ in 0..50 {
                assert!(full_jitter(base, max, attempt) <= cap);
            }
        }
        assert!(full_jitter(base, max, u32::MAX) <= max);
    }

    #[test]
    fn decode_errors_name_the_spot_never_the_value() {
        let cases: [(&str, &str); 3] = [
            (
                r#"{"name":"providers/p/entitlements/e","state":["ya29.leaked"]}"#,
                "invalid type: sequence, expected a string at line 1 column 45",
            ),
            (
                r#"{"name":"providers/p/entitlements/e","createTime":12345678901}"#,
                "invalid type: integer, expected a string at line 1 column 61",
            ),
            (
                "<html>ya29.leaked</html>",
                "invalid JSON (expected value) at line 1 column 1",
            ),
        ];
        for (body, want) in cases {
            let err = decode::<Entitlement>("entitlements.get", body.as_bytes())
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                format!("entitlements.get: unexpected reply from Google: {want}")
            );
            assert!(
                !err.contains("ya29") && !err.contains("12345678901"),
                "{err}"
            );
        }
    }
}
