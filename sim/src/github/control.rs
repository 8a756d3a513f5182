//! The GitHub stand-in as the marketplace: `tollgate fire github` asks it to
//! change an account's purchase, and it does what GitHub does — changes its
//! own record (what `GET /user/marketplace_purchases` and
//! `/marketplace_listing/...` then report, so the sign-in page and
//! reconciliation read the same thing) and delivers the
//! `marketplace_purchase` webhook, signed with the listing's webhook secret
//! (`X-Hub-Signature-256`), to the URL set with
//! [`GithubSim::set_webhook`]. Not a GitHub API: the routes live under
//! `/_sim` on the github.com stand-in and take and answer plain JSON.
//!
//! | route | body | does |
//! |---|---|---|
//! | `GET /_sim/purchases/{account}` | — | the account's purchase ([`PurchaseView`]); 404 without one |
//! | `POST /_sim/purchases/{account}/{action}` | [`FireRequest`] | [`GithubSim::fire`] → [`Fired`] |
//!
//! Each action starts from the account's purchase as the stand-in holds it
//! and changes only what the request names:
//!
//! - `purchased`: a new purchase of `plan` (default: the current or last
//!   one's plan and units); `trial` starts a 14-day free trial. An unknown
//!   account is created (an organization the signed-in user belongs to, or
//!   with `personal` that user's own account).
//! - `changed`: `plan`/`units` now; with neither, the pending change
//!   applies (the cycle ended).
//! - `pending_change`: `plan`/`units` at the end of the cycle; the same
//!   plan and units is a pending cancellation.
//! - `pending_change_cancelled`: the pending change is withdrawn.
//! - `cancelled`: a trial or free plan ends at once. A paid plan keeps
//!   access to the end of the cycle: GitHub tells the vendor with a
//!   `pending_change` back to the same purchase, and sends `cancelled` when
//!   the cycle ends — which `cancelled` again, or `now`, does today.
//!
//! Errors: `{"error":"..."}` with 404 (no such account), 409 (the purchase
//! does not allow the action, no webhook URL) or 400.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::GithubSim;
use super::state::{Org, PendingChange, Plan, PriceModel, Purchase, State as SimState, User};
use super::webhook::{Account, Action, PurchaseEvent};
use crate::control_client::{ControlClient, NO_BODY};

/// GitHub's free trials last 14 days.
pub const TRIAL_DAYS: i64 = 14;
/// A monthly cycle.
const CYCLE_DAYS: i64 = 30;
/// GitHub gives up on a delivery after 10 s; wait a little longer so a slow
/// answer is reported as what it is.
const DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Where the listing's webhook goes and the secret it is signed with.
#[derive(Clone)]
pub(crate) struct Webhook {
    pub url: String,
    pub secret: Vec<u8>,
}

/// What `POST /_sim/purchases/{account}/{action}` takes: only what changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FireRequest {
    /// The plan after the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<u64>,
    /// Seats of a per-unit plan after the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<u64>,
    /// `purchased`: a 14-day free trial.
    #[serde(default)]
    pub trial: bool,
    /// `cancelled`: now, not at the end of the cycle.
    #[serde(default)]
    pub now: bool,
    /// The event's `effective_date` instead of the one the action implies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_date: Option<NaiveDate>,
    /// A new account's login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// A new account is a user's personal account (else an organization).
    #[serde(default)]
    pub personal: bool,
}

/// A pending change, as the stand-in holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingView {
    pub plan_id: u64,
    pub plan_name: String,
    pub unit_count: Option<u64>,
    /// `YYYY-MM-DD`.
    pub effective_date: String,
    /// The same plan and units: a pending cancellation.
    pub cancellation: bool,
}

