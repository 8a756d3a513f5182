//! Stand-ins for the Google services a Google Cloud Marketplace SaaS
//! integration talks to, on one HTTP server on 127.0.0.1 (paths as on
//! Google's hosts, so each Tollgate URL setting points at the same base):
//!
//! | stands in for | path | Tollgate setting |
//! |---|---|---|
//! | `https://oauth2.googleapis.com/token`: OAuth2 token endpoint, service-account JWT-bearer grant | `POST /token` | `TOLLGATE_GOOGLE_TOKEN_URL` = [`Running::token_url`] |
//! | `https://www.googleapis.com/oauth2/v3/certs`: JWKS of Google's ID tokens (Pub/Sub push OIDC) | `GET /oauth2/v3/certs` | `TOLLGATE_GOOGLE_OIDC_CERTS_URL` = [`Running::oidc_certs_url`] |
//! | `https://www.googleapis.com/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com`: certificates of sign-up tokens | `GET /robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com` | `TOLLGATE_GCP_SIGNUP_CERTS_URL` = [`Running::signup_certs_url`] |
//! | `https://cloudcommerceprocurement.googleapis.com`: Partner Procurement API v1 | `/v1/providers/{provider}/accounts/...`, `/v1/providers/{provider}/entitlements/...` ([`PROCUREMENT_METHODS`]) | `TOLLGATE_PROCUREMENT_URL` = [`Running::procurement_url`] |
//! | Marketplace itself: the customer's orders and changes, published through Pub/Sub push | outbound `POST` to [`PushConfig::endpoint`] | the push endpoint (pubsub-push) |
//! | the scenario API over HTTP, for `tollgate fire gcp` against `make dev` | `/_sim/...` ([`control`]) | — |
//!
//! A test builds a [`GcpSim`] (keys are generated then, never stored),
//! starts it, hands Tollgate the URLs and [`GcpSim::service_account_key`],
//! points the publisher at the push endpoint ([`GcpSim::set_push`]) and
//! drives a scenario: [`GcpSim::order`], [`GcpSim::request_plan_change`],
//! [`GcpSim::cancel`], [`GcpSim::end_term`]... Each scenario step changes
//! the records, publishes Marketplace's notifications and, unless
//! deliveries are held, pushes everything queued and waits for each answer
//! ([`Pushed`]). Changes the product makes through the Procurement API
//! (approving an entitlement, a plan change) queue their notifications too;
//! they go out with the next step or [`GcpSim::deliver_queued`] (or at once
//! in the background with [`GcpSim::set_auto_deliver`], for `make dev`).
//!
//! Tokens for tests: [`GcpSim::push_token`], [`GcpSim::bad_push_token`],
//! [`GcpSim::signup_token`], [`GcpSim::bad_signup_token`] and the claim
//! structs to mint anything else. Faults: [`GcpSim::fail_next`] (Procurement
//! API) and [`GcpSim::fail_next_token_requests`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::routing::{any, get, post};
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub mod control;
mod filter;
mod ids;
mod keys;
mod procurement;
mod pubsub;
mod state;
mod tokens;

pub use procurement::{PROCUREMENT_METHODS, ProcurementMethod};
pub use pubsub::{PUSH_USER_AGENT, PushConfig, PushRequest, Pushed};
pub use state::{
    Account, AccountRef, ApprovalState, Entitlement, EntitlementRef, EntitlementState, EventType,
    Listing, Notification, PlanChangeTiming, SIGNUP_APPROVAL,
};
pub use tokens::{
    BadPushToken, BadSignupToken, CLOUD_PLATFORM_SCOPE, GoogleClaims, IdTokenClaims,
    JWT_BEARER_GRANT, OIDC_CERTS_PATH, OIDC_ISSUER, SIGNUP_CERTS_PATH, SIGNUP_ISSUER,
    SIGNUP_SIGNER, SIGNUP_TOKEN_LIFETIME_SECS, ServiceAccountKey, SignupClaims, TOKEN_PATH,
};

use pubsub::Queued;
use state::{Records, Refusal};

/// The real Google URLs the stand-in's paths come from.
const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot generate an RSA key")]
    KeyGeneration,
    #[error("cannot make the sign-up certificate")]
    Certificate,
    #[error("cannot build the push HTTP client: {0}")]
    Client(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Why a scenario step did not happen (nothing was changed or published).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    #[error("no account {0}")]
    UnknownAccount(String),
    #[error("no entitlement {0}")]
    UnknownEntitlement(String),
    /// The record's state does not allow the step (Google would not do it).
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Invalid(String),
}

