//! Signed entitlement tokens: what a token says, and for how long it may
//! say it. Pure; signing and verifying happen in `tollgate-shared`
//! (`api::token`) and in `tollgate-client`, both with `jsonwebtoken` over
//! aws-lc-rs.
//!
//! A token is a JWT (`alg` [`ALGORITHM`], Ed25519) whose claims are
//! [`EntitlementClaims`]: the registered claims (`iss`, `aud`, `sub`, `iat`,
//! `exp`), the question it answers (`product`, `feature`, `user`) and the
//! [`Decision`] exactly as `POST /v1/check` would answer it. Only an
//! allowing decision is signed ([`claims`] gives `None` for a denial): a
//! token is something an app may act on without asking again, and a cached
//! denial would keep a customer who has just bought locked out.
//!
//! The lifetime rule ([`expires_at`]): `exp` is never later than the next
//! instant the decision is known to change on its own — a trial's end, the
//! end of paid access after a cancellation, a pending change's effective
//! date, the next billing date, an app user's link expiry — and never more
//! than the configured maximum after `iat`. Changes nobody can foresee (a
//! cancellation, a suspension) are bounded by the maximum lifetime, and
//! announced by change notifications.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::entitlement::Decision;
use crate::model::Subscription;
use crate::wire::{CheckRequest, Subject};

/// The JWS algorithm of every token: EdDSA over Ed25519 (RFC 8037).
pub const ALGORITHM: &str = "EdDSA";
/// `iss` unless `TOLLGATE_TOKEN_ISSUER` says otherwise.
pub const DEFAULT_ISSUER: &str = "tollgate";
/// `aud` unless `TOLLGATE_TOKEN_AUDIENCE` says otherwise.
pub const DEFAULT_AUDIENCE: &str = "tollgate-entitlement";
/// Longest lifetime unless `TOLLGATE_TOKEN_MAX_LIFETIME` says otherwise.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::minutes(5);
/// The longest `TOLLGATE_TOKEN_MAX_LIFETIME` accepted: past an hour a token
/// is no longer short-lived, and revocation by expiry means nothing.
pub const MAX_MAX_LIFETIME: Duration = Duration::hours(1);

/// Who signs, for whom, and for how long at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    pub issuer: String,
    pub audience: String,
    pub max_lifetime: Duration,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            max_lifetime: DEFAULT_MAX_LIFETIME,
        }
    }
}

/// The claims of an entitlement token. Every field is always present
/// (`feature` and `user` as `null` when the question had none), like the
/// `/v1/check` answer flattened into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntitlementClaims {
    pub iss: String,
    pub aud: String,
    /// [`subject_claim`] of the question's subject.
    pub sub: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds ([`expires_at`]).
    pub exp: i64,
    pub product: String,
    pub feature: Option<String>,
    pub user: Option<String>,
    /// The decision, as `/v1/check` answers it (`allowed`, `reason`,
    /// `subscription`, `status`, `plan`, `tier`, `features`,
    /// `trial_days_left`, `access_until`, `seats`).
    #[serde(flatten)]
    pub decision: Decision,
}

impl EntitlementClaims {
    /// Whether these claims answer `request`: the same subject, product,
    /// feature and user. A token for another customer (or for the product
    /// without the feature) answers nothing else.
    pub fn answers(&self, request: &CheckRequest) -> bool {
        self.sub == subject_claim(&request.subject)
            && self.product == request.product
            && self.feature == request.feature
            && self.user == request.user
    }
}

/// `sub`: `customer:<marketplace>:<customer id>` or `app_user:<app user>`,
/// so a GitHub account and a GitHub user with the same number never share
/// a subject.
pub fn subject_claim(subject: &Subject) -> String {
    match subject {
        Subject::Customer(c) => format!("customer:{}:{}", c.marketplace.as_str(), c.id),
        Subject::AppUser(u) => format!("app_user:{}", u.0),
    }
}

/// The next instant after `now` at which a subscription of `product` among
/// `subscriptions` changes by itself: a trial's end, the end of paid access,
/// a pending change, the next billing date. `None` when none is known.
pub fn next_change(
    subscriptions: &[Subscription],
    product: &str,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    subscriptions
        .iter()
        .filter(|s| s.product == product)
        .flat_map(|s| {
            [
                s.trial_ends_at,
                s.access_until,
                s.pending_change.as_ref().map(|c| c.effective_at()),
                s.next_billing_at,
            ]
        })
        .flatten()
        .filter(|at| *at > now)
        .min()
}

