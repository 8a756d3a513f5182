//! [`RequireEntitlement`]: a `tower` layer that lets a request through only
//! when Tollgate says the customer is entitled, and the [`Entitled`] axum
//! extractor that hands the [`Decision`] to the handler.
//!
//! Refusals are JSON, `{"error":{"code":<reason>,"message":...}}` (plus
//! `"decision"` with [`RequireEntitlement::expose_decision`]): 402 when
//! buying something fixes it, 403 when the customer bought but access is
//! withheld, 500 when the layer asks about a product or feature Tollgate's
//! configuration does not define (a bug in the app, not the customer's; see
//! [`refusal_status`]), 401 when the request names no customer, 503 when
//! Tollgate cannot be asked. Every one of them fails closed.
//!
//! The layer asks through [`EntitlementClient::decide`]: with
//! [`EntitlementClient::with_tokens`] a request is let through on a cached,
//! locally verified entitlement token while it lives (no network call), and
//! `/v1/check` answers whenever no valid token can be had.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Json;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde_json::json;
use tower::{Layer, Service};

use crate::client::{ClientError, EntitlementClient};
use crate::{CheckRequest, CustomerRef, Decision, Marketplace, Reason};

/// Who a request acts for: the paying customer and, optionally, the app user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub customer: CustomerRef,
    pub user: Option<String>,
}

impl Subject {
    pub fn new(customer: CustomerRef, user: Option<String>) -> Self {
        Self { customer, user }
    }

    /// An identify function reading `<marketplace>:<customer id>` (e.g.
    /// `github:4242`) from `customer_header` and the acting user from
    /// `user_header`. Use it only behind something that sets these headers
    /// from an authenticated session (your auth proxy or middleware): a
    /// header the end user controls is not an identity.
    pub fn from_headers(
        customer_header: &'static str,
        user_header: &'static str,
    ) -> impl Fn(&Parts) -> Option<Subject> + Clone + Send + Sync + 'static {
        move |parts: &Parts| {
            let header = |name: &str| {
                parts
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            };
            let (marketplace, id) = header(customer_header)?.split_once(':')?;
            let marketplace: Marketplace = marketplace.parse().ok()?;
            Some(Subject {
                customer: CustomerRef::customer(marketplace, id),
                user: header(user_header).map(str::to_owned),
            })
        }
    }
}

type Identify = dyn Fn(&Parts) -> Option<Subject> + Send + Sync;

/// Requires an entitlement to `product` (and optionally a feature) for every
/// request of the wrapped service. Build it once, `.layer(...)` it on a
/// router or route.
#[derive(Clone)]
pub struct RequireEntitlement {
    client: EntitlementClient,
    product: Arc<str>,
    feature: Option<Arc<str>>,
    claim_seat: bool,
    expose_decision: bool,
    identify: Arc<Identify>,
}

impl std::fmt::Debug for RequireEntitlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireEntitlement")
            .field("product", &self.product)
            .field("feature", &self.feature)
            .field("claim_seat", &self.claim_seat)
            .field("expose_decision", &self.expose_decision)
            .finish_non_exhaustive()
    }
}

impl RequireEntitlement {
    /// `identify` names the customer (and user) of a request, e.g. from the
    /// app's session in the request extensions, or [`Subject::from_headers`];
    /// `None` refuses the request with 401.
    pub fn new(
        client: EntitlementClient,
        product: impl Into<String>,
        identify: impl Fn(&Parts) -> Option<Subject> + Send + Sync + 'static,
    ) -> Self {
        Self {
            client,
            product: Arc::from(product.into()),
            feature: None,
            claim_seat: false,
            expose_decision: false,
            identify: Arc::new(identify),
        }
    }

    /// Also require this feature of the customer's tier.
    pub fn feature(mut self, feature: impl Into<String>) -> Self {
        self.feature = Some(Arc::from(feature.into()));
        self
    }