/// An account's purchase, as the stand-in holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseView {
    pub account_id: u64,
    pub login: String,
    /// `Organization` or `User`.
    pub account_type: String,
    pub plan_id: u64,
    pub plan_name: String,
    /// `FREE`, `FLAT_RATE` or `PER_UNIT`.
    pub price_model: String,
    pub unit_count: Option<u64>,
    pub on_free_trial: bool,
    /// `YYYY-MM-DD`.
    pub free_trial_ends_on: Option<String>,
    /// `YYYY-MM-DD`.
    pub next_billing_date: Option<String>,
    pub billing_cycle: Option<String>,
    pub pending_change: Option<PendingView>,
}

/// What the webhook endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookOutcome {
    pub url: String,
    /// The endpoint's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Its reply (the start of it).
    pub reply: String,
    /// Why there is no answer.
    pub error: Option<String>,
}

/// What one action did: the delivery sent and the purchase before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    /// The action asked for.
    pub asked: String,
    /// The `action` of the delivery GitHub sent for it.
    pub action: String,
    pub delivery_id: String,
    /// `YYYY-MM-DD`.
    pub effective_date: String,
    /// What the marketplace did, in one sentence.
    pub note: String,
    pub previous: Option<PurchaseView>,
    /// `None`: the purchase ended.
    pub purchase: Option<PurchaseView>,
    pub webhook: WebhookOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("the GitHub stand-in has no account {0}")]
    UnknownAccount(u64),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the GitHub stand-in has no webhook URL to deliver to (`tollgate dev` sets purchase-webhook's)"
    )]
    NoWebhook,
}

