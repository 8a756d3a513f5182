//! The JSON bodies of the entitlement-check API.
//!
//! Field names and reason strings are a public contract documented in
//! `openapi/entitlement-check.json`. Optional fields are always present in
//! responses (as `null` when unknown), so apps can rely on the shape.
//! Requests reject unknown fields: a misspelt `"feautre"` must fail loudly
//! rather than silently check the product without the feature.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::Catalog;
use crate::entitlement::{self, Decision, Question, Reason, SeatsView};
use crate::model::{
    AppUser, Awaiting, BillingCycle, CustomerKey, Marketplace, PendingChange, Status, Subscription,
    SubscriptionKey,
};

use super::Rejection;

/// Longest id, product, feature or user name accepted, in bytes. Marketplace
/// ids are far shorter; the cap keeps store keys well inside DynamoDB's limits.
pub const MAX_ID_BYTES: usize = 512;

/// Parses a JSON request body: a non-JSON content type is 415, broken JSON
/// is `invalid_json`, well-formed JSON of the wrong shape is `invalid_request`.
pub fn parse_body<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, Rejection> {
    let essence = content_type
        .and_then(|ct| ct.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(Rejection::UnsupportedMediaType);
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Rejection::InvalidRequest(e.to_string()),
        _ => Rejection::InvalidJson(e.to_string()),
    })
}

/// Whose entitlement is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A paying marketplace customer (one store read).
    Customer(CustomerKey),
    /// An app user linked to customers at OAuth or sign-up (one read for the
    /// links, then one per linked customer).
    AppUser(AppUser),
}

/// `POST /v1/check` as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckRequest {
    #[serde(default)]
    marketplace: Option<Marketplace>,
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    app_user: Option<String>,
    product: String,
    #[serde(default)]
    feature: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    claim_seat: bool,
}

/// `POST /v1/check`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawCheckRequest")]
pub struct CheckRequest {
    pub subject: Subject,
    pub product: String,
    pub feature: Option<String>,
    /// The app user acting, for seat-counted tiers.
    pub user: Option<String>,
    /// Claim a seat for `user` in the same call (seat-counted tiers only).
    pub claim_seat: bool,
}

impl CheckRequest {
    pub fn question(&self) -> Question<'_> {
        Question {
            product: &self.product,
            feature: self.feature.as_deref(),
            user: self.user.as_deref(),
        }
    }
}

impl TryFrom<RawCheckRequest> for CheckRequest {
    type Error = String;

    fn try_from(raw: RawCheckRequest) -> Result<Self, String> {
        let subject = match (raw.marketplace, raw.customer_id, raw.app_user) {
            (Some(m), Some(id), None) => {
                Subject::Customer(CustomerKey::new(m, valid_id("customer_id", id)?))
            }
            (None, None, Some(user)) => Subject::AppUser(AppUser(valid_id("app_user", user)?)),
            (None, None, None) => {
                return Err(
                    "name the customer: `marketplace` and `customer_id`, or `app_user`".into(),
                );
            }
            (_, _, Some(_)) => {
                return Err(
                    "send either `marketplace` and `customer_id`, or `app_user`, not both".into(),
                );
            }
            (Some(_), None, None) => return Err("`marketplace` needs `customer_id`".into()),
            (None, Some(_), None) => return Err("`customer_id` needs `marketplace`".into()),
        };
        let user = raw.user.map(|u| valid_id("user", u)).transpose()?;
        if raw.claim_seat && user.is_none() {
            return Err("`claim_seat` needs `user` (the app user who takes the seat)".into());
        }
        Ok(Self {
            subject,
            product: valid_id("product", raw.product)?,
            feature: raw.feature.map(|f| valid_id("feature", f)).transpose()?,
            user,
            claim_seat: raw.claim_seat,
        })
    }
}

/// `POST /v1/seats/claim` and `POST /v1/seats/release`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeatRequest {
    marketplace: Marketplace,
    subscription_id: String,
    user: String,
}

/// A seat operation on one subscription, validated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawSeatRequest")]
pub struct SeatRequest {
    pub subscription: SubscriptionKey,
    pub user: String,
}

impl TryFrom<RawSeatRequest> for SeatRequest {
    type Error = String;

    fn try_from(raw: RawSeatRequest) -> Result<Self, String> {
        Ok(Self {
            subscription: SubscriptionKey::new(
                raw.marketplace,
                valid_id("subscription_id", raw.subscription_id)?,
            ),
            user: valid_id("user", raw.user)?,
        })
    }
}

/// Non-empty, at most [`MAX_ID_BYTES`], no control characters.
pub fn valid_id(field: &str, value: String) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(format!("`{field}` is longer than {MAX_ID_BYTES} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("`{field}` must not contain control characters"));
    }
    Ok(value)
}

/// A subscription as apps see it (`GET /v1/customers/...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionView {
    pub subscription: SubscriptionKey,
    pub product: String,
    /// The marketplace's plan id.
    pub plan: String,
    pub plan_name: Option<String>,
    /// The configured tier the plan maps to; `null` for an unknown plan.
    pub tier: Option<String>,
    pub status: Status,
    /// What a `pending` subscription waits for.
    pub awaiting: Option<Awaiting>,
    /// Whether the customer may use the product now (no feature, no user).
    pub allowed: bool,
    pub reason: Reason,
    pub features: Vec<String>,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub trial_days_left: Option<u32>,
    pub access_until: Option<DateTime<Utc>>,
    pub next_billing_at: Option<DateTime<Utc>>,
    pub billing_cycle: Option<BillingCycle>,
    pub pending_change: Option<PendingChangeView>,
    pub seats: Option<SeatsView>,
}

