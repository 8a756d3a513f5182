//! `entitlement-check`: the API the vendor's apps call on their hot path —
//! "may this customer (and user) use this product/feature now, and if not,
//! why not?" — plus seat claims and the served OpenAPI document.
//!
//! A check by customer is exactly one store read
//! ([`Store::customer_subscriptions`]: one `Query` of a customer's
//! partition on DynamoDB, eventually consistent — a purchase is visible
//! within about a second), then the pure [`entitlement::decide`]. A check by
//! app user costs one more read for the user's links. A seat claim is one
//! more atomic, conditional write; seats are never given away on a stale read.

use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderValue, StatusCode, header};

use crate::api::auth::{Authenticator, Caller, Principal, Scope};
use crate::api::routes::{Route, match_route};
use crate::api::wire::{
    self, CheckRequest, CustomerView, SeatClaimed, SeatList, SeatReleased, SeatRequest, Subject,
    SubscriptionView,
};
use crate::api::{OPENAPI_JSON, Rejection};
use crate::clock::{Clock, SystemClock};
use crate::config::Catalog;
use crate::entitlement::{self, Decision, Reason, SeatsView};
use crate::model::{CustomerKey, Marketplace, Subscription, SubscriptionKey};
use crate::setup::{Deps, SetupError};
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
}

impl FromDeps for EntitlementCheck {
    const NAME: &'static str = "entitlement-check";

    async fn from_deps(deps: Deps) -> Result<Self, SetupError> {
        let allow = Authenticator::allow_unauthenticated_from(|k| std::env::var(k).ok());
        let auth = Authenticator::from_secrets(
            deps.secrets.with_prefix(crate::api::auth::SECRET_PREFIX),
            allow,
        )?;
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
        Ok(Self::new(&deps, auth, Arc::new(SystemClock)))
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
        }
    }

    async fn check(&self, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
        caller.require(Scope::Check)?;
        let q: CheckRequest = parse(req)?;
        if q.claim_seat {
            caller.require(Scope::Seats)?;
        }
        let subscriptions = match &q.subject {
            Subject::Customer(customer) => {
                self.subscriptions.customer_subscriptions(customer).await?
            }
            Subject::AppUser(user) => {
                let mut all = Vec::new();
                for customer in self.links.linked_customers(user).await? {
                    all.extend(self.subscriptions.customer_subscriptions(&customer).await?);
                }
                all
            }
        };
        let mut decision = entitlement::decide(
            &self.catalog,
            &subscriptions,
            &q.question(),
            self.clock.now(),
        );
        if let (true, Some(user)) = (q.claim_seat, q.user.as_deref()) {
            decision = self.claim_for(decision, &subscriptions, user).await?;
        }
        Ok(json_response(StatusCode::OK, &decision))
    }

    /// Turns a "would be allowed" decision into a held seat: claims one
    /// atomically when the deciding subscription counts seats and the user
    /// holds none, and lets the claim's result (not the possibly stale read)
    /// say whether a seat was free.
    async fn claim_for(
        &self,
        mut d: Decision,
        subscriptions: &[Subscription],
        user: &str,
    ) -> Result<Decision, ApiError> {
        let (
            Some(key),
            Some(SeatsView {
                limit: Some(limit), ..
            }),
        ) = (&d.subscription, d.seats)
        else {
            return Ok(d);
        };
        if !(d.allowed || d.reason == Reason::SeatLimitReached) {
            return Ok(d);
        }
        let held = subscriptions
            .iter()
            .any(|s| &s.key == key && s.seats.holders.contains(user));
        if held {
            return Ok(d);
        }
        let (allowed, reason, used) = match self.seats.claim_seat(key, user, limit).await? {
            SeatClaim::Granted { used } | SeatClaim::AlreadyHeld { used } => {
                (true, Reason::Ok, used)
            }
            SeatClaim::LimitReached { used } => (false, Reason::SeatLimitReached, used),
        };
        d.allowed = allowed;
        d.reason = reason;
        d.seats = Some(SeatsView {
            limit: Some(limit),
            used,
        });
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
        let d = wire::decide_for(&self.catalog, &sub, Some(&user), self.clock.now());
        let already_held = sub.seats.holders.contains(&user);
        let limit = match (d.reason, d.seats) {
            (Reason::Ok | Reason::SeatLimitReached, Some(seats)) => seats.limit,
            (Reason::Ok | Reason::SeatLimitReached, None) => None,
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
        let Some(limit) = limit else {
            // The tier does not count seats: the user may use it, nothing to record.
            let seats = d.seats.unwrap_or(SeatsView {
                limit: None,
                used: sub.seats.used(),
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
        let (already_held, used) = match self.seats.claim_seat(&subscription, &user, limit).await {
            Ok(SeatClaim::Granted { used }) => (false, used),
            Ok(SeatClaim::AlreadyHeld { used }) => (true, used),
            Ok(SeatClaim::LimitReached { used }) => {
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
        let seats = SeatsView {
            limit: Some(limit),
            used,
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
        let d = wire::decide_for(&self.catalog, &sub, None, self.clock.now());
        let seats = SeatsView {
            limit: d.seats.and_then(|s| s.limit),
            used: sub.seats.used(),
        };
        let list = SeatList {
            product: sub.product,
            holders: sub.seats.holders.into_iter().collect(),
            seats,
            subscription: key,
        };
        Ok(json_response(StatusCode::OK, &list))
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
    let marketplace = marketplace
        .parse::<Marketplace>()
        .map_err(|e| Rejection::InvalidRequest(e.to_string()))?;
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
            _ => {}
        }
        // Authenticate before reading the body.
        let caller = self.auth.authenticate(&req)?;
        if let Principal::ApiKey { name } = &caller.principal {
            tracing::debug!(api_key = %name, "caller");
        }
        match matched.route {
            Route::Check => self.check(&caller, &req).await,
            Route::Customer => self.customer(&caller, &matched.params).await,
            Route::ClaimSeat => self.claim_seat(&caller, &req).await,
            Route::ReleaseSeat => self.release_seat(&caller, &req).await,
            Route::ListSeats => self.list_seats(&caller, &matched.params).await,
            Route::Healthz | Route::OpenApi => Err(ApiError::internal("unreachable route")),
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