impl ControlError {
    fn status(&self) -> StatusCode {
        match self {
            ControlError::UnknownAccount(_) => StatusCode::NOT_FOUND,
            ControlError::NotAllowed(_) | ControlError::NoWebhook => StatusCode::CONFLICT,
            ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Midnight UTC of `t`'s day.
fn start_of_day(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&t.date_naive().and_time(NaiveTime::MIN))
}

fn day(t: DateTime<Utc>) -> String {
    t.date_naive().to_string()
}

fn plan_of(s: &SimState, id: u64) -> Plan {
    s.plans
        .get(&id)
        .cloned()
        .unwrap_or_else(|| Plan::new(id, 0, format!("Plan {id}"), PriceModel::FlatRate))
}

fn account_of(s: &SimState, id: u64) -> Option<Account> {
    if let Some(o) = s.orgs.get(&id) {
        return Some(Account::Org(o.clone()));
    }
    s.users.get(&id).cloned().map(Account::User)
}

/// Whether `change` takes the purchase back to itself: a pending cancellation.
fn is_cancellation(p: &Purchase, change: &PendingChange) -> bool {
    change.plan_id == p.plan_id && change.unit_count == p.unit_count
}

pub(crate) fn view(s: &SimState, p: &Purchase) -> PurchaseView {
    let plan = plan_of(s, p.plan_id);
    let (login, account_type) = match account_of(s, p.account_id) {
        Some(Account::Org(o)) => (o.login, "Organization"),
        Some(Account::User(u)) => (u.login, "User"),
        None => (format!("account {}", p.account_id), "Organization"),
    };
    PurchaseView {
        account_id: p.account_id,
        login,
        account_type: account_type.to_owned(),
        plan_id: p.plan_id,
        plan_name: plan.name,
        price_model: plan.price_model.as_str().to_owned(),
        unit_count: p.unit_count,
        on_free_trial: p.on_free_trial,
        free_trial_ends_on: p.free_trial_ends_on.map(day),
        next_billing_date: p.next_billing_date.map(day),
        billing_cycle: p.billing_cycle.clone(),
        pending_change: p.pending_change.as_ref().map(|c| PendingView {
            plan_id: c.plan_id,
            plan_name: plan_of(s, c.plan_id).name,
            unit_count: c.unit_count,
            effective_date: day(c.effective_date),
            cancellation: is_cancellation(p, c),
        }),
    }
}

/// The purchase `base` moved to `plan` with `units` (a per-unit plan keeps
/// or gets seats, other plans have none; a plan without a free trial ends
/// the trial; a free plan has no billing).
fn moved(base: &Purchase, plan: &Plan, units: Option<u64>, today: DateTime<Utc>) -> Purchase {
    let mut p = base.clone();
    p.plan_id = plan.id;
    p.pending_change = None;
    p.unit_count = match plan.price_model {
        PriceModel::PerUnit => Some(units.or(base.unit_count).unwrap_or(1)),
        _ => None,
    };
    if !plan.has_free_trial {
        p.on_free_trial = false;
        p.free_trial_ends_on = None;
    }
    match plan.price_model {
        PriceModel::Free => {
            p.billing_cycle = None;
            p.next_billing_date = None;
        }
        _ if p.billing_cycle.is_none() || p.next_billing_date.is_none() => {
            p.billing_cycle = Some("monthly".to_owned());
            p.next_billing_date = Some(today + Duration::days(CYCLE_DAYS));
        }
        _ => {}
    }
    p
}

/// What an action will do, decided under the lock, applied by [`GithubSim::fire`].
struct Prepared {
    event: PurchaseEvent,
    /// The account's purchase afterwards (`None`: removed).
    after: Option<Purchase>,
    before: Option<Purchase>,
    note: String,
    new_account: Option<Account>,
}

fn prepare(
    s: &SimState,
    account_id: u64,
    asked: Action,
    req: &FireRequest,
    now: DateTime<Utc>,
) -> Result<Prepared, ControlError> {
    let today = start_of_day(now);
    let chosen = req
        .effective_date
        .map(|d| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)));
    if let Some(0) = req.units {
        return Err(ControlError::Invalid("units: at least 1".into()));
    }
    let (account, new_account) = match account_of(s, account_id) {
        Some(a) => (a, None),
        None if asked == Action::Purchased => {
            let login = req
                .login
                .clone()
                .unwrap_or_else(|| format!("account-{account_id}"));
            let a = if req.personal {
                Account::User(User::new(account_id, login))
            } else {
                let mut org = Org::new(account_id, &login)
                    .with_billing_email(format!("billing@{login}.example"));
                if let Some(u) = s.approving_user() {
                    org = org.with_member(u);
                }
                Account::Org(org)
            };
            (a.clone(), Some(a))
        }
        None => return Err(ControlError::UnknownAccount(account_id)),
    };
    let sender = match &account {
        Account::User(u) => u.clone(),
        Account::Org(_) => s
            .approving_user()
            .and_then(|id| s.users.get(&id).cloned())
            .ok_or_else(|| {
                ControlError::NotAllowed(
                    "the GitHub stand-in has no user to act for the organization".into(),
                )
            })?,
    };
    let current = s.purchases.get(&account_id).cloned();
    let need_current = || {
        current.clone().ok_or_else(|| {
            ControlError::NotAllowed(format!(
                "account {account_id} ({}) has no purchase: `purchased` first",
                account.login()
            ))
        })
    };
    let event = |action: Action, plan: &Plan, p: &Purchase| {
        PurchaseEvent::new(
            action,
            sender.clone(),
            account.clone(),
            plan.clone(),
            p.clone(),
        )
        .map_err(|e| ControlError::Invalid(e.to_string()))
    };
    let with_previous = |e: PurchaseEvent, prev: &Purchase| {
        e.with_previous(plan_of(s, prev.plan_id), strip(prev))
            .map_err(|e| ControlError::Invalid(e.to_string()))
    };

