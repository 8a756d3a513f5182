//! The entitlement-check API's request and answer types, shared by the
//! handler and `tollgate-client`: the handler reads requests and writes
//! answers with them, the client writes requests and reads answers with the
//! very same types, so the two cannot drift apart.
//!
//! Field names and reason strings are a public contract documented in
//! `openapi/entitlement-check.json`. Optional fields are always present in
//! answers (as `null` when unknown), so apps can rely on the shape.
//! Requests reject unknown fields: a misspelt `"feautre"` must fail loudly
//! rather than silently check the product without the feature. A misspelt
//! *value* is another matter: whether `"product": "acme-cl"` names anything
//! depends on the deployment's `tollgate.toml`, so it is a well-formed
//! question, answered with [`Reason::UnknownProduct`] (or
//! [`Reason::UnknownFeature`]) rather than refused.
//!
//! Answers also carry types defined with the model and the decision
//! ([`Decision`], [`Reason`], [`SeatsView`], [`Status`], the keys, ...);
//! they are re-exported here so this module names the whole contract.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::config::Catalog;
use crate::entitlement::{self, Question};
use crate::model::{PendingChange, Subscription};

pub use crate::entitlement::{Decision, Reason, SeatsView};
pub use crate::model::{
    AppUser, Awaiting, BillingCycle, CustomerKey, Marketplace, Status, SubscriptionKey,
    UnknownMarketplace,
};

/// Longest id, product, feature or user name accepted, in bytes. Marketplace
/// ids are far shorter; the cap keeps store keys well inside DynamoDB's limits.
pub const MAX_ID_BYTES: usize = 512;

/// Non-empty, at most [`MAX_ID_BYTES`] bytes of UTF-8, no control
/// characters (Unicode's `Cc`: U+0000–U+001F, U+007F–U+009F). The OpenAPI
/// document states the same rules (`minLength`, `maxLength`, `pattern`);
/// `tests/tests/entitlement_check_openapi.rs` holds the two together.
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

/// Whose entitlement is asked about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A paying marketplace customer (one store read).
    Customer(CustomerKey),
    /// An app user linked to customers at OAuth or sign-up (one read for the
    /// links, then one per linked customer).
    AppUser(AppUser),
}

impl Subject {
    pub fn customer(marketplace: Marketplace, id: impl Into<String>) -> Self {
        Subject::Customer(CustomerKey::new(marketplace, id))
    }

    pub fn app_user(user: impl Into<String>) -> Self {
        Subject::AppUser(AppUser(user.into()))
    }
}

/// `POST /v1/check`. Apps build it with [`CheckRequest::new`] and the
/// setters; the handler reads it validated (ids bounded, exactly one
/// subject, `claim_seat` only with a `user`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawCheckRequest")]
pub struct CheckRequest {
    pub subject: Subject,
    pub product: String,
    /// Also require this feature of the tier.
    pub feature: Option<String>,
    /// The app user acting, for seat-counted tiers.
    pub user: Option<String>,
    /// Claim a seat for `user` in the same call (seat-counted tiers only).
    pub claim_seat: bool,
}

impl CheckRequest {
    pub fn new(subject: Subject, product: impl Into<String>) -> Self {
        Self {
            subject,
            product: product.into(),
            feature: None,
            user: None,
            claim_seat: false,
        }
    }

    /// Also require this feature of the tier.
    pub fn feature(mut self, feature: impl Into<String>) -> Self {
        self.feature = Some(feature.into());
        self
    }

    /// The app user acting (seat-counted tiers check that they hold or can get a seat).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Claim a seat for [`user`](Self::user) in the same call (needs the `seats` scope).
    pub fn claim_seat(mut self) -> Self {
        self.claim_seat = true;
        self
    }

    /// What [`entitlement::decide`] is asked.
    pub fn question(&self) -> Question<'_> {
        Question {
            product: &self.product,
            feature: self.feature.as_deref(),
            user: self.user.as_deref(),
            seated: &[],
        }
    }
}

/// `POST /v1/check` as read, before validation. An optional field is
/// absent or holds a value: `"feature": null` is refused, not read as "no
/// feature" (an app variable left unset must not widen the question).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckRequest {
    #[serde(default, deserialize_with = "present")]
    marketplace: Option<Marketplace>,
    #[serde(default, deserialize_with = "present")]
    customer_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    app_user: Option<String>,
    product: String,
    #[serde(default, deserialize_with = "present")]
    feature: Option<String>,
    #[serde(default, deserialize_with = "present")]
    user: Option<String>,
    #[serde(default)]
    claim_seat: bool,
}

/// A field that is there must hold a `T`; `null` is no `T`. (Absent fields
/// are `None` through `#[serde(default)]`.)
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `POST /v1/check` as written: only what is set.
#[derive(Serialize)]
struct CheckRequestBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    marketplace: Option<Marketplace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_user: Option<&'a str>,
    product: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    feature: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    claim_seat: bool,
}

