//! Change notifications to the vendor's app, signed per the Standard
//! Webhooks specification (<https://www.standardwebhooks.com/>): what is
//! sent, how it is signed and verified, which endpoints want it, and when a
//! failed delivery is tried again. Pure: the sender (`tollgate::notify`)
//! does the I/O, `tollgate-client` verifies with the very same code.
//!
//! Signing: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! one entry per key (space-separated) while a secret is rotated; keys are
//! written `whsec_<base64>`. Verification accepts any listed `v1` signature
//! made with any of the receiver's keys, compared in constant time, and a
//! timestamp within [`TOLERANCE_SECONDS`] of the receiver's clock.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Catalog;
use crate::marketplace::signing::{hmac_sha256, tags_match};
use crate::model::{LogEntry, Status, Subscription};
use crate::wire::{Decision, SubscriptionView, decide_for};

/// Header carrying the message id (the same on every attempt).
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the attempt's Unix time in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// How a signing secret is written.
pub const SECRET_PREFIX: &str = "whsec_";
/// How far a timestamp may be from the receiver's clock (the
/// specification's recommendation), either way.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;
/// Suffix of the secret that still signs during a rotation: endpoint
/// secret `notify_acme` rotates through `notify_acme_previous`.
pub const PREVIOUS_SUFFIX: &str = "_previous";

/// A signing key, decoded from `whsec_<base64>`. Printing it shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// Why a secret is not a usable signing key. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a webhook secret must be `whsec_` followed by base64")]
    NotBase64,
    #[error("a webhook secret must not be empty")]
    Empty,
}

impl SigningKey {
    /// Reads `whsec_<base64>` (the prefix is optional, as in the
    /// specification's libraries).
    pub fn parse(secret: &str) -> Result<Self, KeyError> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        let bytes = BASE64
            .decode(encoded.trim())
            .map_err(|_| KeyError::NotBase64)?;
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self(bytes))
    }

    /// A key from raw bytes (at least one).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self(bytes))
    }

    /// The key as a secret is written: `whsec_<base64>`.
    pub fn to_secret_string(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.0))
    }

    fn tag(&self, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        hmac_sha256(
            &self.0,
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
        )
    }
}

/// The `webhook-signature` value for one message: a `v1,<base64>` entry
/// per key, space-separated (current key first).
pub fn sign(keys: &[SigningKey], id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    keys.iter()
        .map(|key| format!("v1,{}", BASE64.encode(key.tag(id, &timestamp, body))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a notification was refused by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no signing key to verify with")]
    NoKeys,
    #[error("missing or empty `{0}` header")]
    MissingHeader(&'static str),
    #[error("`webhook-timestamp` is not a Unix time in seconds")]
    BadTimestamp,
    #[error("`webhook-timestamp` is more than {TOLERANCE_SECONDS} s in the past")]
    TooOld,
    #[error("`webhook-timestamp` is more than {TOLERANCE_SECONDS} s in the future")]
    TooNew,
    #[error("no `v1` signature matches")]
    NoMatch,
}

/// Checks a notification: the timestamp within [`TOLERANCE_SECONDS`] of
/// `now`, then any `v1` signature of the header made with any of `keys`
/// over `{id}.{timestamp}.{body}` (constant-time comparison). Entries of
/// other versions are skipped, as the specification asks.
pub fn verify(
    keys: &[SigningKey],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), VerifyError> {
    if keys.is_empty() {
        return Err(VerifyError::NoKeys);
    }
    if id.is_empty() {
        return Err(VerifyError::MissingHeader(HEADER_ID));
    }
    if timestamp.is_empty() {
        return Err(VerifyError::MissingHeader(HEADER_TIMESTAMP));
    }
    if signatures.trim().is_empty() {
        return Err(VerifyError::MissingHeader(HEADER_SIGNATURE));
    }
    let sent: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    let age = now.timestamp().saturating_sub(sent);
    if age > TOLERANCE_SECONDS {
        return Err(VerifyError::TooOld);
    }
    if age < -TOLERANCE_SECONDS {
        return Err(VerifyError::TooNew);
    }
    let tags: Vec<[u8; 32]> = keys.iter().map(|k| k.tag(id, timestamp, body)).collect();
    for entry in signatures.split(' ') {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        let Ok(received) = BASE64.decode(encoded) else {
            continue;
        };
        // Every key is compared, so the time taken does not say which matched.
        let matched = tags
            .iter()
            .fold(false, |acc, tag| tags_match(tag, &received) | acc);
        if matched {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
}

/// `[notifications]` of `tollgate.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Where every applied change is sent; none: nothing is sent (the
    /// outbox is emptied without sending).
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// `[[notifications.endpoints]]`: one receiver of the vendor's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// A stable name, in dead-letter records and logs; defaults to the URL.
    #[serde(default)]
    pub name: Option<String>,
    pub url: String,
    /// The name, in the secrets source, of this endpoint's `whsec_` secret;
    /// `<secret>_previous`, when present, signs too (rotation).
    pub secret: String,
    /// Event types this endpoint wants ([`EventType`] names); empty: all.
    #[serde(default)]
    pub events: Vec<EventType>,
}

impl Endpoint {
    /// The configured name, else the URL without credentials, query or
    /// fragment (a name is logged; a URL may carry a token).
    pub fn name(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => redacted_url(&self.url),
        }
    }

    /// Whether the URL is `https://`, or `http://` to a loopback host (a
    /// local receiver): notifications carry customer data and are signed,
    /// not encrypted.
    pub fn secure_url(&self) -> bool {
        if self.url.starts_with("https://") {
            return true;
        }
        let Some(rest) = self.url.strip_prefix("http://") else {
            return false;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.split(':').next().unwrap_or_default(),
        };
        host == "localhost" || host == "::1" || host.starts_with("127.")
    }

    pub fn wants(&self, event: EventType) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }
}

/// `url` without user info, query or fragment.
fn redacted_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}{path}")
}