    let (event, after, note) = match asked {
        Action::Purchased => {
            let base = current
                .clone()
                .or_else(|| s.ended.get(&account_id).cloned());
            let plan_id = req
                .plan
                .or(base.as_ref().map(|b| b.plan_id))
                .ok_or_else(|| {
                    ControlError::Invalid(format!(
                        "account {account_id} never had a purchase: name the plan"
                    ))
                })?;
            let plan = plan_of(s, plan_id);
            if req.trial && !plan.has_free_trial {
                return Err(ControlError::Invalid(format!(
                    "plan {} ({}) has no free trial on the listing",
                    plan.id, plan.name
                )));
            }
            let start = chosen.unwrap_or(today);
            let mut p = Purchase::new(account_id, plan.id)
                .with_next_billing_date(start + Duration::days(CYCLE_DAYS))
                .with_updated_at(now);
            match plan.price_model {
                PriceModel::PerUnit => {
                    let units = req
                        .units
                        .or(base.as_ref().and_then(|b| b.unit_count))
                        .unwrap_or(1);
                    p = p.with_units(units);
                }
                PriceModel::Free => p = p.unbilled(),
                PriceModel::FlatRate => {}
            }
            if req.trial {
                p = p.on_trial_until(start + Duration::days(TRIAL_DAYS));
            }
            let note = format!(
                "{} bought {}{}{}",
                account.login(),
                plan.name,
                units_text(p.unit_count),
                if req.trial {
                    format!(
                        ", on a free trial until {}",
                        day(start + Duration::days(TRIAL_DAYS))
                    )
                } else {
                    String::new()
                }
            );
            (
                event(Action::Purchased, &plan, &p)?.effective_on(start),
                Some(p),
                note,
            )
        }
        Action::Changed => {
            let cur = need_current()?;
            let (plan_id, units) = match (req.plan, req.units, &cur.pending_change) {
                (None, None, Some(c)) if is_cancellation(&cur, c) => {
                    return Err(ControlError::NotAllowed(format!(
                        "a cancellation is pending on {}: `cancelled` ends the purchase, `pending_change_cancelled` keeps it",
                        day(c.effective_date)
                    )));
                }
                // The cycle ended: the pending change applies.
                (None, None, Some(c)) => (c.plan_id, c.unit_count),
                (None, None, None) => {
                    return Err(ControlError::Invalid(
                        "nothing changes: name the plan or the units".into(),
                    ));
                }
                (plan, units, _) => (plan.unwrap_or(cur.plan_id), units),
            };
            let plan = plan_of(s, plan_id);
            let mut p = moved(&cur, &plan, units, today);
            p.updated_at = now;
            let note = format!(
                "{} changed from {}{} to {}{}",
                account.login(),
                plan_of(s, cur.plan_id).name,
                units_text(cur.unit_count),
                plan.name,
                units_text(p.unit_count)
            );
            let e = with_previous(event(Action::Changed, &plan, &p)?, &cur)?;
            (e.effective_on(chosen.unwrap_or(today)), Some(p), note)
        }
        Action::PendingChange => {
            let cur = need_current()?;
            let plan = plan_of(s, req.plan.unwrap_or(cur.plan_id));
            let target = moved(&cur, &plan, req.units, today);
            let at = chosen.unwrap_or_else(|| cycle_end(&cur, today));
            let change = PendingChange {
                id: s.next_change_id,
                plan_id: target.plan_id,
                unit_count: target.unit_count,
                effective_date: at,
            };
            let cancel = is_cancellation(&cur, &change);
            let mut p = cur.clone();
            p.pending_change = Some(change);
            p.updated_at = now;
            let note = if cancel {
                format!(
                    "{} cancels {}: access until {} (a pending cancellation)",
                    account.login(),
                    plan_of(s, cur.plan_id).name,
                    day(at)
                )
            } else {
                format!(
                    "{} moves to {}{} on {}",
                    account.login(),
                    plan.name,
                    units_text(target.unit_count),
                    day(at)
                )
            };
            let e = with_previous(event(Action::PendingChange, &plan, &strip(&target))?, &cur)?;
            (e.effective_on(at), Some(p), note)
        }
        Action::PendingChangeCancelled => {
            let cur = need_current()?;
            if cur.pending_change.is_none() {
                return Err(ControlError::NotAllowed(format!(
                    "account {account_id} ({}) has no pending change to withdraw",
                    account.login()
                )));
            }
            let mut p = cur.clone();
            p.pending_change = None;
            p.updated_at = now;
            let plan = plan_of(s, p.plan_id);
            let note = format!(
                "{} keeps {}{}: the pending change is withdrawn",
                account.login(),
                plan.name,
                units_text(p.unit_count)
            );
            let e = with_previous(
                event(Action::PendingChangeCancelled, &plan, &strip(&p))?,
                &p,
            )?;
            (e.effective_on(chosen.unwrap_or(today)), Some(p), note)
        }
        Action::Cancelled => {
            let cur = need_current()?;
            let plan = plan_of(s, cur.plan_id);
            let pending_cancel = cur
                .pending_change
                .as_ref()
                .is_some_and(|c| is_cancellation(&cur, c));
            let ends_now = req.now
                || cur.on_free_trial
                || plan.price_model == PriceModel::Free
                || pending_cancel;
            if ends_now {
                let why = if req.now {
                    "now, as asked"
                } else if cur.on_free_trial {
                    "at once: a trial"
                } else if plan.price_model == PriceModel::Free {
                    "at once: a free plan"
                } else {
                    "the pending cancellation takes effect (the cycle ended)"
                };
                let note = format!("{} cancelled {}: {why}", account.login(), plan.name);
                let e = event(Action::Cancelled, &plan, &strip(&cur))?;
                (e.effective_on(chosen.unwrap_or(today)), None, note)
            } else {
                // A paid plan runs to the end of the cycle: GitHub shows the
                // cancellation as a change back to the same purchase.
                let at = chosen.unwrap_or_else(|| cycle_end(&cur, today));
                let change = PendingChange {
                    id: s.next_change_id,
                    plan_id: cur.plan_id,
                    unit_count: cur.unit_count,
                    effective_date: at,
                };
                let mut p = cur.clone();
                p.pending_change = Some(change);
                p.updated_at = now;
                let note = format!(
                    "{} cancels {}: a paid plan keeps access to the end of the cycle, {}; GitHub sends `cancelled` then (`cancelled` again, or with now, sends it today)",
                    account.login(),
                    plan.name,
                    day(at)
                );
                let e = with_previous(event(Action::PendingChange, &plan, &strip(&cur))?, &cur)?;
                (e.effective_on(at), Some(p), note)
            }
        }
    };
    Ok(Prepared {
        event,
        after,
        before: current,
        note,
        new_account,
    })
}

