//! Q2's marketplace, as the vendor's extension sees it: the subscriptions
//! Q2 holds and the events it hands the extension, which relays each one,
//! signed (`Tollgate-Signature`), to Tollgate's `POST /q2`.
//! `tollgate fire q2` asks this stand-in to subscribe, update or cancel;
//! it relays the event with `q2_signing_secret`, as the example extension
//! does, and — as Q2 acts on the extension's answer — changes its
//! subscription only when Tollgate answered success, so what it holds and
//! what Tollgate holds always agree. Not a Q2 API: the
//! routes live under `/_sim` and take and answer plain JSON.
//!
//! | route | body | does |
//! |---|---|---|
//! | `GET /_sim/subscriptions` | — | every subscription ([`SubscriptionView`]) |
//! | `POST /_sim/events` | [`Q2Request`] | [`Q2Sim::fire`] → [`Q2Fired`] |
//!
//! Errors: `{"error":"..."}` with 409 (the subscription does not allow the
//! action, no relay URL) or 400.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::control_client::ControlClient;

use super::{
    Casing, EventType, SIGNATURE_HEADER, Subscriber, SubscriptionEvent, new_subscription_id, sign,
};

/// The edition a first order takes unless one is named.
pub const DEFAULT_EDITION: &str = "PREMIUM";
/// The extension waits for Tollgate this long.
const RELAY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// What `POST /_sim/events` takes. `subscription` absent: for `subscribe`,
/// the user's live subscription of the product if any, else a new one;
/// for `update` and `cancel`, the user's only live one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Q2Request {
    /// `subscribe`, `update` or `cancel` (the extension's handler).
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    pub fi_name: String,
    pub user_id: u64,
    pub product_identifier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u32>,
    /// `MONTHLY` or `YEARLY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<String>,
    /// `snake`, `camel` or `bare`: how the relay writes the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub casing: Option<String>,
}

/// A subscription as Q2 holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionView {
    pub subscription_id: String,
    pub fi_name: String,
    pub user_id: u64,
    pub product_identifier: String,
    pub edition: Option<String>,
    pub users: u32,
    pub pricing: String,
    /// `ACTIVE` or `CANCELLED`.
    pub status: String,
}

/// What Tollgate answered the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayOutcome {
    pub url: String,
    pub status: Option<u16>,
    pub reply: String,
    pub error: Option<String>,
}

impl RelayOutcome {
    /// Tollgate answered 2xx with `"success": true`.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
            && serde_json::from_str::<serde_json::Value>(&self.reply)
                .is_ok_and(|v| v["success"] == true)
    }
}

/// What one action did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Q2Fired {
    /// `SUBSCRIPTION_ORDER`, `SUBSCRIPTION_CHANGE` or `SUBSCRIPTION_CANCEL`.
    pub event_type: String,
    /// The customer id apps check: `<institution>:<user>`.
    pub customer_id: String,
    pub previous: Option<SubscriptionView>,
    /// The subscription as asked (what Q2 holds now if the relay succeeded).
    pub subscription: SubscriptionView,
    pub relay: RelayOutcome,
}

#[derive(Debug, thiserror::Error)]
pub enum Q2Error {
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the Q2 stand-in has no relay URL to send to (`tollgate dev` sets purchase-webhook's /q2)"
    )]
    NoRelay,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[derive(Clone)]
struct Relay {
    url: String,
    secret: Vec<u8>,
}

#[derive(Default)]
struct Q2State {
    subscriptions: BTreeMap<String, SubscriptionView>,
    relay: Option<Relay>,
}

/// The Q2 stand-in's state; cheap to clone, every clone shares it.
#[derive(Clone, Default)]
pub struct Q2Sim {
    state: Arc<Mutex<Q2State>>,
}