impl Serialize for CheckRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (marketplace, customer_id, app_user) = match &self.subject {
            Subject::Customer(c) => (Some(c.marketplace), Some(c.id.as_str()), None),
            Subject::AppUser(u) => (None, None, Some(u.0.as_str())),
        };
        CheckRequestBody {
            marketplace,
            customer_id,
            app_user,
            product: &self.product,
            feature: self.feature.as_deref(),
            user: self.user.as_deref(),
            claim_seat: self.claim_seat,
        }
        .serialize(s)
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

/// `POST /v1/seats/claim` and `POST /v1/seats/release`: a seat operation on
/// one subscription. On the wire the key is flat:
/// `{"marketplace","subscription_id","user"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawSeatRequest")]
pub struct SeatRequest {
    pub subscription: SubscriptionKey,
    pub user: String,
}

impl SeatRequest {
    pub fn new(subscription: SubscriptionKey, user: impl Into<String>) -> Self {
        Self {
            subscription,
            user: user.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeatRequest {
    marketplace: Marketplace,
    subscription_id: String,
    user: String,
}

#[derive(Serialize)]
struct SeatRequestBody<'a> {
    marketplace: Marketplace,
    subscription_id: &'a str,
    user: &'a str,
}

impl Serialize for SeatRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SeatRequestBody {
            marketplace: self.subscription.marketplace,
            subscription_id: &self.subscription.id,
            user: &self.user,
        }
        .serialize(s)
    }
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

/// A subscription as apps see it (`GET /v1/customers/...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The decision for one subscription's own product, optionally for a user
/// (who is not known to hold a seat: see [`Question::seated`]).
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
        seated: &[],
    };
    entitlement::decide(catalog, std::slice::from_ref(sub), &question, now)
}

/// What kind of change is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingChangeKind {
    /// A plan and/or seat change.
    Plan,
    /// The subscription ends.
    Cancellation,
}

/// A change the marketplace announced for a later date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChangeView {
    pub kind: PendingChangeKind,
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
                kind: PendingChangeKind::Plan,
                plan: Some(plan.id.clone()),
                seats: *seats,
                effective_at: *effective_at,
            },
            PendingChange::Cancellation { effective_at } => Self {
                kind: PendingChangeKind::Cancellation,
                plan: None,
                seats: None,
                effective_at: *effective_at,
            },
        }
    }
}

/// `GET /v1/customers/{marketplace}/{customer_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerView {
    pub customer: CustomerKey,
    pub subscriptions: Vec<SubscriptionView>,
}

/// `POST /v1/seats/claim`, when the user may use a seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatClaimed {
    pub subscription: SubscriptionKey,
    pub user: String,
    /// The user held a seat before this call (claims are idempotent).
    pub already_held: bool,
    /// `limit: null`: the tier does not count seats, nothing was recorded.
    pub seats: SeatsView,
}

/// `POST /v1/seats/release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatReleased {
    pub subscription: SubscriptionKey,
    pub user: String,
    /// `false`: the user held no seat (releasing is idempotent).
    pub released: bool,
}

/// `GET /v1/seats/{marketplace}/{subscription_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatList {
    pub subscription: SubscriptionKey,
    pub product: String,
    pub seats: SeatsView,
    /// Users holding a seat, sorted.
    pub holders: Vec<String>,
}

impl Decision {
    /// Allowed, and the tier includes `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.allowed && self.features.iter().any(|f| f == feature)
    }
}

impl Awaiting {
    pub fn as_str(self) -> &'static str {
        match self {
            Awaiting::Signup => "signup",
            Awaiting::Approval => "approval",
        }
    }
}

