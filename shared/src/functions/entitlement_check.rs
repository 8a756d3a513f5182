//! `entitlement-check`: the API the vendor's apps call on their hot path —
//! "may this customer (and user) use this product/feature now, and if not,
//! why not?" — plus seat claims and the served OpenAPI document.
//!
//! Store calls per request (DynamoDB requests in brackets):
//!
//! - A check by customer: one read, [`Subscriptions::customer_subscriptions`]
//!   [one `Query` of `GSI1`, eventually consistent — a purchase is visible
//!   within about a second], then the pure [`entitlement::decide`]. A state
//!   counts its seat holders but does not list them, so when a `user` is
//!   asked and the answer would be `seat_limit_reached` — a seat-counted
//!   tier is full — the user's seat is looked up on each such subscription,
//!   [`SeatClaims::holds_seat`] [one strongly consistent `GetItem`; in
//!   practice one subscription], and the decision made again. Any other
//!   check stays at one read.
//! - A check by app user: one more read first, for the user's links, and a
//!   read per linked customer.
//! - A check naming a product or feature `tollgate.toml` does not define
//!   ([`entitlement::undefined_name`]): no read; the answer is
//!   `unknown_product` / `unknown_feature` whoever is asked about.
//! - `claim_seat` in a check: instead of the seat lookup, one
//!   [`SeatClaims::claim_seat`] [a `TransactGetItems` that answers "already
//!   held" and "full" by itself; a `TransactWriteItems` more when a seat is
//!   granted]. The claim is judged against the limit of the state as it is
//!   when the seat is written, never the eventually consistent copy the
//!   check read: seats are never given away on a stale read.
//! - `POST /v1/seats/claim`: [`Subscriptions::get`] [a strongly consistent
//!   `GetItem`], then the claim as above; on a tier that counts no seats,
//!   [`SeatClaims::holds_seat`] instead, to say whether one is held.
//! - `POST /v1/seats/release`: [`SeatClaims::release_seat`] [one
//!   `TransactWriteItems`].
//! - `GET /v1/seats/...`: [`Subscriptions::get`] and
//!   [`SeatClaims::seat_holders`] [a strongly consistent `Query` of the
//!   subscription's seat items, a page per MB].
//! - `DELETE /v1/links/...`: [`UserLinks::unlink_user`] [one `DeleteItem`].
//! - `POST /v1/token`: exactly the reads of a check, then the decision is
//!   signed (`api::token`) when it allows; `GET /.well-known/jwks.json`
//!   reads nothing and needs no credentials (public keys only).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode, header};

use crate::api::auth::iam::IamPrincipals;
use crate::api::auth::keyring::{KeySource, RefreshPolicy};
use crate::api::auth::{
    ApiKeyEntry, Authenticator, Caller, CheckAuth, Principal, SECRET_PREFIX, Scope, api_key_entries,
};
use crate::api::routes::{Route, match_route};
use crate::api::token::{self as tokens, TokenError, TokenIssuer};
use crate::api::wire::{
    self, CheckRequest, CustomerView, SeatClaimed, SeatList, SeatReleased, SeatRequest, Subject,
    SubscriptionView,
};
use crate::api::{OPENAPI_JSON, Rejection};
use crate::clock::{Clock, SystemClock};
use crate::config::Catalog;
use crate::entitlement::{self, Decision, Question, Reason, SeatsView};
use crate::model::{AppUser, CustomerKey, Marketplace, Subscription, SubscriptionKey};
use crate::setup::{Deps, SetupError, load_secrets};
use crate::store::{SeatClaim, SeatClaims, StoreError, Subscriptions, UserLinks};
use crate::web::{
    ApiError, Body, Function, Request, Response, body_bytes, json_response, media_type,
};

use super::FromDeps;