/// Exponential backoff with full jitter, per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts per endpoint before a dead letter (at least 1).
    pub max_attempts: u32,
    /// Upper bound of the wait before the second attempt; doubles each time.
    pub base_delay_seconds: u64,
    /// Upper bound of any single wait.
    pub max_delay_seconds: u64,
}

impl Default for RetryPolicy {
    /// 8 attempts; waits drawn from 0–30 s, 0–60 s, … capped at 30 min:
    /// at most about an hour from the first attempt to the last.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay_seconds: 30,
            max_delay_seconds: 30 * 60,
        }
    }
}

impl RetryPolicy {
    /// The wait after `attempts` failed attempts (≥ 1): a uniform draw
    /// (from `random`) in `[0, min(max, base·2^(attempts-1))]` seconds.
    pub fn backoff(&self, attempts: u32, random: u64) -> chrono::Duration {
        let doubling = 1u64 << attempts.saturating_sub(1).min(32);
        let cap = self
            .base_delay_seconds
            .saturating_mul(doubling)
            .min(self.max_delay_seconds);
        let millis = cap.saturating_mul(1000);
        let drawn = random % millis.saturating_add(1);
        chrono::Duration::milliseconds(i64::try_from(drawn).unwrap_or(i64::MAX))
    }

    /// Whether another attempt follows `attempts` failed ones.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts < self.max_attempts.max(1)
    }
}

/// What one attempt's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx.
    Delivered,
    /// A network failure, a timeout, 408, 429, 5xx, or a redirect (never
    /// followed: the signed request goes where it was configured to).
    Retry,
    /// Any other 4xx: the receiver refuses the message; a dead letter now.
    Refused,
}

/// Classifies an HTTP status (`None`: no answer at all).
pub fn verdict(status: Option<u16>) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        Some(408 | 429) | None => Verdict::Retry,
        Some(400..=499) => Verdict::Refused,
        Some(_) => Verdict::Retry,
    }
}

/// What kind of change a notification announces (its `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A subscription Tollgate had not seen: a purchase, an order.
    #[serde(rename = "subscription.created")]
    Created,
    /// Plan, seats, trial, billing or a pending change changed; or it runs
    /// again after a suspension or a pending cancellation was withdrawn.
    #[serde(rename = "subscription.updated")]
    Updated,
    /// Cancelled, entitled until `access_until`.
    #[serde(rename = "subscription.pending_cancellation")]
    PendingCancellation,
    #[serde(rename = "subscription.suspended")]
    Suspended,
    #[serde(rename = "subscription.cancelled")]
    Cancelled,
}