/// The purchase without its pending change (what a webhook describes).
fn strip(p: &Purchase) -> Purchase {
    let mut p = p.clone();
    p.pending_change = None;
    p
}

/// When the purchase's cycle ends: its next billing date, else a month on.
fn cycle_end(p: &Purchase, today: DateTime<Utc>) -> DateTime<Utc> {
    p.next_billing_date
        .map(start_of_day)
        .filter(|d| *d > today)
        .unwrap_or(today + Duration::days(CYCLE_DAYS))
}

fn units_text(units: Option<u64>) -> String {
    match units {
        Some(1) => " × 1 seat".to_owned(),
        Some(n) => format!(" × {n} seats"),
        None => String::new(),
    }
}

impl GithubSim {
    /// Delivers the listing's webhooks to `url`, signed with `secret`.
    pub fn set_webhook(&self, url: impl Into<String>, secret: impl Into<Vec<u8>>) {
        self.lock().webhook = Some(Webhook {
            url: url.into(),
            secret: secret.into(),
        });
    }

    /// The account's purchase as the stand-in holds it.
    pub fn purchase_view(&self, account_id: u64) -> Option<PurchaseView> {
        let s = self.lock();
        s.purchases.get(&account_id).map(|p| view(&s, p))
    }

    /// Plays `action` on the account's purchase: changes the stand-in's
    /// record and delivers the webhook GitHub sends for it (see the module
    /// documentation). The record changes whatever the endpoint answers:
    /// the marketplace has changed, and GitHub does not retry.
    pub async fn fire(
        &self,
        account_id: u64,
        action: Action,
        req: &FireRequest,
    ) -> Result<Fired, ControlError> {
        let now = Utc::now();
        let (prepared, webhook, previous, after) = {
            let mut s = self.lock();
            let webhook = s.webhook.clone().ok_or(ControlError::NoWebhook)?;
            let p = prepare(&s, account_id, action, req, now)?;
            match p.new_account.clone() {
                Some(Account::Org(o)) => {
                    s.orgs.insert(o.id, o);
                }
                Some(Account::User(u)) => {
                    s.users.insert(u.id, u);
                }
                None => {}
            }
            let previous = p.before.as_ref().map(|b| view(&s, b));
            match &p.after {
                Some(after) => {
                    if after.pending_change.is_some() {
                        s.next_change_id += 1;
                    }
                    s.purchases.insert(account_id, after.clone());
                    s.ended.remove(&account_id);
                }
                None => {
                    if let Some(ended) = s.purchases.remove(&account_id) {
                        s.ended.insert(account_id, ended);
                    }
                }
            }
            let after = p.after.as_ref().map(|a| view(&s, a));
            (p, webhook, previous, after)
        };
        let delivery = prepared
            .event
            .delivery()
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        let webhook = deliver(&webhook, &delivery).await;
        Ok(Fired {
            asked: action.as_str().to_owned(),
            action: prepared.event.action.as_str().to_owned(),
            delivery_id: delivery.id,
            effective_date: day(prepared.event.effective_date),
            note: prepared.note,
            previous,
            purchase: after,
            webhook,
        })
    }
}