pub struct EntitlementCheck {
    catalog: Arc<Catalog>,
    /// The store roles this function uses, and the only ones its IAM policy
    /// grants: reading subscriptions, seat claims, reading user links.
    subscriptions: Arc<dyn Subscriptions>,
    seats: Arc<dyn SeatClaims>,
    links: Arc<dyn UserLinks>,
    auth: Authenticator,
    clock: Arc<dyn Clock>,
    /// Signs `/v1/token` answers; `None` without an `entitlement_token_key`.
    tokens: Option<Arc<TokenIssuer>>,
}

impl FromDeps for EntitlementCheck {
    const NAME: &'static str = "entitlement-check";

    async fn from_deps(deps: Deps) -> Result<Self, SetupError> {
        Self::configured(deps, Arc::new(SystemClock))
    }
}

impl EntitlementCheck {
    /// As deployed: the auth policy from the settings and secrets (mode, IAM
    /// allow-list, API keys re-read from `TOLLGATE_SECRETS`), on `clock`.
    pub fn configured(deps: Deps, clock: Arc<dyn Clock>) -> Result<Self, SetupError> {
        let allow = Authenticator::allow_unauthenticated_from(|k| std::env::var(k).ok());
        let settings = &deps.settings;
        let mode = CheckAuth::from_setting(settings.check_auth.as_deref())?;
        let iam_principals = settings
            .iam_principals
            .as_deref()
            .map(IamPrincipals::parse)
            .transpose()
            .map_err(|e| SetupError::Invalid(e.to_string()))?;
        let policy = RefreshPolicy::from_settings(
            settings.api_keys_ttl.as_deref(),
            settings.api_keys_max_age.as_deref(),
        )?;
        // The keys read with the other secrets at cold start, then re-read
        // from the same source so a deleted entry stops working (README,
        // "Ask from your app").
        let auth = Authenticator::from_secrets(deps.secrets.with_prefix(SECRET_PREFIX), allow)?
            .refreshing_from(
                Arc::new(SecretsKeys(settings.secrets.clone())),
                clock.now(),
                policy,
            )
            .with_mode(mode, settings.aws_region.clone())
            .with_iam_principals(iam_principals);
        if auth.allows_unauthenticated() {
            tracing::warn!(
                function = Self::NAME,
                "no API keys configured and TOLLGATE_ALLOW_UNAUTHENTICATED is set: \
                 every caller is trusted (development only)"
            );
        } else if allow {
            tracing::warn!(
                function = Self::NAME,
                "TOLLGATE_ALLOW_UNAUTHENTICATED is ignored because API keys are configured"
            );
        }
        log_auth_mode(deps.settings.check_auth.as_deref(), &auth)?;
        let policy = tokens::policy_from_settings(&deps.settings)?;
        let issuer = TokenIssuer::from_secrets(&deps.secrets, policy)?;
        match issuer.as_ref().and_then(TokenIssuer::kid) {
            Some(kid) => tracing::info!(function = Self::NAME, kid, "signing entitlement tokens"),
            None => tracing::info!(
                function = Self::NAME,
                "no `entitlement_token_key` secret: /v1/token answers 503 tokens_not_configured"
            ),
        }
        Ok(Self::new(&deps, auth, clock).with_tokens(issuer))
    }
}

/// The API keys in the secrets named by `TOLLGATE_SECRETS`, read again.
struct SecretsKeys(String);

#[async_trait]
impl KeySource for SecretsKeys {
    async fn load(&self) -> Result<Vec<ApiKeyEntry>, SetupError> {
        let secrets = load_secrets(&self.0).await?;
        api_key_entries(secrets.with_prefix(SECRET_PREFIX))
    }
}