    /// On seat-counted tiers, claim a seat for the request's user (the first
    /// request of a new user takes a free seat; a full tier is refused with
    /// `seat_limit_reached`). Needs an API key with the `seats` scope.
    pub fn claim_seat(mut self) -> Self {
        self.claim_seat = true;
        self
    }

    /// Put the whole [`Decision`] (plan, tier, seats, subscription id) in
    /// refusals, for internal apps whose users may see it. By default a
    /// refusal carries only the reason: an end user refused at a seat limit
    /// needn't learn the customer's plan, seat count or subscription id.
    pub fn expose_decision(mut self) -> Self {
        self.expose_decision = true;
        self
    }

    fn question(&self, subject: Subject) -> CheckRequest {
        let mut q = CheckRequest::new(subject.customer, &*self.product);
        if let Some(feature) = &self.feature {
            q = q.feature(&**feature);
        }
        if let Some(user) = subject.user {
            q = q.user(user);
            if self.claim_seat {
                q = q.claim_seat();
            }
        }
        q
    }
}

impl<S> Layer<S> for RequireEntitlement {
    type Service = RequireEntitlementService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireEntitlementService {
            inner,
            config: self.clone(),
        }
    }
}

/// The service [`RequireEntitlement`] wraps around yours.
#[derive(Clone, Debug)]
pub struct RequireEntitlementService<S> {
    inner: S,
    config: RequireEntitlement,
}

impl<S, B> Service<http::Request<B>> for RequireEntitlementService<S>
where
    S: Service<http::Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The service that was polled ready handles this request; a clone
        // takes its place for the next one.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let config = self.config.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let Some(subject) = (config.identify)(&parts) else {
                return Ok(error_response(
                    StatusCode::UNAUTHORIZED,
                    "unidentified",
                    "this request names no customer",
                ));
            };
            // A verified token's decision when the client has tokens on
            // (`EntitlementClient::with_tokens`), else `/v1/check`.
            match config.client.decide(&config.question(subject)).await {
                Ok(decision) if decision.allowed => {
                    parts.extensions.insert(decision);
                    inner.call(http::Request::from_parts(parts, body)).await
                }
                Ok(decision) => Ok(refusal(decision, config.expose_decision)),
                Err(e) => Ok(unavailable(&e)),
            }
        })
    }
}

/// 402 Payment Required when a purchase (or upgrade, or more seats) fixes
/// the refusal; 403 Forbidden when the customer has bought but access is
/// withheld (sign-up or approval pending, suspended, plan not configured,
/// or a reason this version does not know); 500 Internal Server Error when
/// the layer's own product or feature is not defined in Tollgate's
/// `tollgate.toml` ([`Reason::is_undefined_name`]): nothing the customer
/// does fixes that, the app (or the file) must change.
pub fn refusal_status(reason: &Reason) -> StatusCode {
    match reason {
        Reason::NoSubscription
        | Reason::TrialExpired
        | Reason::Cancelled
        | Reason::FeatureNotInPlan
        | Reason::SeatLimitReached => StatusCode::PAYMENT_REQUIRED,
        Reason::UnknownProduct | Reason::UnknownFeature => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::FORBIDDEN,
    }
}

fn refusal_message(reason: &Reason) -> &'static str {
    match reason {
        Reason::NoSubscription => "no subscription to this product",
        Reason::PendingSignup => "finish signing up to start using this product",
        Reason::PendingApproval => "the subscription is waiting for approval",
        Reason::TrialExpired => "the free trial has ended",
        Reason::Cancelled => "the subscription has ended",
        Reason::Suspended => "the subscription is suspended",
        Reason::FeatureNotInPlan => "the current plan does not include this feature",
        Reason::SeatLimitReached => "every seat of this subscription is taken",
        Reason::UnknownPlan => "the plan is not configured for this product",
        Reason::UnknownProduct => "this app asks about a product Tollgate does not define",
        Reason::UnknownFeature => "this app asks about a feature the product does not define",
        Reason::Ok | Reason::Unrecognized => "access is not granted",
    }
}