impl SubscriptionView {
    pub fn new(catalog: &Catalog, sub: &Subscription, now: DateTime<Utc>) -> Self {
        let d = decide_for(catalog, sub, None, now);
        Self {
            subscription: sub.key.clone(),
            product: sub.product.clone(),
            plan: sub.plan.id.clone(),
            plan_name: sub.plan.name.clone(),
            tier: d.tier,
            status: sub.status,
            awaiting: sub.awaiting,
            allowed: d.allowed,
            reason: d.reason,
            features: d.features,
            trial_ends_at: sub.trial_ends_at,
            trial_days_left: d.trial_days_left,
            access_until: sub.access_until,
            next_billing_at: sub.next_billing_at,
            billing_cycle: sub.billing_cycle,
            pending_change: sub.pending_change.as_ref().map(PendingChangeView::from),
            seats: d.seats,
        }
    }
}

/// The decision for one subscription's own product, optionally for a user.
pub fn decide_for(
    catalog: &Catalog,
    sub: &Subscription,
    user: Option<&str>,
    now: DateTime<Utc>,
) -> Decision {
    let question = Question {
        product: &sub.product,
        feature: None,
        user,
    };
    entitlement::decide(catalog, std::slice::from_ref(sub), &question, now)
}

/// A change the marketplace announced for a later date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingChangeView {
    /// `plan` (plan and/or seat change) or `cancellation`.
    pub kind: &'static str,
    /// The plan id it moves to (`plan` changes only).
    pub plan: Option<String>,
    /// The seat count it moves to, when it changes seats.
    pub seats: Option<u32>,
    pub effective_at: DateTime<Utc>,
}

impl From<&PendingChange> for PendingChangeView {
    fn from(change: &PendingChange) -> Self {
        match change {
            PendingChange::Plan {
                plan,
                seats,
                effective_at,
            } => Self {
                kind: "plan",
                plan: Some(plan.id.clone()),
                seats: *seats,
                effective_at: *effective_at,
            },
            PendingChange::Cancellation { effective_at } => Self {
                kind: "cancellation",
                plan: None,
                seats: None,
                effective_at: *effective_at,
            },
        }
    }
}

/// `GET /v1/customers/{marketplace}/{customer_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerView {
    pub customer: CustomerKey,
    pub subscriptions: Vec<SubscriptionView>,
}

/// `POST /v1/seats/claim`, when the user may use a seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatClaimed {
    pub subscription: SubscriptionKey,
    pub user: String,
    /// The user held a seat before this call (claims are idempotent).
    pub already_held: bool,
    /// `limit: null`: the tier does not count seats, nothing was recorded.
    pub seats: SeatsView,
}

/// `POST /v1/seats/release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatReleased {
    pub subscription: SubscriptionKey,
    pub user: String,
    /// `false`: the user held no seat (releasing is idempotent).
    pub released: bool,
}

/// `GET /v1/seats/{marketplace}/{subscription_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatList {
    pub subscription: SubscriptionKey,
    pub product: String,
    pub seats: SeatsView,
    /// Users holding a seat, sorted.
    pub holders: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<CheckRequest, Rejection> {
        parse_body(Some("application/json"), json.as_bytes())
    }

    #[test]
    fn a_check_names_a_customer_or_an_app_user() {
        let q = check(r#"{"marketplace":"github","customer_id":"42","product":"ci"}"#).unwrap();
        assert_eq!(
            q.subject,
            Subject::Customer(CustomerKey::new(Marketplace::Github, "42"))
        );
        let q = check(r#"{"app_user":"u-1","product":"ci","feature":"sso"}"#).unwrap();
        assert_eq!(q.subject, Subject::AppUser(AppUser("u-1".into())));
        assert_eq!(q.question().feature, Some("sso"));
    }

    #[test]
    fn ambiguous_or_incomplete_subjects_are_invalid_requests() {
        for body in [
            r#"{"product":"ci"}"#,
            r#"{"marketplace":"github","product":"ci"}"#,
            r#"{"customer_id":"1","product":"ci"}"#,
            r#"{"marketplace":"github","customer_id":"1","app_user":"u","product":"ci"}"#,
            r#"{"marketplace":"aws","customer_id":"1","product":"ci"}"#,
            r#"{"app_user":"u","product":""}"#,
            r#"{"app_user":"u","product":"ci","claim_seat":true}"#,
            r#"{"app_user":"u","product":"ci","feautre":"sso"}"#,
        ] {
            match check(body) {
                Err(Rejection::InvalidRequest(msg)) => assert!(!msg.is_empty(), "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn broken_json_and_wrong_content_types_are_told_apart() {
        assert!(matches!(check("{"), Err(Rejection::InvalidJson(_))));
        assert!(matches!(check("nope"), Err(Rejection::InvalidJson(_))));
        let form = parse_body::<CheckRequest>(Some("application/x-www-form-urlencoded"), b"a=1");
        assert_eq!(form.unwrap_err(), Rejection::UnsupportedMediaType);
        assert_eq!(
            parse_body::<CheckRequest>(None, b"{}").unwrap_err(),
            Rejection::UnsupportedMediaType
        );
    }

    #[test]
    fn ids_are_bounded() {
        let long = "x".repeat(MAX_ID_BYTES + 1);
        let body = format!(r#"{{"app_user":"{long}","product":"ci"}}"#);
        assert!(
            matches!(check(&body), Err(Rejection::InvalidRequest(m)) if m.contains("app_user"))
        );
        assert!(valid_id("user", "a\u{0}b".into()).is_err());
    }
}
