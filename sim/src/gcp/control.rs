//! The scenario API over HTTP, so another process (`tollgate fire gcp`
//! against `make dev`) can drive the stand-in the way a test drives
//! [`GcpSim`]. Not a Google API: these routes live under `/_sim` on the
//! stand-in's server and take and answer plain JSON.
//!
//! | route | body | does |
//! |---|---|---|
//! | `POST /_sim/orders` | `{"account","plan","private_offer"?}` | [`GcpSim::order`] / [`GcpSim::accept_private_offer`] → [`OrderSummary`] |
//! | `POST /_sim/entitlements/{id}/{step}` | `{"plan"}` for `request-plan-change`, `{"reason"}` for `cancel-now` | [`GcpSim::act`] (steps named as [`EntitlementStep::name`]) → `{"pushed":[...]}` |
//! | `POST /_sim/accounts/{id}/delete` | — | [`GcpSim::delete_account`] |
//! | `POST /_sim/signup-tokens` | `{"account"}` | `{"token"}`: [`GcpSim::signup_token`] |
//! | `POST /_sim/deliver` | — | [`GcpSim::deliver_queued`] |
//! | `GET /_sim/state` | — | `{"accounts":[Account],"entitlements":[Entitlement]}` as the Procurement API renders them |
//!
//! Errors: `{"error":"..."}` with 404 (unknown record), 409 (the state does
//! not allow the step) or 400.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::state::{account_json, entitlement_json};
use super::{EntitlementStep, GcpSim, Pushed, ScenarioError};
use crate::control_client::ControlClient;

/// One push, summarized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushOutcome {
    pub event_type: String,
    pub event_id: String,
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlement_id: Option<String>,
    /// The push endpoint's status, if it answered.
    #[serde(default)]
    pub status: Option<u16>,
    pub acked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The start of the endpoint's reply.
    #[serde(default)]
    pub reply: String,
}

impl From<&Pushed> for PushOutcome {
    fn from(p: &Pushed) -> Self {
        let n = &p.request.notification;
        Self {
            event_type: n.event_type.clone(),
            event_id: n.event_id.clone(),
            message_id: p.request.message_id.clone(),
            account_id: n.account.as_ref().map(|a| a.id.clone()),
            entitlement_id: n.entitlement.as_ref().map(|e| e.id.clone()),
            status: p.status,
            acked: p.acked(),
            error: p.error.clone(),
            reply: p.reply.clone(),
        }
    }
}

/// What `POST /_sim/orders` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub account_id: String,
    pub entitlement_id: String,
    pub pushed: Vec<PushOutcome>,
}

#[derive(Debug, Deserialize)]
struct OrderBody {
    account: String,
    plan: String,
    #[serde(default)]
    private_offer: bool,
}

#[derive(Debug, Default, Deserialize)]
struct StepBody {
    plan: Option<String>,
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    account: String,
}

pub(crate) fn router() -> Router<GcpSim> {
    Router::new()
        .route("/orders", post(order))
        .route("/entitlements/{id}/{step}", post(step))
        .route("/accounts/{id}/delete", post(delete_account))
        .route("/signup-tokens", post(signup_token))
        .route("/deliver", post(deliver))
        .route("/state", get(state))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn scenario_error(e: &ScenarioError) -> Response {
    let status = match e {
        ScenarioError::UnknownAccount(_) | ScenarioError::UnknownEntitlement(_) => {
            StatusCode::NOT_FOUND
        }
        ScenarioError::NotAllowed(_) => StatusCode::CONFLICT,
        ScenarioError::Invalid(_) => StatusCode::BAD_REQUEST,
    };
    error(status, &e.to_string())
}

fn pushed_json(pushed: &[Pushed]) -> Response {
    let outcomes: Vec<PushOutcome> = pushed.iter().map(PushOutcome::from).collect();
    axum::Json(json!({ "pushed": outcomes })).into_response()
}

/// Parses a JSON body, empty meaning `{}`.
fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Box<Response>> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &e.to_string())))
}

async fn order(State(sim): State<GcpSim>, bytes: axum::body::Bytes) -> Response {
    let b: OrderBody = match body(&bytes) {
        Ok(b) => b,
        Err(res) => return *res,
    };
    let placed = if b.private_offer {
        sim.accept_private_offer(&b.account, &b.plan).await
    } else {
        sim.order(&b.account, &b.plan).await
    };
    match placed {
        Ok(o) => axum::Json(OrderSummary {
            account_id: o.account_id,
            entitlement_id: o.entitlement_id,
            pushed: o.pushed.iter().map(PushOutcome::from).collect(),
        })
        .into_response(),
        Err(e) => scenario_error(&e),
    }
}