impl EventType {
    /// From the state before and after the change.
    pub fn of(before: Option<Status>, after: Status) -> Self {
        match (before, after) {
            (None, _) => EventType::Created,
            (Some(b), a) if b == a => EventType::Updated,
            (_, Status::Cancelled) => EventType::Cancelled,
            (_, Status::Suspended) => EventType::Suspended,
            (_, Status::PendingCancellation) => EventType::PendingCancellation,
            _ => EventType::Updated,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Created => "subscription.created",
            EventType::Updated => "subscription.updated",
            EventType::PendingCancellation => "subscription.pending_cancellation",
            EventType::Suspended => "subscription.suspended",
            EventType::Cancelled => "subscription.cancelled",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of a notification (the specification's `type`, `timestamp`,
/// `data` envelope).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the change was committed.
    pub timestamp: DateTime<Utc>,
    pub data: NotificationData,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationData {
    pub event: EventView,
    /// The subscription after the change, as `GET /v1/customers/…` shows it.
    pub subscription: SubscriptionView,
    /// What `/v1/check` answers for the customer and the subscription's
    /// product (no feature, no user) with this subscription, at
    /// `timestamp`.
    pub entitlement: Decision,
}

/// The marketplace event that made the change, as the log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    /// The marketplace's event id (or Tollgate's, e.g. `reconcile:…`).
    pub id: String,
    /// The marketplace's event name (`purchased`, `ENTITLEMENT_ACTIVE`, …).
    pub name: String,
    pub effective_at: DateTime<Utc>,
    pub status_before: Option<Status>,
    pub status_after: Option<Status>,
}

impl Notification {
    /// The notification of a committed change: `log` is its log entry,
    /// `state` the state it committed.
    pub fn new(catalog: &Catalog, log: &LogEntry, state: &Subscription) -> Self {
        let at = log.recorded_at;
        Self {
            event_type: EventType::of(log.status_before, state.status),
            timestamp: at,
            data: NotificationData {
                event: EventView {
                    id: log.event_id.clone(),
                    name: log.event.clone(),
                    effective_at: log.effective_at,
                    status_before: log.status_before,
                    status_after: log.status_after,
                },
                subscription: SubscriptionView::new(catalog, state, at),
                entitlement: decide_for(catalog, state, None, at),
            },
        }
    }
}

/// The message id of the change `log` records: the same for every attempt
/// and every sender, unique per log entry (`msg_` + 32 hex digits).
pub fn message_id(log: &LogEntry) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(log.subscription.to_string().as_bytes());
    hash.update(b"\n");
    hash.update(log.event_id.as_bytes());
    hash.update(b"\n");
    hash.update(log.recorded_at.to_rfc3339().as_bytes());
    let digest = hex::encode(hash.finalize());
    format!("msg_{}", digest.get(..32).unwrap_or(&digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_listed_twice_still_verifies() {
        // Every key is compared; one match is enough however many match.
        let k = key(b"the key");
        let ts = now().timestamp();
        let header = sign(std::slice::from_ref(&k), "msg_1", ts, b"{}");
        let keys = [k.clone(), k];
        assert_eq!(
            verify(&keys, "msg_1", &ts.to_string(), &header, b"{}", now()),
            Ok(())
        );
    }

    #[test]
    fn an_endpoint_wants_every_event_or_only_those_it_lists() {
        let mut endpoint = Endpoint {
            name: None,
            url: "https://app.example/hooks".into(),
            secret: "notify_app".into(),
            events: vec![],
        };
        assert!(endpoint.wants(EventType::Created));
        assert!(endpoint.wants(EventType::Cancelled));
        endpoint.events = vec![EventType::Cancelled, EventType::Suspended];
        assert!(endpoint.wants(EventType::Cancelled));
        assert!(endpoint.wants(EventType::Suspended));
        assert!(!endpoint.wants(EventType::Created));
        assert!(!endpoint.wants(EventType::Updated));
    }

    #[test]
    fn the_event_type_follows_the_status_change() {
        use Status::*;
        assert_eq!(EventType::of(None, Active), EventType::Created);
        // A change that keeps the status is an update, whatever the status.
        assert_eq!(
            EventType::of(Some(Suspended), Suspended),
            EventType::Updated
        );
        assert_eq!(
            EventType::of(Some(Cancelled), Cancelled),
            EventType::Updated
        );
        assert_eq!(
            EventType::of(Some(PendingCancellation), PendingCancellation),
            EventType::Updated
        );
        assert_eq!(EventType::of(Some(Active), Cancelled), EventType::Cancelled);
        assert_eq!(EventType::of(Some(Active), Suspended), EventType::Suspended);
        assert_eq!(
            EventType::of(Some(Active), PendingCancellation),
            EventType::PendingCancellation
        );
        assert_eq!(EventType::of(Some(Suspended), Active), EventType::Updated);
        assert_eq!(EventType::Cancelled.to_string(), "subscription.cancelled");
        assert_eq!(
            format!("{}", EventType::PendingCancellation),
            "subscription.pending_cancellation"
        );
    }

    #[test]
    fn the_message_id_is_stable_per_log_entry_and_unique_across_them() {
        let entry = LogEntry {
            subscription: crate::model::SubscriptionKey::new(
                crate::model::Marketplace::Github,
                "42".to_owned(),
            ),
            event_id: "d-1".into(),
            event: "purchased".into(),
            effective_at: now(),
            recorded_at: now(),
            disposition: crate::model::Disposition::Applied,
            note: String::new(),
            status_before: None,
            status_after: Some(Status::Active),
        };
        let id = message_id(&entry);
        assert_eq!(id, message_id(&entry.clone()));
        assert!(id.starts_with("msg_"), "{id}");
        let digits = id.trim_start_matches("msg_");
        assert_eq!(digits.len(), 32, "{id}");
        assert!(digits.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        let other = LogEntry {
            event_id: "d-2".into(),
            ..entry.clone()
        };
        assert_ne!(message_id(&other), id);
        let later = LogEntry {
            recorded_at: now() + chrono::Duration::seconds(1),
            ..entry.clone()
        };
        assert_ne!(message_id(&later), id);
        let elsewhere = LogEntry {
            subscription: crate::model::SubscriptionKey::new(
                crate::model::Marketplace::Github,
                "43".to_owned(),
            ),
            ..entry
        };
        assert_ne!(message_id(&elsewhere), id);
    }

    fn key(bytes: &[u8]) -> SigningKey {
        SigningKey::from_bytes(bytes.to_vec()).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    /// The specification's own example (standard-webhooks/spec,
    /// `spec/standard-webhooks.md`, "Signature scheme").
    #[test]
    fn signs_the_specification_example() {
        let k = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            std::slice::from_ref(&k),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(
            k.to_secret_string(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        );
    }

    #[test]
    fn verifies_any_of_two_signatures_with_any_key_within_five_minutes() {
        let (old, new) = (key(b"old key"), key(b"new key"));
        let ts = now().timestamp();
        let header = sign(&[new.clone(), old.clone()], "msg_1", ts, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        for keys in [vec![new.clone()], vec![old.clone()], vec![key(b"x"), old]] {
            let at = |s: &str| {
                verify(
                    &keys,
                    "msg_1",
                    &ts.to_string(),
                    &header,
                    b"{}",
                    now() + chrono::Duration::seconds(s.parse().unwrap()),
                )
            };
            assert_eq!(at("0"), Ok(()));
            assert_eq!(at("300"), Ok(()));
            assert_eq!(at("-300"), Ok(()));
            assert_eq!(at("301"), Err(VerifyError::TooOld));
            assert_eq!(at("-301"), Err(VerifyError::TooNew));
        }
        let only_new = [new];
        let check = |id: &str, body: &[u8], sigs: &str| {
            verify(&only_new, id, &ts.to_string(), sigs, body, now())
        };
        assert_eq!(check("msg_2", b"{}", &header), Err(VerifyError::NoMatch));
        assert_eq!(check("msg_1", b"{ }", &header), Err(VerifyError::NoMatch));
        assert_eq!(
            check("msg_1", b"{}", "v2,abc v1,!!"),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            check("msg_1", b"{}", " "),
            Err(VerifyError::MissingHeader(HEADER_SIGNATURE))
        );
        assert_eq!(
            check("", b"{}", &header),
            Err(VerifyError::MissingHeader(HEADER_ID))
        );
        assert_eq!(
            verify(&only_new, "msg_1", "12x", &header, b"{}", now()),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(&[], "msg_1", &ts.to_string(), &header, b"{}", now()),
            Err(VerifyError::NoKeys)
        );
        // A v1 entry for another timestamp does not pass for this one.
        let other = sign(&only_new, "msg_1", ts - 1, b"{}");
        assert_eq!(check("msg_1", b"{}", &other), Err(VerifyError::NoMatch));
    }

    #[test]
    fn secrets_need_base64_and_print_nothing() {
        assert_eq!(SigningKey::parse("whsec_!!!"), Err(KeyError::NotBase64));
        assert_eq!(SigningKey::parse("whsec_"), Err(KeyError::Empty));
        let k = SigningKey::parse("c2VjcmV0").unwrap();
        assert_eq!(k, key(b"secret"));
        assert_eq!(format!("{k:?}"), "SigningKey(***)");
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_full_jitter() {
        let p = RetryPolicy::default();
        assert!(p.backoff(1, u64::MAX) <= chrono::Duration::seconds(30));
        assert_eq!(p.backoff(1, 30_000), chrono::Duration::seconds(30));
        assert_eq!(p.backoff(2, 60_000), chrono::Duration::seconds(60));
        assert_eq!(p.backoff(3, 0), chrono::Duration::zero());
        assert_eq!(p.backoff(7, 1_800_000), chrono::Duration::seconds(1800));
        assert_eq!(p.backoff(60, 1_800_000), chrono::Duration::seconds(1800));
        // The longest possible schedule: every draw at its cap.
        let longest: i64 = (1..p.max_attempts)
            .map(|a| {
                let cap_ms = (30_000u64 << (a - 1)).min(1_800_000);
                p.backoff(a, cap_ms).num_seconds()
            })
            .sum();
        assert_eq!(longest, 30 + 60 + 120 + 240 + 480 + 960 + 1800);
        assert!(p.may_retry(7) && !p.may_retry(8));
    }

    #[test]
    fn only_2xx_delivers_and_only_plain_4xx_is_final() {
        assert_eq!(verdict(Some(204)), Verdict::Delivered);
        for s in [None, Some(408), Some(429), Some(500), Some(503), Some(302)] {
            assert_eq!(verdict(s), Verdict::Retry, "{s:?}");
        }
        for s in [400, 401, 404, 410, 422] {
            assert_eq!(verdict(Some(s)), Verdict::Refused, "{s}");
        }
    }

    #[test]
    fn an_unnamed_endpoint_is_named_by_its_url_without_secrets() {
        let endpoint = |url: &str| Endpoint {
            name: None,
            url: url.into(),
            secret: "s".into(),
            events: vec![],
        };
        assert_eq!(
            endpoint("https://u:p@app.example/hooks?token=x#f").name(),
            "https://app.example/hooks"
        );
        assert_eq!(
            endpoint("https://app.example").name(),
            "https://app.example"
        );
        for (url, secure) in [
            ("https://app.example/hooks", true),
            ("http://127.0.0.1:8080/hooks", true),
            ("http://localhost/hooks", true),
            ("http://[::1]:9/hooks", true),
            ("http://app.example/hooks", false),
            ("http://localhost.evil.example/hooks", false),
            ("http://127.0.0.1@evil.example/", false),
            ("ftp://app.example/", false),
        ] {
            assert_eq!(endpoint(url).secure_url(), secure, "{url}");
        }
    }

    #[test]
    fn event_types_follow_the_status_change() {
        use Status::*;
        assert_eq!(EventType::of(None, Active), EventType::Created);
        assert_eq!(EventType::of(Some(Active), Active), EventType::Updated);
        assert_eq!(EventType::of(Some(Trial), Active), EventType::Updated);
        assert_eq!(
            EventType::of(Some(Active), PendingCancellation),
            EventType::PendingCancellation
        );
        assert_eq!(EventType::of(Some(Active), Suspended), EventType::Suspended);
        assert_eq!(
            EventType::of(Some(Suspended), Cancelled),
            EventType::Cancelled
        );
        for t in [EventType::Created, EventType::Cancelled] {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
    }
}