impl Q2Sim {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Q2State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Relays events to `url` (purchase-webhook's `/q2`), signed with `secret`.
    pub fn set_relay(&self, url: impl Into<String>, secret: impl Into<Vec<u8>>) {
        self.lock().relay = Some(Relay {
            url: url.into(),
            secret: secret.into(),
        });
    }

    pub fn subscriptions(&self) -> Vec<SubscriptionView> {
        self.lock().subscriptions.values().cloned().collect()
    }

    /// Changes the subscription as `req` asks and relays the event.
    pub async fn fire(&self, req: &Q2Request) -> Result<Q2Fired, Q2Error> {
        let event_type = match req.action.as_str() {
            "subscribe" => EventType::Order,
            "update" => EventType::Change,
            "cancel" => EventType::Cancel,
            other => {
                return Err(Q2Error::Invalid(format!(
                    "unknown action `{other}` (subscribe, update, cancel)"
                )));
            }
        };
        let casing = match req.casing.as_deref() {
            None | Some("snake") => Casing::Snake,
            Some("camel") => Casing::Camel,
            Some("bare") => Casing::Bare,
            Some(other) => {
                return Err(Q2Error::Invalid(format!(
                    "unknown casing `{other}` (snake, camel, bare)"
                )));
            }
        };
        if req.users == Some(0) {
            return Err(Q2Error::Invalid("users: at least 1".into()));
        }
        let now = Utc::now();
        let (relay, previous, after) = {
            let s = self.lock();
            let relay = s.relay.clone().ok_or(Q2Error::NoRelay)?;
            let live: Vec<&SubscriptionView> = s
                .subscriptions
                .values()
                .filter(|v| {
                    v.fi_name == req.fi_name
                        && v.user_id == req.user_id
                        && v.product_identifier == req.product_identifier
                        && v.status == "ACTIVE"
                })
                .collect();
            let who = format!(
                "user {} of {} ({})",
                req.user_id, req.fi_name, req.product_identifier
            );
            let id = match (&req.subscription, event_type, &live[..]) {
                (Some(id), _, _) => id.clone(),
                (None, EventType::Order, [one]) => one.subscription_id.clone(),
                (None, EventType::Order, _) => new_subscription_id(),
                (None, _, [one]) => one.subscription_id.clone(),
                (None, _, []) => {
                    return Err(Q2Error::NotAllowed(format!(
                        "{who} has no live subscription at Q2: `subscribe` first"
                    )));
                }
                (None, _, several) => {
                    return Err(Q2Error::NotAllowed(format!(
                        "{who} has {} live subscriptions ({}): name one",
                        several.len(),
                        several
                            .iter()
                            .map(|v| v.subscription_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            };
            let previous = s.subscriptions.get(&id).cloned();
            if event_type == EventType::Change
                && req.edition.is_none()
                && req.users.is_none()
                && req.pricing.is_none()
            {
                return Err(Q2Error::Invalid(
                    "nothing changes: name the edition, the users or the pricing".into(),
                ));
            }
            let base = previous.clone();
            let edition = match event_type {
                EventType::Cancel => base.as_ref().and_then(|b| b.edition.clone()),
                EventType::Order => req
                    .edition
                    .clone()
                    .or(base.as_ref().and_then(|b| b.edition.clone()))
                    .or(Some(DEFAULT_EDITION.to_owned())),
                EventType::Change => req
                    .edition
                    .clone()
                    .or(base.as_ref().and_then(|b| b.edition.clone())),
            };
            let after = SubscriptionView {
                subscription_id: id.clone(),
                fi_name: req.fi_name.clone(),
                user_id: req.user_id,
                product_identifier: req.product_identifier.clone(),
                edition,
                users: req.users.or(base.as_ref().map(|b| b.users)).unwrap_or(1),
                pricing: req
                    .pricing
                    .clone()
                    .or(base.as_ref().map(|b| b.pricing.clone()))
                    .unwrap_or_else(|| "MONTHLY".to_owned()),
                status: if event_type == EventType::Cancel {
                    "CANCELLED".to_owned()
                } else {
                    "ACTIVE".to_owned()
                },
            };
            (relay, previous, after)
        };
        let subscriber = Subscriber {
            fi_name: after.fi_name.clone(),
            user_id: after.user_id,
            ..Subscriber::demo()
        };
        let mut event = SubscriptionEvent::new(
            event_type,
            &after.subscription_id,
            subscriber,
            &after.product_identifier,
            now,
        )
        .with_users(after.users)
        .with_pricing(&after.pricing)
        .with_casing(casing);
        // A cancel names no edition; orders and changes carry the one now held.
        if event_type != EventType::Cancel
            && let Some(edition) = &after.edition
        {
            event = event.with_edition(edition);
        }
        let relay = send(&relay, &event).await;
        // Q2 acts on the extension's answer: only a success changes the
        // subscription (a refused order is not placed, a refused cancel
        // leaves it running).
        if relay.succeeded() {
            self.lock()
                .subscriptions
                .insert(after.subscription_id.clone(), after.clone());
        }
        Ok(Q2Fired {
            event_type: event_type.as_str().to_owned(),
            customer_id: event.customer_id(),
            previous,
            subscription: after,
            relay,
        })
    }

    /// Serves `/_sim` on `addr`.
    pub async fn start_on(&self, addr: SocketAddr) -> Result<Running, Q2Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Q2Error::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| Q2Error::Bind { addr, source })?;
        let app = Router::new()
            .nest("/_sim", router())
            .with_state(self.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "Q2 stand-in stopped");
            }
        });
        Ok(Running {
            base_url: format!("http://{bound}"),
            task,
        })
    }
}

/// The running stand-in; dropping this stops it.
pub struct Running {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn send(relay: &Relay, event: &SubscriptionEvent) -> RelayOutcome {
    let body = event.body();
    let signature = sign(&relay.secret, Utc::now().timestamp(), &body);
    let posted = crate::control_client::post_signed(
        &relay.url,
        vec![
            ("content-type", "application/json".to_owned()),
            (SIGNATURE_HEADER, signature),
        ],
        body,
        RELAY_TIMEOUT,
    )
    .await;
    RelayOutcome {
        url: relay.url.clone(),
        status: posted.status,
        reply: posted.reply,
        error: posted.error,
    }
}

fn router() -> Router<Q2Sim> {
    Router::new()
        .route("/subscriptions", get(subscriptions))
        .route("/events", post(events))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn subscriptions(State(sim): State<Q2Sim>) -> Response {
    axum::Json(json!({ "subscriptions": sim.subscriptions() })).into_response()
}

async fn events(State(sim): State<Q2Sim>, bytes: axum::body::Bytes) -> Response {
    let req: Q2Request = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match sim.fire(&req).await {
        Ok(fired) => axum::Json(fired).into_response(),
        Err(e @ (Q2Error::NotAllowed(_) | Q2Error::NoRelay)) => {
            error(StatusCode::CONFLICT, &e.to_string())
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

pub use crate::control_client::RemoteError;

/// A client of a running Q2 stand-in's `/_sim` routes.
#[derive(Debug, Clone)]
pub struct Remote(ControlClient);

impl Remote {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self(ControlClient::new("Q2", base_url))
    }

    pub async fn fire(&self, req: &Q2Request) -> Result<Q2Fired, RemoteError> {
        let v = self
            .0
            .call(reqwest::Method::POST, "/events", Some(req))
            .await?;
        self.0.read(v)
    }
}