impl ScenarioError {
    fn from_refusal(r: Refusal, missing: ScenarioError) -> Self {
        match r {
            Refusal::NotFound => missing,
            Refusal::Precondition(why) => ScenarioError::NotAllowed(why),
            Refusal::Invalid(why) => ScenarioError::Invalid(why),
        }
    }
}

/// A canned failure for the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 503 (`UNAVAILABLE`).
    Unavailable,
    /// 429 (`RESOURCE_EXHAUSTED`).
    RateLimited,
    /// 500 (`INTERNAL`).
    Internal,
}

/// A request the stand-in served (never a credential: token requests are
/// recorded without their form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The JSON body, when there was one.
    pub body: Option<serde_json::Value>,
    pub status: u16,
}

/// What [`GcpSim::order`] made.
#[derive(Debug, Clone)]
pub struct Order {
    pub account_id: String,
    pub entitlement_id: String,
    /// The pushes of this step (and of anything queued before it).
    pub pushed: Vec<Pushed>,
}

/// A scenario step on an existing entitlement (also what `/_sim` and
/// [`control::Remote`] take).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntitlementStep {
    RequestPlanChange { plan: String },
    CancelPlanChange,
    Cancel,
    RevertCancellation,
    EndTerm,
    EndOffer,
    CancelNow { reason: String },
    Delete,
}

impl EntitlementStep {
    /// The step's name in `/_sim/entitlements/{id}/{step}`.
    pub fn name(&self) -> &'static str {
        match self {
            EntitlementStep::RequestPlanChange { .. } => "request-plan-change",
            EntitlementStep::CancelPlanChange => "cancel-plan-change",
            EntitlementStep::Cancel => "cancel",
            EntitlementStep::RevertCancellation => "revert-cancellation",
            EntitlementStep::EndTerm => "end-term",
            EntitlementStep::EndOffer => "end-offer",
            EntitlementStep::CancelNow { .. } => "cancel-now",
            EntitlementStep::Delete => "delete",
        }
    }
}

pub(crate) struct SimState {
    pub listing: Listing,
    pub records: Records,
    pub keys: tokens::Keys,
    pub access_tokens: HashMap<String, DateTime<Utc>>,
    pub access_tokens_issued: usize,
    pub faults: VecDeque<Fault>,
    pub token_faults: VecDeque<Fault>,
    pub push: Option<PushConfig>,
    pub outbox: VecDeque<Queued>,
    pub hold: bool,
    pub auto_deliver: bool,
    pub seen: Vec<Seen>,
    pub base_url: Option<String>,
    /// At most this many entries a page of a list method, whatever
    /// `pageSize` asks ([`GcpSim::set_max_page_size`]); `None`: Google's own
    /// defaults and caps.
    pub max_page_size: Option<usize>,
}

impl SimState {
    /// `path` on the running server (Google's own host before it runs).
    pub fn url(&self, path: &str) -> String {
        match &self.base_url {
            Some(base) => format!("{base}{path}"),
            None if path == TOKEN_PATH => GOOGLE_TOKEN_URL.to_owned(),
            None => format!("https://www.googleapis.com{path}"),
        }
    }

    pub fn enqueue(&mut self, notifications: Vec<Notification>, now: DateTime<Utc>) {
        for n in notifications {
            self.outbox.push_back(Queued::new(n, now));
        }
    }

    fn audience(&self) -> String {
        self.push
            .as_ref()
            .map(|p| p.audience.clone())
            .unwrap_or_default()
    }

    fn request_for(&self, q: &Queued) -> PushRequest {
        let (endpoint, audience, subscription, deadline) = match &self.push {
            Some(p) => (
                p.endpoint.clone(),
                p.audience.clone(),
                if p.subscription.is_empty() {
                    self.default_subscription()
                } else {
                    p.subscription.clone()
                },
                p.ack_deadline,
            ),
            None => (
                String::new(),
                String::new(),
                self.default_subscription(),
                PushConfig::new("").ack_deadline,
            ),
        };
        let token = self
            .keys
            .mint_id_token(&self.keys.push_claims(&audience, Utc::now()));
        PushRequest {
            endpoint,
            authorization: Some(format!("Bearer {token}")),
            body: serde_json::to_vec(&pubsub::envelope(q, &subscription)).unwrap_or_default(),
            message_id: q.message_id.clone(),
            notification: q.notification.clone(),
            ack_deadline: deadline,
        }
    }

