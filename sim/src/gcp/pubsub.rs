//! Pub/Sub push: how Marketplace's notifications reach the vendor. Each
//! change the stand-in makes is published to an outbox; a flush POSTs every
//! queued message to the push endpoint, one at a time and in order, in
//! Pub/Sub's wrapped format, with a Google-signed OIDC token, and waits for
//! the answer.
//!
//! The request follows <https://cloud.google.com/pubsub/docs/push> and
//! <https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions>:
//!
//! ```text
//! POST <endpoint>
//! Content-Type: application/json
//! Authorization: Bearer <ID token: iss accounts.google.com, aud, email, email_verified>
//! {"message":{"attributes":{},"data":"<base64 of the notification>",
//!   "messageId":"…","message_id":"…","publishTime":"…","publish_time":"…"},
//!  "subscription":"projects/…/subscriptions/…"}
//! ```
//!
//! 102, 200, 201, 202 and 204 acknowledge; any other answer (or none) is a
//! negative acknowledgement, and the message stays queued for the next
//! flush, as Pub/Sub redelivers it (same `messageId`, fresh token).

use std::time::Duration as StdDuration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::ids::numeric;
use super::state::Notification;

/// Pub/Sub push's `User-Agent`.
pub const PUSH_USER_AGENT: &str =
    "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)";

/// At most this many messages go out in one flush (a guard against a
/// receiver whose every answer publishes another message).
const MAX_PER_FLUSH: usize = 1000;

/// Where and how the push subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushConfig {
    /// The push endpoint URL (Tollgate's pubsub-push function).
    pub endpoint: String,
    /// `aud` of the OIDC token; Pub/Sub defaults it to the endpoint URL.
    pub audience: String,
    /// `projects/{project}/subscriptions/{name}`; empty: the listing
    /// project's `tollgate-marketplace`.
    pub subscription: String,
    /// How long a push may take before it counts as unanswered (the
    /// subscription's ack deadline, at most 600 s on Pub/Sub).
    pub ack_deadline: StdDuration,
}

impl PushConfig {
    pub fn new(endpoint: impl Into<String>) -> Self {
        let endpoint = endpoint.into();
        Self {
            audience: endpoint.clone(),
            endpoint,
            subscription: String::new(),
            ack_deadline: StdDuration::from_secs(60),
        }
    }

    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    pub fn with_subscription(mut self, subscription: impl Into<String>) -> Self {
        self.subscription = subscription.into();
        self
    }

    pub fn with_ack_deadline(mut self, deadline: StdDuration) -> Self {
        self.ack_deadline = deadline;
        self
    }
}

/// A published message waiting in the outbox.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub notification: Notification,
    pub message_id: String,
    pub publish_time: DateTime<Utc>,
}

impl Queued {
    pub fn new(notification: Notification, now: DateTime<Utc>) -> Self {
        Self {
            notification,
            message_id: numeric(16),
            publish_time: now,
        }
    }
}

/// One push request, exactly as it is (or would be) sent. Tests may change
/// any field — another token, a duplicate, an edited body — and send it
/// with [`super::GcpSim::deliver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRequest {
    pub endpoint: String,
    /// The `Authorization` header value (`Bearer <ID token>`); `None` sends
    /// none, as a subscription without authentication would.
    pub authorization: Option<String>,
    /// The JSON body, byte for byte.
    pub body: Vec<u8>,
    pub message_id: String,
    /// What `message.data` decodes to.
    pub notification: Notification,
    pub(crate) ack_deadline: StdDuration,
}

impl PushRequest {
    /// The body as JSON.
    pub fn envelope(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The bare token of the `Authorization` header.
    pub fn token(&self) -> Option<&str> {
        self.authorization.as_deref()?.strip_prefix("Bearer ")
    }
}

/// The wrapped push body of one message.
pub(crate) fn envelope(q: &Queued, subscription: &str) -> Value {
    let data = STANDARD.encode(serde_json::to_vec(&q.notification).unwrap_or_default());
    let time = q.publish_time.to_rfc3339_opts(SecondsFormat::Millis, true);
    json!({
        "message": {
            "attributes": {},
            "data": data,
            "messageId": q.message_id,
            "message_id": q.message_id,
            "publishTime": time,
            "publish_time": time,
        },
        "subscription": subscription,
    })
}

/// What came of one push.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub request: PushRequest,
    /// The endpoint's status, if it answered.
    pub status: Option<u16>,
    /// The start of its reply body.
    pub reply: String,
    /// Why nothing was answered (connection refused, deadline passed).
    pub error: Option<String>,
}

impl Pushed {
    /// Whether Pub/Sub would take the answer as an acknowledgement.
    pub fn acked(&self) -> bool {
        matches!(self.status, Some(102 | 200 | 201 | 202 | 204))
    }

    pub fn event_type(&self) -> &str {
        &self.request.notification.event_type
    }
}

/// Sends one push request and waits for the answer.
pub(crate) async fn send(http: &reqwest::Client, request: PushRequest) -> Pushed {
    if request.endpoint.is_empty() {
        return Pushed {
            request,
            status: None,
            reply: String::new(),
            error: Some("no push endpoint is configured".into()),
        };
    }
    let mut builder = http
        .post(&request.endpoint)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, PUSH_USER_AGENT)
        .header(reqwest::header::FROM, "noreply@google.com")
        .timeout(request.ack_deadline)
        .body(request.body.clone());
    if let Some(auth) = &request.authorization {
        builder = builder.header(reqwest::header::AUTHORIZATION, auth);
    }
    match builder.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let text = res.text().await.unwrap_or_default();
            let mut end = text.len().min(2048);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            Pushed {
                request,
                status: Some(status),
                reply: text[..end].to_owned(),
                error: None,
            }
        }
        Err(e) => Pushed {
            request,
            status: None,
            reply: String::new(),
            error: Some(e.to_string()),
        },
    }
}

pub(crate) const fn max_per_flush() -> usize {
    MAX_PER_FLUSH
}