/// Says at cold start how callers are authenticated, as deployed: an
/// `AWS_IAM` function URL refuses unsigned requests before the code runs,
/// so API-key callers cannot reach it; a public URL without keys refuses
/// every call.
fn log_auth_mode(mode: Option<&str>, auth: &Authenticator) -> Result<(), SetupError> {
    let function = EntitlementCheck::NAME;
    match mode {
        Some("aws_iam") => {
            tracing::info!(function, mode = "aws_iam", "callers sign with SigV4 (IAM)")
        }
        Some("api_key") if auth.has_keys() => {
            tracing::info!(function, mode = "api_key", "callers send an API key")
        }
        Some("api_key") => tracing::warn!(
            function,
            mode = "api_key",
            "public function URL but no `api_key.*` secret: every call is refused until a key is added"
        ),
        None => tracing::info!(
            function,
            mode = "local",
            "TOLLGATE_CHECK_AUTH unset (local run)"
        ),
        Some(other) => {
            return Err(SetupError::Invalid(format!(
                "TOLLGATE_CHECK_AUTH `{other}`: expected `aws_iam` or `api_key`"
            )));
        }
    }
    Ok(())
}

impl EntitlementCheck {
    /// Built from explicit parts, so tests choose the auth policy and clock.
    pub fn new(deps: &Deps, auth: Authenticator, clock: Arc<dyn Clock>) -> Self {
        Self {
            catalog: Arc::clone(&deps.catalog),
            subscriptions: deps.store.clone(),
            seats: deps.store.clone(),
            links: deps.store.clone(),
            auth,
            clock,
            tokens: None,
        }
    }

    /// Signs `/v1/token` answers with `issuer` (none: 503 `tokens_not_configured`).
    pub fn with_tokens(mut self, issuer: Option<TokenIssuer>) -> Self {
        self.tokens = issuer.map(Arc::new);
        self
    }

    async fn check(&self, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
        let q: CheckRequest = parse_question(caller, req)?;
        let answer = self.answer(&q).await?;
        Ok(json_response(StatusCode::OK, &answer.decision))
    }

    /// `POST /v1/token`: the check's decision, and when it allows, signed.
    async fn token(&self, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
        let q: CheckRequest = parse_question(caller, req)?;
        let issuer = self.tokens.as_deref().ok_or(TokenError::NotConfigured)?;
        let answer = self.answer(&q).await?;
        let claims = tollgate_core::token::claims(
            issuer.policy(),
            &q,
            &answer.decision,
            &answer.subscriptions,
            answer.link_expiries,
            answer.now,
        );
        let (token, expires_at) = match claims {
            Some(c) => (
                Some(issuer.sign(&c)?),
                DateTime::<Utc>::from_timestamp(c.exp, 0),
            ),
            None => (None, None),
        };
        Ok(json_response(
            StatusCode::OK,
            &tollgate_core::token::TokenAnswer {
                token,
                expires_at,
                decision: answer.decision,
            },
        ))
    }

    /// The decision for `q`, with what it was made from.
    async fn answer(&self, q: &CheckRequest) -> Result<Answer, ApiError> {
        let mut link_expiries = Vec::new();
        let question = q.question();
        let subscriptions = match &q.subject {
            // A product or feature tollgate.toml does not define: the answer
            // is the same for every customer, so nothing is read.
            _ if entitlement::undefined_name(&self.catalog, &question).is_some() => Vec::new(),
            Subject::Customer(customer) => {
                self.subscriptions.customer_subscriptions(customer).await?
            }
            Subject::AppUser(user) => {
                let mut all = Vec::new();
                // Only links live now: an expired one grants nothing.
                for link in self.links.user_links(user, self.clock.now()).await? {
                    link_expiries.push(link.expires_at);
                    all.extend(
                        self.subscriptions
                            .customer_subscriptions(&link.customer)
                            .await?,
                    );
                }
                all
            }
        };
        let now = self.clock.now();
        let mut decision = entitlement::decide(&self.catalog, &subscriptions, &question, now);
        match (q.claim_seat, q.user.as_deref()) {
            (true, Some(user)) => {
                decision = self.claim_for(decision, &subscriptions, user, now).await?;
            }
            (false, Some(user)) if !decision.allowed => {
                decision = self
                    .with_seats_held(decision, &subscriptions, &question, user, now)
                    .await?;
            }
            _ => {}
        }
        Ok(Answer {
            decision,
            subscriptions,
            link_expiries,
            now,
        })
    }