fn refusal(decision: Decision, expose_decision: bool) -> Response {
    let status = refusal_status(&decision.reason);
    let error =
        json!({"code": decision.reason.as_str(), "message": refusal_message(&decision.reason)});
    let body = if expose_decision {
        json!({"error": error, "decision": decision})
    } else {
        json!({"error": error})
    };
    (status, Json(body)).into_response()
}

fn unavailable(e: &ClientError) -> Response {
    // Fail closed; the cause (never the key) is for the app's logs, not the user.
    let code = e.code().unwrap_or("unreachable").to_owned();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": {
            "code": "entitlement_unavailable",
            "message": "cannot verify the subscription right now; try again shortly",
            "cause": code,
        }})),
    )
        .into_response()
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// The [`Decision`] that let this request through [`RequireEntitlement`].
/// On a route without the layer it rejects with 500, which is a wiring bug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitled(pub Decision);

impl<S: Send + Sync> FromRequestParts<S> for Entitled {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<Decision>()
            .cloned()
            .map(Entitled)
            .ok_or_else(|| {
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "entitlement_not_checked",
                    "RequireEntitlement is not installed on this route",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn headers_identify_a_customer_and_user() {
        let identify = Subject::from_headers("x-org", "x-user");
        let s = identify(&parts(&[("x-org", "github:4242"), ("x-user", "alice")])).unwrap();
        assert_eq!(
            s.customer,
            CustomerRef::customer(Marketplace::Github, "4242")
        );
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert!(identify(&parts(&[("x-org", "aws:1")])).is_none());
        assert!(identify(&parts(&[("x-org", "github")])).is_none());
        assert!(identify(&parts(&[])).is_none());
    }

    #[test]
    fn refusals_fixed_by_buying_are_402_others_403() {
        assert_eq!(refusal_status(&Reason::FeatureNotInPlan), 402);
        assert_eq!(refusal_status(&Reason::SeatLimitReached), 402);
        assert_eq!(refusal_status(&Reason::Suspended), 403);
        assert_eq!(refusal_status(&Reason::UnknownPlan), 403);
        assert_eq!(refusal_status(&Reason::Unrecognized), 403);
        // The app's own mistake: a server error, still closed.
        assert_eq!(refusal_status(&Reason::UnknownProduct), 500);
        assert_eq!(refusal_status(&Reason::UnknownFeature), 500);
        for reason in Reason::ALL.into_iter().filter(|r| *r != Reason::Ok) {
            let status = refusal_status(&reason);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{reason}: {status}"
            );
            assert_ne!(
                refusal_message(&reason),
                refusal_message(&Reason::Ok),
                "{reason}"
            );
        }
    }

    async fn body_of(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_refusal_names_the_reason_and_keeps_the_customer_to_itself() {
        let decision: Decision = serde_json::from_value(json!({
            "allowed": false, "reason": "seat_limit_reached",
            "subscription": {"marketplace": "github", "id": "sub-31337"},
            "status": "active", "plan": "plan-enterprise-77", "tier": "team",
            "features": ["private-repos"], "trial_days_left": null,
            "access_until": null, "seats": {"limit": 5, "used": 5}
        }))
        .unwrap();

        let res = refusal(decision.clone(), false);
        assert_eq!(res.status(), StatusCode::PAYMENT_REQUIRED);
        let body = body_of(res).await;
        assert_eq!(
            body,
            json!({"error": {"code": "seat_limit_reached", "message": "every seat of this subscription is taken"}})
        );
        let text = body.to_string();
        for private in ["sub-31337", "plan-enterprise-77", "seats"] {
            assert!(!text.contains(private), "{private} in {text}");
        }

        // Internal apps may opt in to the whole decision.
        let body = body_of(refusal(decision, true)).await;
        assert_eq!(body["decision"]["plan"], "plan-enterprise-77");
        assert_eq!(body["decision"]["seats"]["used"], 5);
    }
}