/// The step named `name`, with its argument from the body.
pub fn parse_step(
    name: &str,
    plan: Option<String>,
    reason: Option<String>,
) -> Result<EntitlementStep, String> {
    Ok(match name {
        "request-plan-change" => EntitlementStep::RequestPlanChange {
            plan: plan.ok_or("request-plan-change needs a plan")?,
        },
        "cancel-plan-change" => EntitlementStep::CancelPlanChange,
        "cancel" => EntitlementStep::Cancel,
        "revert-cancellation" => EntitlementStep::RevertCancellation,
        "end-term" => EntitlementStep::EndTerm,
        "end-offer" => EntitlementStep::EndOffer,
        "cancel-now" => EntitlementStep::CancelNow {
            reason: reason.unwrap_or_else(|| "user-cancelled".into()),
        },
        "delete" => EntitlementStep::Delete,
        other => {
            return Err(format!(
                "unknown step `{other}` (request-plan-change, cancel-plan-change, cancel, revert-cancellation, end-term, end-offer, cancel-now, delete)"
            ));
        }
    })
}

async fn step(
    State(sim): State<GcpSim>,
    Path((id, name)): Path<(String, String)>,
    bytes: axum::body::Bytes,
) -> Response {
    let b: StepBody = match body(&bytes) {
        Ok(b) => b,
        Err(res) => return *res,
    };
    let step = match parse_step(&name, b.plan, b.reason) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match sim.act(&id, step).await {
        Ok(pushed) => pushed_json(&pushed),
        Err(e) => scenario_error(&e),
    }
}

async fn delete_account(State(sim): State<GcpSim>, Path(id): Path<String>) -> Response {
    match sim.delete_account(&id).await {
        Ok(pushed) => pushed_json(&pushed),
        Err(e) => scenario_error(&e),
    }
}

async fn signup_token(State(sim): State<GcpSim>, bytes: axum::body::Bytes) -> Response {
    match body::<TokenBody>(&bytes) {
        Ok(b) => axum::Json(json!({ "token": sim.signup_token(&b.account) })).into_response(),
        Err(res) => *res,
    }
}

async fn deliver(State(sim): State<GcpSim>) -> Response {
    pushed_json(&sim.deliver_queued().await)
}

async fn state(State(sim): State<GcpSim>) -> Response {
    let s = sim.lock();
    let accounts: Vec<Value> = s
        .records
        .accounts
        .iter()
        .map(|a| account_json(&s.listing, a))
        .collect();
    let entitlements: Vec<Value> = s
        .records
        .entitlements
        .iter()
        .map(|e| entitlement_json(&s.listing, e))
        .collect();
    axum::Json(json!({ "accounts": accounts, "entitlements": entitlements })).into_response()
}

pub use crate::control_client::RemoteError;

/// A client of the `/_sim` routes of a running stand-in (its base URL).
#[derive(Debug, Clone)]
pub struct Remote(ControlClient);

impl Remote {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self(ControlClient::new("Google", base_url))
    }

    /// A POST (or, for `/state`, a GET) on `/_sim{path}`.
    async fn call(&self, path: &str, body: Option<Value>) -> Result<Value, RemoteError> {
        let method = if path == "/state" {
            reqwest::Method::GET
        } else {
            reqwest::Method::POST
        };
        self.0.call(method, path, body.as_ref()).await
    }

    fn outcomes(&self, value: &Value) -> Result<Vec<PushOutcome>, RemoteError> {
        self.0.read(value["pushed"].clone())
    }

    pub async fn order(
        &self,
        account: &str,
        plan: &str,
        private_offer: bool,
    ) -> Result<OrderSummary, RemoteError> {
        let v = self
            .call(
                "/orders",
                Some(json!({ "account": account, "plan": plan, "private_offer": private_offer })),
            )
            .await?;
        self.0.read(v)
    }

    pub async fn act(
        &self,
        entitlement_id: &str,
        step: &EntitlementStep,
    ) -> Result<Vec<PushOutcome>, RemoteError> {
        let body = match step {
            EntitlementStep::RequestPlanChange { plan } => json!({ "plan": plan }),
            EntitlementStep::CancelNow { reason } => json!({ "reason": reason }),
            _ => json!({}),
        };
        let path = format!("/entitlements/{entitlement_id}/{}", step.name());
        self.outcomes(&self.call(&path, Some(body)).await?)
    }

    pub async fn delete_account(&self, account: &str) -> Result<Vec<PushOutcome>, RemoteError> {
        self.outcomes(
            &self
                .call(&format!("/accounts/{account}/delete"), None)
                .await?,
        )
    }

    pub async fn signup_token(&self, account: &str) -> Result<String, RemoteError> {
        let v = self
            .call("/signup-tokens", Some(json!({ "account": account })))
            .await?;
        Ok(v["token"].as_str().unwrap_or("").to_owned())
    }

    pub async fn deliver_queued(&self) -> Result<Vec<PushOutcome>, RemoteError> {
        self.outcomes(&self.call("/deliver", None).await?)
    }

    /// `{"accounts":[...],"entitlements":[...]}` as the Procurement API renders them.
    pub async fn state(&self) -> Result<Value, RemoteError> {
        self.call("/state", None).await
    }
}