    /// A denial that a seat the user already holds may turn around: looks
    /// the user up on the full subscriptions the answer turns on (none
    /// unless a seat-counted tier is full) and decides again knowing.
    async fn with_seats_held(
        &self,
        d: Decision,
        subscriptions: &[Subscription],
        question: &Question<'_>,
        user: &str,
        now: DateTime<Utc>,
    ) -> Result<Decision, ApiError> {
        let mut seated = Vec::new();
        for key in entitlement::seat_lookups(&self.catalog, subscriptions, question, now) {
            if self.seats.holds_seat(key, user).await? {
                seated.push(key.clone());
            }
        }
        if seated.is_empty() {
            return Ok(d);
        }
        let question = Question {
            seated: &seated,
            ..question.clone()
        };
        Ok(entitlement::decide(
            &self.catalog,
            subscriptions,
            &question,
            now,
        ))
    }

    /// Turns a "would be allowed" decision into a held seat: claims one
    /// atomically when the deciding subscription counts seats, and lets the
    /// claim's result (judged against the state as it is, not the possibly
    /// stale read) say whether the user holds or got one.
    async fn claim_for(
        &self,
        mut d: Decision,
        subscriptions: &[Subscription],
        user: &str,
        now: DateTime<Utc>,
    ) -> Result<Decision, ApiError> {
        if !(d.allowed || d.reason == Reason::SeatLimitReached) {
            return Ok(d);
        }
        let (Some(key), Some(SeatsView { limit: Some(_), .. })) = (&d.subscription, d.seats) else {
            return Ok(d);
        };
        let Some(limit) = subscriptions
            .iter()
            .find(|s| &s.key == key)
            .and_then(|s| entitlement::claim_limit(&self.catalog, s, now))
        else {
            return Ok(d);
        };
        let (allowed, reason, seats) = match self.seats.claim_seat(key, user, limit).await? {
            SeatClaim::Granted { used, limit } | SeatClaim::AlreadyHeld { used, limit } => {
                (true, Reason::Ok, SeatsView { limit, used })
            }
            SeatClaim::LimitReached { used, limit } => (
                false,
                Reason::SeatLimitReached,
                SeatsView {
                    limit: Some(limit),
                    used,
                },
            ),
        };
        d.allowed = allowed;
        d.reason = reason;
        d.seats = Some(seats);
        Ok(d)
    }

    async fn customer(&self, caller: &Caller, params: &[String]) -> Result<Response, ApiError> {
        caller.require(Scope::Check)?;
        let (marketplace, id) = key_params(params, "customer_id")?;
        let customer = CustomerKey::new(marketplace, id);
        let subscriptions = self.subscriptions.customer_subscriptions(&customer).await?;
        let now = self.clock.now();
        let view = CustomerView {
            subscriptions: subscriptions
                .iter()
                .map(|s| SubscriptionView::new(&self.catalog, s, now))
                .collect(),
            customer,
        };
        Ok(json_response(StatusCode::OK, &view))
    }