/// POSTs the delivery as GitHub does (no redirects followed).
async fn deliver(webhook: &Webhook, delivery: &super::webhook::Delivery) -> WebhookOutcome {
    let posted = crate::control_client::post_signed(
        &webhook.url,
        delivery.headers(&webhook.secret),
        delivery.body.clone(),
        DELIVERY_TIMEOUT,
    )
    .await;
    WebhookOutcome {
        url: webhook.url.clone(),
        status: posted.status,
        reply: posted.reply,
        error: posted.error,
    }
}

pub(crate) fn router() -> Router<GithubSim> {
    Router::new()
        .route("/purchases/{account}", get(purchase))
        .route("/purchases/{account}/{action}", post(fire))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn purchase(State(sim): State<GithubSim>, Path(account): Path<u64>) -> Response {
    match sim.purchase_view(account) {
        Some(v) => axum::Json(v).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("account {account} has no purchase"),
        ),
    }
}

async fn fire(
    State(sim): State<GithubSim>,
    Path((account, action)): Path<(u64, String)>,
    bytes: axum::body::Bytes,
) -> Response {
    let action: Action = match action.parse() {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    let req: FireRequest = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match sim.fire(account, action, &req).await {
        Ok(fired) => axum::Json(fired).into_response(),
        Err(e) => error(e.status(), &e.to_string()),
    }
}

pub use crate::control_client::RemoteError;

/// A client of the `/_sim` routes of a running GitHub stand-in (the
/// github.com stand-in's base URL).
#[derive(Debug, Clone)]
pub struct Remote(ControlClient);

impl Remote {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self(ControlClient::new("GitHub", base_url))
    }

    /// The account's purchase; `None` if it has none.
    pub async fn purchase(&self, account_id: u64) -> Result<Option<PurchaseView>, RemoteError> {
        let path = format!("/purchases/{account_id}");
        match self.0.send(reqwest::Method::GET, &path, NO_BODY).await? {
            (404, _) => Ok(None),
            (s, v) if s >= 300 => Err(self.0.refused(s, &v)),
            (_, v) => self.0.read(v).map(Some),
        }
    }

    pub async fn fire(
        &self,
        account_id: u64,
        action: Action,
        req: &FireRequest,
    ) -> Result<Fired, RemoteError> {
        let path = format!("/purchases/{account_id}/{}", action.as_str());
        let v = self.0.call(reqwest::Method::POST, &path, Some(req)).await?;
        self.0.read(v)
    }
}