    fn default_subscription(&self) -> String {
        format!(
            "projects/{}/subscriptions/tollgate-marketplace",
            self.listing.provider_id
        )
    }
}

struct Inner {
    state: Mutex<SimState>,
    /// One flush at a time, so messages go out in order.
    delivering: tokio::sync::Mutex<()>,
    /// Wakes the background deliverer (auto mode).
    wake: tokio::sync::Notify,
    http: reqwest::Client,
}

/// The scriptable Google stand-in. Cheap to clone; clones (and the running
/// server) share one state.
#[derive(Clone)]
pub struct GcpSim {
    inner: Arc<Inner>,
}

impl GcpSim {
    /// A stand-in for `listing`, with freshly generated keys.
    pub fn new(listing: Listing) -> Result<Self, SimError> {
        let keys = tokens::Keys::generate(&listing.provider_id)?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| SimError::Client(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                state: Mutex::new(SimState {
                    listing,
                    records: Records::default(),
                    keys,
                    access_tokens: HashMap::new(),
                    access_tokens_issued: 0,
                    faults: VecDeque::new(),
                    token_faults: VecDeque::new(),
                    push: None,
                    outbox: VecDeque::new(),
                    hold: false,
                    auto_deliver: false,
                    seen: Vec::new(),
                    base_url: None,
                    max_page_size: None,
                }),
                delivering: tokio::sync::Mutex::new(()),
                wake: tokio::sync::Notify::new(),
                http,
            }),
        })
    }

    /// A stand-in for [`Listing::demo`] (the listing of `tollgate.example.toml`).
    pub fn generate() -> Result<Self, SimError> {
        Self::new(Listing::demo())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock can only come from a bug in a test;
        // the records stay consistent, so keep serving.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn wake(&self) {
        self.inner.wake.notify_one();
    }

    pub fn listing(&self) -> Listing {
        self.lock().listing.clone()
    }

    // ------------------------------------------------------- credentials --

    /// The vendor's service-account key file, with `token_uri` the
    /// stand-in's token endpoint (Google's before [`GcpSim::start`]).
    pub fn service_account_key(&self) -> ServiceAccountKey {
        let s = self.lock();
        s.keys.service_account_key(&s.url(TOKEN_PATH))
    }

    /// The push subscription's service account: the `email` of push tokens.
    pub fn push_service_account(&self) -> String {
        self.lock().keys.push_email.clone()
    }

    /// Makes every access token issued so far expire (the Procurement API
    /// then answers 401 to them).
    pub fn expire_access_tokens(&self) {
        let past = Utc::now() - chrono::Duration::seconds(1);
        for t in self.lock().access_tokens.values_mut() {
            *t = past;
        }
    }

    /// How many access tokens the token endpoint has issued.
    pub fn access_tokens_issued(&self) -> usize {
        self.lock().access_tokens_issued
    }

    // ------------------------------------------------------------ tokens --

    /// Claims of a valid push token for the configured audience.
    pub fn push_claims(&self) -> IdTokenClaims {
        let s = self.lock();
        s.keys.push_claims(&s.audience(), Utc::now())
    }

    /// A valid push token (what deliveries carry).
    pub fn push_token(&self) -> String {
        let claims = self.push_claims();
        self.mint_id_token(&claims)
    }

    /// Any ID token, signed RS256 by the current JWKS key (with its `kid`).
    pub fn mint_id_token(&self, claims: &IdTokenClaims) -> String {
        self.lock().keys.mint_id_token(claims)
    }

    /// A push token a verifier must refuse.
    pub fn bad_push_token(&self, case: BadPushToken) -> Result<String, SimError> {
        let s = self.lock();
        s.keys.bad_push_token(&s.audience(), case, Utc::now())
    }

    /// Claims of a valid sign-up token for `account_id`: 5 minutes, `aud`
    /// the listing's sign-up audience, `google.user_identity` (stable per
    /// account), `google.roles` and `google.orders` (the account's live
    /// orders).
    pub fn signup_claims(&self, account_id: &str) -> SignupClaims {
        let s = self.lock();
        let now = Utc::now().timestamp();
        let orders = s
            .records
            .entitlements
            .iter()
            .filter(|e| e.account_id == account_id && e.state != EntitlementState::Cancelled)
            .map(|e| e.order_id.clone())
            .collect();
        SignupClaims {
            iss: SIGNUP_ISSUER.to_owned(),
            iat: now,
            exp: now + SIGNUP_TOKEN_LIFETIME_SECS,
            aud: s.listing.signup_audience.clone(),
            sub: account_id.to_owned(),
            google: Some(GoogleClaims {
                user_identity: Some(user_identity(account_id)),
                // An example role; Google does not document the values.
                roles: vec!["account_admin".into()],
                orders,
            }),
        }
    }

    /// The `x-gcp-marketplace-token` Google posts to the sign-up URL when
    /// the customer of `account_id` clicks "Sign up with provider".
    pub fn signup_token(&self, account_id: &str) -> String {
        let claims = self.signup_claims(account_id);
        self.mint_signup_token(&claims)
    }

    /// Any sign-up token, signed by the current certificate's key (RS256,
    /// header `kid`).
    pub fn mint_signup_token(&self, claims: &SignupClaims) -> String {
        self.lock().keys.mint_signup_token(claims)
    }

    /// A sign-up token for `account_id` a verifier must refuse.
    pub fn bad_signup_token(
        &self,
        account_id: &str,
        case: BadSignupToken,
    ) -> Result<String, SimError> {
        let claims = self.signup_claims(account_id);
        self.lock().keys.bad_signup_token(claims, case, Utc::now())
    }

    /// Signs push tokens with a new key from now on; the JWKS lists it
    /// beside the previous one (a cached JWKS then misses the new `kid`).
    pub fn rotate_oidc_key(&self) -> Result<(), SimError> {
        self.lock().keys.rotate_oidc()
    }

    /// Signs sign-up tokens with a new key and certificate from now on; the
    /// certificate map lists it beside the previous one.
    pub fn rotate_signup_key(&self) -> Result<(), SimError> {
        self.lock().keys.rotate_signup()
    }

    /// Caps every page of `entitlements.list` and `accounts.list` at `max`
    /// entries (at least 1), whatever `pageSize` asks, so a test walks
    /// several pages without hundreds of records. Google documents
    /// `pageSize` as "the maximum number of entries that are requested": a
    /// client must follow `nextPageToken` however many it got. `None`
    /// restores Google's defaults and caps.
    pub fn set_max_page_size(&self, max: Option<usize>) {
        self.lock().max_page_size = max.map(|m| m.max(1));
    }

    // ------------------------------------------------------------ faults --

    /// The next `count` Procurement API calls get `fault` instead of an
    /// answer (before authentication, as an outage would).
    pub fn fail_next(&self, count: usize, fault: Fault) {
        self.lock().faults.extend(std::iter::repeat_n(fault, count));
    }

    /// The next `count` token requests get `fault`.
    pub fn fail_next_token_requests(&self, count: usize, fault: Fault) {
        self.lock()
            .token_faults
            .extend(std::iter::repeat_n(fault, count));
    }

    // ----------------------------------------------------------- records --

    pub fn account(&self, id: &str) -> Option<Account> {
        self.lock().records.account(id).cloned()
    }

    pub fn entitlement(&self, id: &str) -> Option<Entitlement> {
        self.lock().records.entitlement(id).cloned()
    }

    /// Every entitlement, in order of creation.
    pub fn entitlements(&self) -> Vec<Entitlement> {
        self.lock().records.entitlements.clone()
    }

    /// Every request served so far (token, keys, Procurement).
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    // --------------------------------------------------------- scenarios --

    async fn step(
        &self,
        missing: ScenarioError,
        change: impl FnOnce(&mut Records, &Listing, DateTime<Utc>) -> Result<Vec<Notification>, Refusal>,
    ) -> Result<Vec<Pushed>, ScenarioError> {
        {
            let mut s = self.lock();
            let now = Utc::now();
            let listing = s.listing.clone();
            let notifications = change(&mut s.records, &listing, now)
                .map_err(|r| ScenarioError::from_refusal(r, missing))?;
            s.enqueue(notifications, now);
        }
        Ok(self.flush_unless_held().await)
    }

    async fn flush_unless_held(&self) -> Vec<Pushed> {
        if self.lock().hold {
            return Vec::new();
        }
        self.deliver_queued().await
    }

    async fn place(
        &self,
        account_id: &str,
        plan: &str,
        private_offer: bool,
    ) -> Result<Order, ScenarioError> {
        let entitlement_id = {
            let mut s = self.lock();
            let now = Utc::now();
            let listing = s.listing.clone();
            let (id, notifications) = s
                .records
                .order(&listing, account_id, plan, private_offer, now)
                .map_err(|r| {
                    ScenarioError::from_refusal(r, ScenarioError::UnknownAccount(account_id.into()))
                })?;
            s.enqueue(notifications, now);
            id
        };
        Ok(Order {
            account_id: account_id.to_owned(),
            entitlement_id,
            pushed: self.flush_unless_held().await,
        })
    }

    /// The customer of `account_id` orders `plan` from the listing: a new
    /// account (`ACCOUNT_ACTIVE`, sign-up pending) if it has none, then an
    /// entitlement waiting for the vendor's approval
    /// (`ENTITLEMENT_CREATION_REQUESTED`).
    pub async fn order(&self, account_id: &str, plan: &str) -> Result<Order, ScenarioError> {
        self.place(account_id, plan, false).await
    }

    /// Like [`GcpSim::order`], through a private offer the customer accepts:
    /// `ENTITLEMENT_OFFER_ACCEPTED` with `newPlan`, `newOffer`, `orderId`.
    pub async fn accept_private_offer(
        &self,
        account_id: &str,
        plan: &str,
    ) -> Result<Order, ScenarioError> {
        self.place(account_id, plan, true).await
    }

    /// Runs `step` on entitlement `id`.
    pub async fn act(&self, id: &str, step: EntitlementStep) -> Result<Vec<Pushed>, ScenarioError> {
        let missing = ScenarioError::UnknownEntitlement(id.to_owned());
        self.step(missing, |r, l, now| match &step {
            EntitlementStep::RequestPlanChange { plan } => r.request_plan_change(l, id, plan, now),
            EntitlementStep::CancelPlanChange => r.cancel_plan_change(l, id, now),
            EntitlementStep::Cancel => r.cancel(l, id, now),
            EntitlementStep::RevertCancellation => r.revert_cancellation(l, id, now),
            EntitlementStep::EndTerm => r.end_term(l, id, now),
            EntitlementStep::EndOffer => r.end_offer(l, id, now),
            EntitlementStep::CancelNow { reason } => r.cancel_now(l, id, reason, now),
            EntitlementStep::Delete => r.delete_entitlement(l, id, now),
        })
        .await
    }

    /// The customer asks to move an active entitlement to `plan`:
    /// `ENTITLEMENT_PLAN_CHANGE_REQUESTED`, waiting for the vendor's
    /// `approvePlanChange` in `ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL`.
    pub async fn request_plan_change(
        &self,
        id: &str,
        plan: &str,
    ) -> Result<Vec<Pushed>, ScenarioError> {
        let plan = plan.to_owned();
        self.act(id, EntitlementStep::RequestPlanChange { plan })
            .await
    }

    /// The customer withdraws a pending plan change
    /// (`ENTITLEMENT_PLAN_CHANGE_CANCELLED`).
    pub async fn cancel_plan_change(&self, id: &str) -> Result<Vec<Pushed>, ScenarioError> {
        self.act(id, EntitlementStep::CancelPlanChange).await
    }

    /// The customer cancels; it takes effect at the end of the term
    /// (`ENTITLEMENT_PENDING_CANCELLATION`).
    pub async fn cancel(&self, id: &str) -> Result<Vec<Pushed>, ScenarioError> {
        self.act(id, EntitlementStep::Cancel).await
    }

    /// The customer takes a pending cancellation back
    /// (`ENTITLEMENT_CANCELLATION_REVERTED`).
    pub async fn revert_cancellation(&self, id: &str) -> Result<Vec<Pushed>, ScenarioError> {
        self.act(id, EntitlementStep::RevertCancellation).await
    }

    /// The term ends: a pending cancellation becomes final
    /// (`ENTITLEMENT_CANCELLING`, `ENTITLEMENT_CANCELLED`), a pending plan
    /// change applies (`ENTITLEMENT_PLAN_CHANGED`), an active entitlement
    /// renews (`ENTITLEMENT_RENEWED`).
    pub async fn end_term(&self, id: &str) -> Result<Vec<Pushed>, ScenarioError> {
        self.act(id, EntitlementStep::EndTerm).await
    }

    /// A private offer ends; the entitlement stays as it is
    /// (`ENTITLEMENT_OFFER_ENDED`).
    pub async fn end_offer(&self, id: &str) -> Result<Vec<Pushed>, ScenarioError> {
        self.act(id, EntitlementStep::EndOffer).await
    }

    /// Cancelled at once with `reason` as `cancellationReason` (e.g.
    /// `billing-disabled`): `ENTITLEMENT_CANCELLED`.
    pub async fn cancel_now(&self, id: &str, reason: &str) -> Result<Vec<Pushed>, ScenarioError> {
        let reason = reason.to_owned();
        self.act(id, EntitlementStep::CancelNow { reason }).await
    }

    /// Marketplace deletes a cancelled entitlement (`ENTITLEMENT_DELETED`;
    /// 404 afterwards).
    pub async fn delete_entitlement(&self, id: &str) -> Result<Vec<Pushed>, ScenarioError> {
        self.act(id, EntitlementStep::Delete).await
    }

    /// The account is deleted (`ACCOUNT_DELETED`; 404 afterwards). Its
    /// entitlements must be cancelled first.
    pub async fn delete_account(&self, id: &str) -> Result<Vec<Pushed>, ScenarioError> {
        let missing = ScenarioError::UnknownAccount(id.to_owned());
        self.step(missing, |r, l, now| r.delete_account(l, id, now))
            .await
    }

    /// The account's `signup` approval is approved outside Tollgate (by the
    /// vendor in Producer Portal): no notification, as `accounts.approve`
    /// publishes none. Tollgate learns of it only by reading the account.
    pub fn approve_signup(&self, account_id: &str) -> Result<(), ScenarioError> {
        let mut s = self.lock();
        s.records
            .approve_account(account_id, None, None, Utc::now())
            .map(drop)
            .map_err(|r| {
                ScenarioError::from_refusal(r, ScenarioError::UnknownAccount(account_id.into()))
            })
    }

    /// Publishes any notification (an unknown `eventType`, a stale
    /// `updateTime`...), then pushes as a step does.
    pub async fn publish(&self, notification: Notification) -> Vec<Pushed> {
        self.lock().enqueue(vec![notification], Utc::now());
        self.flush_unless_held().await
    }

    // ---------------------------------------------------------- delivery --

    /// Where pushes go. Until this is set, messages stay queued.
    pub fn set_push(&self, config: PushConfig) {
        self.lock().push = Some(config);
    }

    /// While held, steps only queue their messages: take them with
    /// [`GcpSim::take_queued`] to deliver, duplicate or reorder them.
    pub fn hold_deliveries(&self, hold: bool) {
        self.lock().hold = hold;
        if !hold {
            self.wake();
        }
    }

    /// In auto mode a background task pushes what the Procurement API
    /// queues (approvals, plan changes) right after the call, the way
    /// Pub/Sub delivers on its own (for `make dev`; tests flush explicitly).
    pub fn set_auto_deliver(&self, auto: bool) {
        self.lock().auto_deliver = auto;
        if auto {
            self.wake();
        }
    }

    /// The notifications waiting in the outbox.
    pub fn queued(&self) -> Vec<Notification> {
        self.lock()
            .outbox
            .iter()
            .map(|q| q.notification.clone())
            .collect()
    }

    /// Pushes every queued message in order, and any that those pushes
    /// cause, waiting for each answer. Unacknowledged ones stay queued for
    /// the next flush. Nothing goes out until [`GcpSim::set_push`].
    pub async fn deliver_queued(&self) -> Vec<Pushed> {
        let _turn = self.inner.delivering.lock().await;
        let mut out = Vec::new();
        let mut unacked = Vec::new();
        for _ in 0..pubsub::max_per_flush() {
            let next = {
                let mut s = self.lock();
                if s.push.is_none() {
                    break;
                }
                s.outbox.pop_front().map(|q| (s.request_for(&q), q))
            };
            let Some((request, queued)) = next else {
                break;
            };
            let pushed = pubsub::send(&self.inner.http, request).await;
            if !pushed.acked() {
                unacked.push(queued);
            }
            out.push(pushed);
        }
        let mut s = self.lock();
        for q in unacked.into_iter().rev() {
            s.outbox.push_front(q);
        }
        out
    }

    /// Empties the outbox into push requests (each with a fresh token),
    /// without sending anything.
    pub fn take_queued(&self) -> Vec<PushRequest> {
        let mut s = self.lock();
        let queued: Vec<Queued> = s.outbox.drain(..).collect();
        queued.iter().map(|q| s.request_for(q)).collect()
    }

    /// Sends `request` as it is and waits for the answer (the outbox is not
    /// touched: this is a replay).
    pub async fn deliver(&self, request: &PushRequest) -> Pushed {
        pubsub::send(&self.inner.http, request.clone()).await
    }

    // ----------------------------------------------------------- serving --

    fn router(&self) -> Router {
        Router::new()
            .route(TOKEN_PATH, post(tokens::token))
            .route(OIDC_CERTS_PATH, get(tokens::oidc_certs))
            .route(SIGNUP_CERTS_PATH, get(tokens::signup_certs))
            .route("/v1/{*rest}", any(procurement::handle))
            .nest("/_sim", control::router())
            .fallback(|| async {
                procurement::google_error(
                    axum::http::StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "Not Found",
                )
            })
            .with_state(self.clone())
    }

    /// The settings that point Tollgate at this stand-in once it runs, by
    /// variable name: Google's URLs, the listing's provider id and sign-up
    /// audience, and the push subscription (`push_audience`, the stand-in's
    /// push service account). The one list `tollgate sim`/`dev` and the
    /// tests configure Tollgate from.
    pub fn tollgate_settings(
        &self,
        running: &Running,
        push_audience: &str,
    ) -> Vec<(&'static str, String)> {
        let listing = self.listing();
        vec![
            ("TOLLGATE_GOOGLE_TOKEN_URL", running.token_url.clone()),
            (
                "TOLLGATE_GOOGLE_OIDC_CERTS_URL",
                running.oidc_certs_url.clone(),
            ),
            (
                "TOLLGATE_GCP_SIGNUP_CERTS_URL",
                running.signup_certs_url.clone(),
            ),
            ("TOLLGATE_PROCUREMENT_URL", running.procurement_url.clone()),
            ("TOLLGATE_GCP_PROVIDER_ID", listing.provider_id),
            ("TOLLGATE_GCP_PUSH_AUDIENCE", push_audience.to_owned()),
            (
                "TOLLGATE_GCP_PUSH_SERVICE_ACCOUNT",
                self.push_service_account(),
            ),
            ("TOLLGATE_GCP_SIGNUP_AUDIENCE", listing.signup_audience),
        ]
    }

    /// Serves on 127.0.0.1 on a port the OS picks.
    pub async fn start(&self) -> Result<Running, SimError> {
        self.start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves on `addr`; also starts the background deliverer (idle unless
    /// [`GcpSim::set_auto_deliver`]).
    pub async fn start_on(&self, addr: SocketAddr) -> Result<Running, SimError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let base_url = format!("http://{bound}");
        self.lock().base_url = Some(base_url.clone());
        let app = self.router();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "Google stand-in stopped");
            }
        });
        let sim = self.clone();
        let deliverer = tokio::spawn(async move {
            loop {
                sim.inner.wake.notified().await;
                let go = {
                    let s = sim.lock();
                    s.auto_deliver && !s.hold
                };
                if go {
                    sim.deliver_queued().await;
                }
            }
        });
        Ok(Running {
            token_url: format!("{base_url}{TOKEN_PATH}"),
            oidc_certs_url: format!("{base_url}{OIDC_CERTS_PATH}"),
            signup_certs_url: format!("{base_url}{SIGNUP_CERTS_PATH}"),
            procurement_url: base_url.clone(),
            base_url,
            tasks: vec![server, deliverer],
        })
    }
}

/// A stable obfuscated user id for an account (what Google puts in
/// `google.user_identity`: the same person clicks again).
fn user_identity(account_id: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, account_id.as_bytes());
    let mut out = String::from("1");
    for b in digest.as_ref().iter().take(20) {
        out.push(char::from(b'0' + b % 10));
    }
    out
}

/// The running stand-in; dropping this stops the server and the deliverer.
pub struct Running {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// For `TOLLGATE_GOOGLE_TOKEN_URL` (also the key file's `token_uri`).
    pub token_url: String,
    /// For `TOLLGATE_GOOGLE_OIDC_CERTS_URL`.
    pub oidc_certs_url: String,
    /// For `TOLLGATE_GCP_SIGNUP_CERTS_URL`.
    pub signup_certs_url: String,
    /// For `TOLLGATE_PROCUREMENT_URL` (the base: paths start with `/v1/`).
    pub procurement_url: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