// The wire strings, for logs and messages.

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Awaiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    /// What one side writes, the other reads back to the same value.
    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(value: &T) -> Value {
        let json = serde_json::to_value(value).unwrap();
        let back: T = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(&back, value, "{json}");
        json
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0).unwrap()
    }

    #[test]
    fn check_requests_write_only_what_is_set_and_read_back() {
        let q = CheckRequest::new(Subject::customer(Marketplace::Gcp, "acct"), "ci");
        assert_eq!(
            round_trip(&q),
            json!({"marketplace":"gcp","customer_id":"acct","product":"ci"})
        );
        let q = CheckRequest::new(Subject::app_user("u"), "ci")
            .feature("sso")
            .user("alice")
            .claim_seat();
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            r#"{"app_user":"u","product":"ci","feature":"sso","user":"alice","claim_seat":true}"#
        );
        round_trip(&q);
    }

    #[test]
    fn invalid_check_requests_are_refused_with_the_field_named() {
        for (body, names) in [
            (json!({"product": "ci"}), "marketplace"),
            (json!({"app_user": "u", "product": ""}), "product"),
            (
                json!({"app_user": "u", "product": "ci", "claim_seat": true}),
                "user",
            ),
            (
                json!({"app_user": "u", "product": "ci", "feautre": "sso"}),
                "feautre",
            ),
            (json!([]), "CheckRequest"),
            (
                json!({"app_user": "u", "product": "ci", "feature": null}),
                "null",
            ),
            (
                json!({"marketplace": null, "customer_id": "1", "product": "ci"}),
                "null",
            ),
            (
                json!({"app_user": "u", "product": "ci", "user": null}),
                "null",
            ),
        ] {
            let err = serde_json::from_value::<CheckRequest>(body.clone()).unwrap_err();
            assert!(err.to_string().contains(names), "{body}: {err}");
        }
    }

    #[test]
    fn seat_requests_are_flat_on_the_wire() {
        let r = SeatRequest::new(SubscriptionKey::new(Marketplace::Github, "7"), "alice");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"marketplace":"github","subscription_id":"7","user":"alice"}"#
        );
        round_trip(&r);
        let long = "x".repeat(MAX_ID_BYTES + 1);
        let body = json!({"marketplace": "github", "subscription_id": long, "user": "a"});
        assert!(serde_json::from_value::<SeatRequest>(body).is_err());
    }

    #[test]
    fn answers_read_back_what_they_write_with_every_field_present() {
        let key = SubscriptionKey::new(Marketplace::Github, "42");
        let seats = SeatsView {
            limit: Some(3),
            used: 1,
        };
        let full = SubscriptionView {
            subscription: key.clone(),
            product: "ci".into(),
            plan: "2".into(),
            plan_name: Some("Team".into()),
            tier: Some("team".into()),
            status: Status::PendingCancellation,
            awaiting: Some(Awaiting::Approval),
            allowed: true,
            reason: Reason::Ok,
            features: vec!["private".into()],
            trial_ends_at: Some(at()),
            trial_days_left: Some(2),
            access_until: Some(at()),
            next_billing_at: Some(at()),
            billing_cycle: Some(BillingCycle::Yearly),
            pending_change: Some(PendingChangeView {
                kind: PendingChangeKind::Plan,
                plan: Some("1".into()),
                seats: Some(5),
                effective_at: at(),
            }),
            seats: Some(seats),
        };
        let empty = SubscriptionView {
            plan_name: None,
            tier: None,
            status: Status::Cancelled,
            awaiting: None,
            allowed: false,
            reason: Reason::Cancelled,
            features: Vec::new(),
            trial_ends_at: None,
            trial_days_left: None,
            access_until: None,
            next_billing_at: None,
            billing_cycle: None,
            pending_change: None,
            seats: None,
            ..full.clone()
        };
        let view = round_trip(&CustomerView {
            customer: CustomerKey::new(Marketplace::Github, "42"),
            subscriptions: vec![full, empty],
        });
        assert_eq!(view["subscriptions"][0]["billing_cycle"], "yearly");
        assert_eq!(view["subscriptions"][0]["pending_change"]["kind"], "plan");
        assert_eq!(view["subscriptions"][1].as_object().unwrap().len(), 17);
        assert!(view["subscriptions"][1]["pending_change"].is_null());

        round_trip(&SeatClaimed {
            subscription: key.clone(),
            user: "alice".into(),
            already_held: false,
            seats,
        });
        round_trip(&SeatReleased {
            subscription: key.clone(),
            user: "alice".into(),
            released: true,
        });
        round_trip(&SeatList {
            subscription: key,
            product: "ci".into(),
            seats,
            holders: vec!["alice".into()],
        });
    }

    #[test]
    fn pending_changes_are_shown_by_kind() {
        let cancel = PendingChangeView::from(&PendingChange::Cancellation { effective_at: at() });
        assert_eq!(
            round_trip(&cancel),
            json!({"kind": "cancellation", "plan": null, "seats": null, "effective_at": "2026-05-10T12:00:00Z"})
        );
    }

    #[test]
    fn display_is_the_wire_string() {
        assert_eq!(Reason::SeatLimitReached.to_string(), "seat_limit_reached");
        assert_eq!(
            Status::PendingCancellation.to_string(),
            "pending_cancellation"
        );
        for a in [Awaiting::Signup, Awaiting::Approval] {
            assert_eq!(serde_json::to_value(a).unwrap(), a.to_string());
        }
    }

    #[test]
    fn has_feature_needs_access_and_the_feature() {
        let mut d: Decision = serde_json::from_value(json!({
            "allowed": true, "reason": "ok", "subscription": null, "status": "active",
            "plan": "2", "tier": "team", "features": ["sso"], "trial_days_left": null,
            "access_until": null, "seats": null
        }))
        .unwrap();
        assert!(d.has_feature("sso") && !d.has_feature("audit-log"));
        d.allowed = false;
        assert!(!d.has_feature("sso"));
    }

    #[test]
    fn a_reason_from_a_newer_server_reads_as_an_unrecognized_denial() {
        let d: Decision = serde_json::from_value(serde_json::json!({
            "allowed": false, "reason": "region_blocked", "subscription": null,
            "status": null, "plan": null, "tier": null, "features": [],
            "trial_days_left": null, "access_until": null, "seats": null
        }))
        .unwrap();
        assert_eq!((d.allowed, d.reason), (false, Reason::Unrecognized));
        assert!(
            !Reason::ALL.contains(&Reason::Unrecognized),
            "never produced"
        );
    }
}