/// When a token issued at `now` expires: the earliest of `now` plus the
/// policy's maximum lifetime and every known change in `changes` that lies
/// after `now`.
pub fn expires_at(
    policy: &TokenPolicy,
    now: DateTime<Utc>,
    changes: impl IntoIterator<Item = DateTime<Utc>>,
) -> DateTime<Utc> {
    let cap = now + policy.max_lifetime;
    changes
        .into_iter()
        .filter(|at| *at > now)
        .fold(cap, |soonest, at| soonest.min(at))
}

/// The claims of a token answering `request` with `decision` at `now`, or
/// `None` for a denial (denials are answered, never signed). `subscriptions`
/// are those the decision was made from; `other_changes` are further
/// instants the answer changes at (an app user's link expiries). `iat` and
/// `exp` are whole seconds, `exp` rounded down so it is never later than
/// the change.
pub fn claims(
    policy: &TokenPolicy,
    request: &CheckRequest,
    decision: &Decision,
    subscriptions: &[Subscription],
    other_changes: impl IntoIterator<Item = DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<EntitlementClaims> {
    if !decision.allowed {
        return None;
    }
    let changes = next_change(subscriptions, &request.product, now)
        .into_iter()
        .chain(other_changes);
    let exp = expires_at(policy, now, changes);
    Some(EntitlementClaims {
        iss: policy.issuer.clone(),
        aud: policy.audience.clone(),
        sub: subject_claim(&request.subject),
        iat: now.timestamp(),
        exp: exp.timestamp(),
        product: request.product.clone(),
        feature: request.feature.clone(),
        user: request.user.clone(),
        decision: decision.clone(),
    })
}

/// `POST /v1/token`'s answer: the decision, and for an allowing one a
/// signed token and its expiry; for a denial `token` and `expires_at` are
/// `null` (ask again later, nothing to cache).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAnswer {
    pub token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub decision: Decision,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entitlement::{Reason, SeatsView};
    use crate::model::{
        Customer, CustomerKey, Marketplace, PendingChange, Plan, Seats, Status, SubscriptionKey,
    };
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_change_at_the_issue_instant_does_not_end_the_token_at_once() {
        let policy = TokenPolicy::default();
        let soon = now() + chrono::Duration::seconds(60);
        assert!(policy.max_lifetime > chrono::Duration::seconds(60));
        assert_eq!(expires_at(&policy, now(), [now(), soon]), soon);
        assert_eq!(
            expires_at(&policy, now(), [now()]),
            now() + policy.max_lifetime
        );
    }

    #[test]
    fn a_change_at_this_very_instant_is_past_not_next() {
        // A trial ending exactly now has ended: the next change is the
        // billing date, not a token that expires as it is issued.
        let mut s = sub("acme-ci");
        s.trial_ends_at = Some(now());
        s.next_billing_at = Some(now() + chrono::Duration::days(30));
        assert_eq!(
            next_change(&[s], "acme-ci", now()),
            Some(now() + chrono::Duration::days(30))
        );
    }

    fn sub(product: &str) -> Subscription {
        Subscription {
            key: SubscriptionKey::new(Marketplace::Github, "42"),
            customer: Customer::new(CustomerKey::new(Marketplace::Github, "42")),
            product: product.into(),
            plan: Plan::new("2"),
            status: Status::Active,
            awaiting: None,
            seats: Seats::default(),
            billing_cycle: None,
            trial_ends_at: None,
            next_billing_at: None,
            access_until: None,
            pending_change: None,
            last_applied: None,
            version: 1,
            created_at: now(),
            updated_at: now(),
        }
    }

    fn allowed() -> Decision {
        Decision {
            allowed: true,
            reason: Reason::Ok,
            subscription: Some(SubscriptionKey::new(Marketplace::Github, "42")),
            status: Some(Status::Active),
            plan: Some("2".into()),
            tier: Some("team".into()),
            features: vec!["private".into()],
            trial_days_left: None,
            access_until: None,
            seats: Some(SeatsView {
                limit: Some(5),
                used: 1,
            }),
        }
    }

    fn request() -> CheckRequest {
        CheckRequest::new(Subject::customer(Marketplace::Github, "42"), "ci").feature("private")
    }

    #[test]
    fn without_a_known_change_a_token_lives_the_maximum_lifetime() {
        let c = claims(
            &TokenPolicy::default(),
            &request(),
            &allowed(),
            &[sub("ci")],
            [],
            now(),
        )
        .unwrap();
        assert_eq!(c.iat, now().timestamp());
        assert_eq!(c.exp - c.iat, 300);
        assert_eq!(c.sub, "customer:github:42");
        assert_eq!(
            (c.iss.as_str(), c.aud.as_str()),
            ("tollgate", "tollgate-entitlement")
        );
        assert!(c.answers(&request()));
    }

    #[test]
    fn exp_is_capped_at_the_next_known_change_of_the_product() {
        let soon = now() + Duration::seconds(90);
        for set in [
            |s: &mut Subscription, at| s.trial_ends_at = Some(at),
            |s: &mut Subscription, at| s.access_until = Some(at),
            |s: &mut Subscription, at| s.next_billing_at = Some(at),
            |s: &mut Subscription, at| {
                s.pending_change = Some(PendingChange::Cancellation { effective_at: at })
            },
        ] {
            let mut s = sub("ci");
            set(&mut s, soon);
            // A change already past, and one of another product, don't count.
            let mut other = sub("other");
            other.trial_ends_at = Some(now() + Duration::seconds(5));
            let mut past = sub("ci");
            past.access_until = Some(now() - Duration::seconds(5));
            let c = claims(
                &TokenPolicy::default(),
                &request(),
                &allowed(),
                &[s, other, past],
                [],
                now(),
            )
            .unwrap();
            assert_eq!(c.exp, soon.timestamp());
        }
    }

    #[test]
    fn exp_rounds_down_and_other_changes_count() {
        let link_expiry = now() + Duration::milliseconds(30_900);
        let c = claims(
            &TokenPolicy::default(),
            &request(),
            &allowed(),
            &[sub("ci")],
            [link_expiry],
            now(),
        )
        .unwrap();
        assert_eq!(c.exp, now().timestamp() + 30);
    }

    #[test]
    fn a_change_later_than_the_maximum_does_not_lengthen_the_token() {
        let mut s = sub("ci");
        s.trial_ends_at = Some(now() + Duration::days(3));
        let policy = TokenPolicy {
            max_lifetime: Duration::seconds(60),
            ..TokenPolicy::default()
        };
        let c = claims(&policy, &request(), &allowed(), &[s], [], now()).unwrap();
        assert_eq!(c.exp - c.iat, 60);
    }

    #[test]
    fn denials_are_never_signed() {
        let mut d = allowed();
        d.allowed = false;
        d.reason = Reason::FeatureNotInPlan;
        let c = claims(&TokenPolicy::default(), &request(), &d, &[], [], now());
        assert!(c.is_none());
    }

    #[test]
    fn claims_answer_only_their_own_question() {
        let c = claims(
            &TokenPolicy::default(),
            &request(),
            &allowed(),
            &[],
            [],
            now(),
        )
        .unwrap();
        let base = CheckRequest::new(Subject::customer(Marketplace::Github, "42"), "ci");
        assert!(!c.answers(&base), "without the feature");
        assert!(!c.answers(&base.clone().feature("private").user("alice")));
        let other = CheckRequest::new(Subject::customer(Marketplace::Github, "43"), "ci")
            .feature("private");
        assert!(!c.answers(&other));
        let user = CheckRequest::new(Subject::app_user("github:42"), "ci").feature("private");
        assert!(!c.answers(&user), "a user is not the account");
        assert_eq!(subject_claim(&user.subject), "app_user:github:42");
    }

    #[test]
    fn claims_are_the_decision_flattened_with_every_field_present() {
        let c = claims(
            &TokenPolicy::default(),
            &request(),
            &allowed(),
            &[],
            [],
            now(),
        )
        .unwrap();
        let v = serde_json::to_value(&c).unwrap();
        for field in [
            "iss",
            "aud",
            "sub",
            "iat",
            "exp",
            "product",
            "feature",
            "user",
            "allowed",
            "reason",
            "subscription",
            "status",
            "plan",
            "tier",
            "features",
            "trial_days_left",
            "access_until",
            "seats",
        ] {
            assert!(v.get(field).is_some(), "{field} missing in {v}");
        }
        assert_eq!(v["user"], serde_json::Value::Null);
        let back: EntitlementClaims = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }
}