    async fn claim_seat(&self, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
        caller.require(Scope::Seats)?;
        let SeatRequest { subscription, user } = parse(req)?;
        let sub = self.subscription(&subscription).await?;
        let now = self.clock.now();
        let d = wire::decide_for(&self.catalog, &sub, Some(&user), now);
        let counted = match (d.reason, d.seats) {
            (Reason::Ok | Reason::SeatLimitReached, Some(seats)) => seats.limit.is_some(),
            (Reason::Ok | Reason::SeatLimitReached, None) => false,
            (reason, _) => {
                return Err(Rejection::SeatRefused {
                    reason,
                    message: format!(
                        "subscription {subscription} is not entitled ({})",
                        reason.as_str()
                    ),
                }
                .into());
            }
        };
        let limit = entitlement::claim_limit(&self.catalog, &sub, now).filter(|_| counted);
        let Some(limit) = limit else {
            // The tier does not count seats: the user may use it, nothing to record.
            let already_held = self.seats.holds_seat(&subscription, &user).await?;
            let seats = d.seats.unwrap_or(SeatsView {
                limit: None,
                used: sub.seats.used,
            });
            return Ok(json_response(
                StatusCode::OK,
                &SeatClaimed {
                    subscription,
                    user,
                    already_held,
                    seats,
                },
            ));
        };
        let (already_held, seats) = match self.seats.claim_seat(&subscription, &user, limit).await {
            Ok(SeatClaim::Granted { used, limit }) => (false, SeatsView { limit, used }),
            Ok(SeatClaim::AlreadyHeld { used, limit }) => (true, SeatsView { limit, used }),
            Ok(SeatClaim::LimitReached { used, limit }) => {
                return Err(Rejection::SeatRefused {
                    reason: Reason::SeatLimitReached,
                    message: format!(
                        "all {limit} seats of {subscription} are taken ({used} in use); release one first"
                    ),
                }
                .into());
            }
            Err(StoreError::NotFound(_)) => return Err(not_found(&subscription)),
            Err(e) => return Err(e.into()),
        };
        Ok(json_response(
            StatusCode::OK,
            &SeatClaimed {
                subscription,
                user,
                already_held,
                seats,
            },
        ))
    }

    async fn release_seat(&self, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
        caller.require(Scope::Seats)?;
        let SeatRequest { subscription, user } = parse(req)?;
        let released = match self.seats.release_seat(&subscription, &user).await {
            Ok(released) => released,
            Err(StoreError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        Ok(json_response(
            StatusCode::OK,
            &SeatReleased {
                subscription,
                user,
                released,
            },
        ))
    }

    async fn list_seats(&self, caller: &Caller, params: &[String]) -> Result<Response, ApiError> {
        caller.require(Scope::Seats)?;
        let (marketplace, id) = key_params(params, "subscription_id")?;
        let key = SubscriptionKey::new(marketplace, id);
        let sub = self.subscription(&key).await?;
        let holders = self.seats.seat_holders(&key).await?;
        let d = wire::decide_for(&self.catalog, &sub, None, self.clock.now());
        let seats = SeatsView {
            limit: d.seats.and_then(|s| s.limit),
            // The list, read after the state, is the fresher count.
            used: u32::try_from(holders.len()).unwrap_or(u32::MAX),
        };
        let list = SeatList {
            product: sub.product,
            holders,
            seats,
            subscription: key,
        };
        Ok(json_response(StatusCode::OK, &list))
    }

    /// `DELETE /v1/links/{app_user}/{marketplace}/{customer_id}`: 204 when a
    /// live link was removed, 404 when there was none (or only an expired
    /// one, which granted nothing).
    async fn remove_link(&self, caller: &Caller, params: &[String]) -> Result<Response, ApiError> {
        caller.require(Scope::Seats)?;
        let [user, customer @ ..] = params else {
            return Err(ApiError::internal("route template and handler disagree"));
        };
        let user = wire::valid_id("app_user", user.clone()).map_err(Rejection::InvalidRequest)?;
        let (marketplace, id) = key_params(customer, "customer_id")?;
        let (user, customer) = (AppUser(user), CustomerKey::new(marketplace, id));
        if !self
            .links
            .unlink_user(&user, &customer, self.clock.now())
            .await?
        {
            return Err(ApiError::not_found(format!(
                "no link from app user {} to customer {customer}",
                user.0
            )));
        }
        let mut res = http::Response::new(Body::Empty);
        *res.status_mut() = StatusCode::NO_CONTENT;
        Ok(res)
    }

    async fn subscription(&self, key: &SubscriptionKey) -> Result<Subscription, ApiError> {
        self.subscriptions
            .get(key)
            .await?
            .ok_or_else(|| not_found(key))
    }
}

fn not_found(key: &SubscriptionKey) -> ApiError {
    ApiError::not_found(format!("no subscription {key}"))
}

/// A decision and what it was made from: the subscriptions read, the
/// expiry of every link a check by app user went through, and the instant.
struct Answer {
    decision: Decision,
    subscriptions: Vec<Subscription>,
    link_expiries: Vec<DateTime<Utc>>,
    now: DateTime<Utc>,
}

/// A `/v1/check` or `/v1/token` question, once the caller may ask it:
/// scope `check`, and `seats` too when it claims a seat.
fn parse_question(caller: &Caller, req: &Request) -> Result<CheckRequest, ApiError> {
    caller.require(Scope::Check)?;
    let q: CheckRequest = parse(req)?;
    if q.claim_seat {
        caller.require(Scope::Seats)?;
    }
    Ok(q)
}

/// A JSON body, size-checked, as one of the API's request types.
fn parse<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let body = body_bytes(req)?;
    Ok(wire::parse_body(media_type(req.headers()), body)?)
}

/// `{marketplace}/{id}` path parameters.
fn key_params(params: &[String], id_name: &str) -> Result<(Marketplace, String), ApiError> {
    let [marketplace, id] = params else {
        return Err(ApiError::internal("route template and handler disagree"));
    };
    // The message names the choices, not the segment: it is the caller's.
    let marketplace = marketplace.parse::<Marketplace>().map_err(|_| {
        Rejection::InvalidRequest("`marketplace` must be `github`, `gcp` or `q2`".into())
    })?;
    let id = wire::valid_id(id_name, id.clone()).map_err(Rejection::InvalidRequest)?;
    Ok((marketplace, id))
}

fn openapi() -> Response {
    let mut res = http::Response::new(Body::Text(OPENAPI_JSON.to_owned()));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

#[async_trait]
impl Function for EntitlementCheck {
    async fn call(&self, req: Request) -> Result<Response, ApiError> {
        let matched = match_route(req.method(), req.uri().path())?;
        match matched.route {
            Route::Healthz => return Ok(super::healthz(Self::NAME)),
            Route::OpenApi => return Ok(openapi()),
            Route::Jwks => return Ok(tokens::jwks_response(self.tokens.as_deref())),
            _ => {}
        }
        // Authenticate before reading the body.
        let caller = self.auth.authenticate(&req, self.clock.now()).await?;
        if let Principal::ApiKey { name } = &caller.principal {
            tracing::debug!(api_key = %name, "caller");
        }
        match matched.route {
            Route::Check => self.check(&caller, &req).await,
            Route::Token => self.token(&caller, &req).await,
            Route::Customer => self.customer(&caller, &matched.params).await,
            Route::ClaimSeat => self.claim_seat(&caller, &req).await,
            Route::ReleaseSeat => self.release_seat(&caller, &req).await,
            Route::ListSeats => self.list_seats(&caller, &matched.params).await,
            Route::RemoveLink => self.remove_link(&caller, &matched.params).await,
            Route::Healthz | Route::OpenApi | Route::Jwks => {
                Err(ApiError::internal("unreachable route"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployed_auth_mode_is_checked_at_cold_start() {
        let no_keys = Authenticator::new(vec![], false);
        for mode in [None, Some("aws_iam"), Some("api_key")] {
            assert!(log_auth_mode(mode, &no_keys).is_ok(), "{mode:?}");
        }
        let err = log_auth_mode(Some("AWS-IAM"), &no_keys).unwrap_err();
        assert!(err.to_string().contains("TOLLGATE_CHECK_AUTH"), "{err}");
    }
}
