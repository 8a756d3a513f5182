//! "May this customer (and this user) use this product/feature now?"
//!
//! [`decide`] is pure and allocation-light: it runs on every request a
//! vendor's app serves, after one store read.
//!
//! A subscription's state counts its seat holders but does not list them
//! (the store keeps one record per holder, so the state stays small). For
//! a question about a user, whether that user holds a seat matters only
//! where a seat-counted tier is full; [`seat_lookups`] names those
//! subscriptions, the caller looks the user up in the store, and passes
//! what it found as [`Question::seated`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Catalog, ResolvedTier, SeatPolicy};
use crate::model::{Awaiting, Status, Subscription, SubscriptionKey};

/// Why access is (not) granted. The strings are a stable public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Ok,
    NoSubscription,
    PendingSignup,
    PendingApproval,
    TrialExpired,
    Cancelled,
    Suspended,
    FeatureNotInPlan,
    SeatLimitReached,
    UnknownPlan,
    /// The question names a product `tollgate.toml` does not define: the
    /// app's mistake (a typo, a product retired from the file), answered
    /// the same whatever the customer holds.
    UnknownProduct,
    /// The question names a feature that no tier of the product grants:
    /// the app's mistake too, never a matter of the customer's plan.
    UnknownFeature,
    /// A reason this build does not know, read from a newer server. Never
    /// produced here; clients treat it as a denial (new reasons may be added
    /// in a minor version).
    #[serde(other)]
    Unrecognized,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::Ok,
        Reason::NoSubscription,
        Reason::PendingSignup,
        Reason::PendingApproval,
        Reason::TrialExpired,
        Reason::Cancelled,
        Reason::Suspended,
        Reason::FeatureNotInPlan,
        Reason::SeatLimitReached,
        Reason::UnknownPlan,
        Reason::UnknownProduct,
        Reason::UnknownFeature,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::NoSubscription => "no_subscription",
            Reason::PendingSignup => "pending_signup",
            Reason::PendingApproval => "pending_approval",
            Reason::TrialExpired => "trial_expired",
            Reason::Cancelled => "cancelled",
            Reason::Suspended => "suspended",
            Reason::FeatureNotInPlan => "feature_not_in_plan",
            Reason::SeatLimitReached => "seat_limit_reached",
            Reason::UnknownPlan => "unknown_plan",
            Reason::UnknownProduct => "unknown_product",
            Reason::UnknownFeature => "unknown_feature",
            Reason::Unrecognized => "unrecognized",
        }
    }

    /// The question names something `tollgate.toml` does not define
    /// ([`Reason::UnknownProduct`], [`Reason::UnknownFeature`]): a denial
    /// that no purchase fixes, only a change to the app or the file.
    pub fn is_undefined_name(self) -> bool {
        matches!(self, Reason::UnknownProduct | Reason::UnknownFeature)
    }
}

/// What the app asks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Question<'a> {
    pub product: &'a str,
    pub feature: Option<&'a str>,
    /// The app user acting, for seat-counted plans.
    pub user: Option<&'a str>,
    /// The subscriptions on which `user` is known to hold a seat. Only
    /// consulted where a seat-counted tier is full: there a user not listed
    /// here is refused with [`Reason::SeatLimitReached`].
    pub seated: &'a [SubscriptionKey],
}

/// Which limit a seat claim is checked against: what the store applies at
/// the moment it writes the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatLimit {
    /// The unit count stored with the subscription's current state (a tier
    /// with `seats = "purchased"`). The store reads it from the state as it
    /// is when the claim is written, so a downgrade committed a moment
    /// before is honoured; no count stored means no limit.
    Purchased,
    /// A count from the configuration (a tier with `seats = N`).
    Fixed(u32),
}

impl SeatLimit {
    /// The number of seats this limit allows, given the unit count a state
    /// stores; `None`: no limit.
    pub fn resolve(self, purchased: Option<u32>) -> Option<u32> {
        match self {
            SeatLimit::Purchased => purchased,
            SeatLimit::Fixed(n) => Some(n),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatsView {
    /// `None`: the tier does not count seats.
    pub limit: Option<u32>,
    pub used: u32,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
    pub subscription: Option<SubscriptionKey>,
    pub status: Option<Status>,
    pub plan: Option<String>,
    pub tier: Option<String>,
    pub features: Vec<String>,
    pub trial_days_left: Option<u32>,
    pub access_until: Option<DateTime<Utc>>,
    pub seats: Option<SeatsView>,
}

impl Decision {
    /// A denial for `reason` that names no subscription: every field
    /// `null` or empty (what an undefined name in the question gets).
    fn refused(reason: Reason) -> Self {
        Decision {
            reason,
            ..Decision::none()
        }
    }

    fn none() -> Self {
        Decision {
            allowed: false,
            reason: Reason::NoSubscription,
            subscription: None,
            status: None,
            plan: None,
            tier: None,
            features: Vec::new(),
            trial_days_left: None,
            access_until: None,
            seats: None,
        }
    }
}

/// Why `q` cannot be answered from any subscription: its product is not
/// defined in `catalog` ([`Reason::UnknownProduct`]), or its feature is
/// granted by no tier of the product ([`Reason::UnknownFeature`]). `None`
/// when every name it asks about is defined. Needs no store read, so a
/// caller may answer such a question before reading anything.
pub fn undefined_name(catalog: &Catalog, q: &Question<'_>) -> Option<Reason> {
    let Some(product) = catalog.product(q.product) else {
        return Some(Reason::UnknownProduct);
    };
    let feature = q.feature?;
    let granted = product.tiers.values().any(|t| t.features.contains(feature));
    (!granted).then_some(Reason::UnknownFeature)
}

/// Decides for the subscriptions a customer (or linked user) holds. A
/// question naming an undefined product or feature ([`undefined_name`]) is
/// answered with that reason alone, whatever the subscriptions. Otherwise,
/// when several match the product, an allowing one wins; among denials,
/// the one of the liveliest subscription explains best.
pub fn decide(
    catalog: &Catalog,
    subscriptions: &[Subscription],
    q: &Question<'_>,
    now: DateTime<Utc>,
) -> Decision {
    if let Some(reason) = undefined_name(catalog, q) {
        return Decision::refused(reason);
    }
    let mut best: Option<(u8, Decision)> = None;
    for sub in subscriptions.iter().filter(|s| s.product == q.product) {
        let d = decide_one(catalog, sub, q, now);
        let rank = if d.allowed {
            100
        } else {
            liveliness(sub.status)
        };
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((rank, d));
        }
    }
    best.map(|(_, d)| d).unwrap_or_else(Decision::none)
}

fn liveliness(status: Status) -> u8 {
    match status {
        Status::Active => 6,
        Status::Trial => 5,
        Status::PendingCancellation => 4,
        Status::Pending => 3,
        Status::Suspended => 2,
        Status::Cancelled => 1,
    }
}

/// The subscriptions among `subscriptions` whose answer to `q` turns on
/// whether `q.user` holds a seat there: seat-counted, full, and otherwise
/// granting. Empty without a user, and for every subscription already in
/// `q.seated`. The caller looks the user up on these (one store read each;
/// in practice at most one) and asks again with [`Question::seated`].
pub fn seat_lookups<'s>(
    catalog: &Catalog,
    subscriptions: &'s [Subscription],
    q: &Question<'_>,
    now: DateTime<Utc>,
) -> Vec<&'s SubscriptionKey> {
    if q.user.is_none() {
        return Vec::new();
    }
    subscriptions
        .iter()
        .filter(|s| s.product == q.product)
        .filter(|s| decide_one(catalog, s, q, now).reason == Reason::SeatLimitReached)
        .map(|s| &s.key)
        .collect()
}

/// The limit a seat claim on `sub` is checked against now, from its tier;
/// `None` when the tier counts no seats or `sub` grants no tier at all.
pub fn claim_limit(catalog: &Catalog, sub: &Subscription, now: DateTime<Utc>) -> Option<SeatLimit> {
    let (tier, ended) = tier_now(catalog, sub, now).ok()?;
    seat_limit(tier, ended)
}

fn decide_one(
    catalog: &Catalog,
    sub: &Subscription,
    q: &Question<'_>,
    now: DateTime<Utc>,
) -> Decision {
    let mut d = Decision {
        subscription: Some(sub.key.clone()),
        status: Some(sub.status),
        plan: Some(sub.plan.id.clone()),
        access_until: sub.access_until,
        ..Decision::none()
    };
    match tier_now(catalog, sub, now) {
        Ok((tier, ended)) => {
            if sub.status == Status::Trial {
                // `tier_now` refused a trial that has ended.
                d.trial_days_left = sub.trial_ends_at.map(|end| days_left(end, now));
            }
            grant(&mut d, sub, tier, q, ended);
        }
        Err(reason) => d.reason = reason,
    }
    d
}

/// The tier `sub` grants at `now`, and whether its paid access has ended
/// (the tier is then the product's fallback); or why it grants none.
fn tier_now<'c>(
    catalog: &'c Catalog,
    sub: &Subscription,
    now: DateTime<Utc>,
) -> Result<(ResolvedTier<'c>, bool), Reason> {
    let ended = match sub.status {
        Status::Pending => {
            return Err(match sub.awaiting {
                Some(Awaiting::Signup) => Reason::PendingSignup,
                _ => Reason::PendingApproval,
            });
        }
        Status::Suspended => return Err(Reason::Suspended),
        Status::Trial => {
            if sub.trial_ends_at.is_some_and(|end| end <= now) {
                return Err(Reason::TrialExpired);
            }
            false
        }
        Status::Active => false,
        Status::PendingCancellation | Status::Cancelled => {
            sub.access_until.is_none_or(|until| until <= now)
        }
    };
    let tier = if ended {
        catalog
            .cancelled_tier(&sub.product)
            .ok_or(Reason::Cancelled)?
    } else {
        catalog
            .tier_for(sub.key.marketplace, &sub.product, &sub.plan.id)
            .ok_or(Reason::UnknownPlan)?
    };
    Ok((tier, ended))
}

/// Which limit a tier puts on seats; `None`: it counts none.
fn seat_limit(tier: ResolvedTier<'_>, ended: bool) -> Option<SeatLimit> {
    match tier.tier.seats {
        // A fallback tier after cancellation doesn't inherit purchased seats.
        SeatPolicy::Purchased if ended => None,
        SeatPolicy::Purchased => Some(SeatLimit::Purchased),
        SeatPolicy::Unlimited => None,
        SeatPolicy::Fixed(n) => Some(SeatLimit::Fixed(n)),
    }
}

fn grant(
    d: &mut Decision,
    sub: &Subscription,
    tier: ResolvedTier<'_>,
    q: &Question<'_>,
    ended: bool,
) {
    d.tier = Some(tier.name.to_owned());
    d.features = tier.tier.features.iter().cloned().collect();
    let limit = seat_limit(tier, ended).and_then(|l| l.resolve(sub.seats.limit));
    let used = sub.seats.used;
    d.seats = Some(SeatsView { limit, used });
    if let Some(feature) = q.feature
        && !tier.tier.features.contains(feature)
    {
        d.reason = Reason::FeatureNotInPlan;
        return;
    }
    // A full tier (or one downgraded below its holders) keeps its holders
    // and refuses everybody else.
    if let (Some(_), Some(limit)) = (q.user, limit)
        && used >= limit
        && !q.seated.contains(&sub.key)
    {
        d.reason = Reason::SeatLimitReached;
        return;
    }
    d.allowed = true;
    d.reason = Reason::Ok;
}

/// Whole days left, rounded up: a trial ending in 1 hour has 1 day left.
pub fn days_left(end: DateTime<Utc>, now: DateTime<Utc>) -> u32 {
    let secs = (end - now).num_seconds().max(0);
    u32::try_from((secs + 86_399) / 86_400).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    //! One test per reason.
    use super::*;
    use crate::model::{Customer, CustomerKey, Marketplace, Plan, Seats};
    use chrono::{Duration, TimeZone};
    use std::path::Path;

    const CONFIG: &str = r#"
        [products.ci.tiers.free]
        features = ["public"]
        seats = "unlimited"
        [products.ci.tiers.team]
        features = ["public", "private"]
        [products.ci.plans.github]
        "1" = "free"
        "2" = "team"
    "#;

    fn catalog(extra: &str) -> Catalog {
        Catalog::parse(&format!("{CONFIG}{extra}"), Path::new("test.toml")).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0).unwrap()
    }

    fn sub(status: Status, plan: &str) -> Subscription {
        Subscription {
            key: SubscriptionKey::new(Marketplace::Github, "42"),
            customer: Customer::new(CustomerKey::new(Marketplace::Github, "42")),
            product: "ci".into(),
            plan: Plan::new(plan),
            status,
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

    fn ask(
        c: &Catalog,
        subs: &[Subscription],
        feature: Option<&str>,
        user: Option<&str>,
    ) -> Decision {
        decide(
            c,
            subs,
            &Question {
                product: "ci",
                feature,
                user,
                seated: &[],
            },
            now(),
        )
    }

    #[test]
    fn ok_for_an_active_subscription() {
        let d = ask(
            &catalog(""),
            &[sub(Status::Active, "2")],
            Some("private"),
            None,
        );
        assert!(d.allowed);
        assert_eq!(d.reason, Reason::Ok);
        assert_eq!(d.tier.as_deref(), Some("team"));
        assert_eq!(d.features, vec!["private", "public"]);
    }

    #[test]
    fn no_subscription_when_none_matches_the_product() {
        let mut other = sub(Status::Active, "2");
        other.product = "other".into();
        let d = ask(&catalog(""), &[other], None, None);
        assert_eq!((d.allowed, d.reason), (false, Reason::NoSubscription));
        assert_eq!(
            ask(&catalog(""), &[], None, None).reason,
            Reason::NoSubscription
        );
    }

    #[test]
    fn pending_signup_while_awaiting_signup() {
        let mut s = sub(Status::Pending, "2");
        s.awaiting = Some(Awaiting::Signup);
        assert_eq!(
            ask(&catalog(""), &[s], None, None).reason,
            Reason::PendingSignup
        );
    }

    #[test]
    fn pending_approval_while_awaiting_approval() {
        let mut s = sub(Status::Pending, "2");
        s.awaiting = Some(Awaiting::Approval);
        let d = ask(&catalog(""), &[s], None, None);
        assert_eq!((d.allowed, d.reason), (false, Reason::PendingApproval));
    }

    #[test]
    fn trial_days_left_rounds_up_during_a_trial() {
        let mut s = sub(Status::Trial, "2");
        s.trial_ends_at = Some(now() + Duration::days(3) + Duration::hours(1));
        let d = ask(&catalog(""), &[s], None, None);
        assert!(d.allowed);
        assert_eq!(d.trial_days_left, Some(4));
    }

    #[test]
    fn trial_expired_after_the_trial_end_without_conversion() {
        let mut s = sub(Status::Trial, "2");
        s.trial_ends_at = Some(now() - Duration::seconds(1));
        let d = ask(&catalog(""), &[s], None, None);
        assert_eq!((d.allowed, d.reason), (false, Reason::TrialExpired));
    }

    #[test]
    fn cancelled_once_access_ends() {
        let d = ask(&catalog(""), &[sub(Status::Cancelled, "2")], None, None);
        assert_eq!((d.allowed, d.reason), (false, Reason::Cancelled));
        assert!(d.features.is_empty());
    }

    #[test]
    fn pending_cancellation_is_entitled_until_access_until() {
        let mut s = sub(Status::PendingCancellation, "2");
        s.access_until = Some(now() + Duration::days(1));
        let d = ask(&catalog(""), std::slice::from_ref(&s), None, None);
        assert!(d.allowed);
        assert_eq!(d.access_until, s.access_until);
        s.access_until = Some(now());
        assert_eq!(
            ask(&catalog(""), &[s], None, None).reason,
            Reason::Cancelled
        );
    }

    #[test]
    fn cancelled_falls_back_to_the_configured_free_tier() {
        let c = catalog("[products.ci]\ncancelled_tier = \"free\"\n");
        let d = ask(&c, &[sub(Status::Cancelled, "2")], Some("public"), None);
        assert!(d.allowed);
        assert_eq!((d.reason, d.tier.as_deref()), (Reason::Ok, Some("free")));
        let d = ask(&c, &[sub(Status::Cancelled, "2")], Some("private"), None);
        assert_eq!(d.reason, Reason::FeatureNotInPlan);
    }

    #[test]
    fn suspended_while_suspended() {
        let d = ask(&catalog(""), &[sub(Status::Suspended, "2")], None, None);
        assert_eq!((d.allowed, d.reason), (false, Reason::Suspended));
    }

    #[test]
    fn feature_not_in_plan_for_a_feature_of_a_higher_tier() {
        let d = ask(
            &catalog(""),
            &[sub(Status::Active, "1")],
            Some("private"),
            None,
        );
        assert_eq!((d.allowed, d.reason), (false, Reason::FeatureNotInPlan));
        assert_eq!(d.tier.as_deref(), Some("free"));
    }

    /// Asks for `user` on `subs`, knowing the user holds a seat on `seated`.
    fn ask_seated(subs: &[Subscription], user: &str, seated: &[SubscriptionKey]) -> Decision {
        let q = Question {
            product: "ci",
            feature: None,
            user: Some(user),
            seated,
        };
        decide(&catalog(""), subs, &q, now())
    }

    #[test]
    fn seat_limit_reached_for_a_new_user_when_seats_are_full() {
        let mut s = sub(Status::Active, "2");
        s.seats = Seats {
            limit: Some(2),
            used: 2,
        };
        let d = ask(&catalog(""), std::slice::from_ref(&s), None, Some("c"));
        assert_eq!((d.allowed, d.reason), (false, Reason::SeatLimitReached));
        assert_eq!(
            d.seats,
            Some(SeatsView {
                limit: Some(2),
                used: 2
            })
        );
        let holder = ask_seated(std::slice::from_ref(&s), "a", std::slice::from_ref(&s.key));
        assert!(holder.allowed, "holders keep access");
        assert!(
            ask(&catalog(""), &[s], None, None).allowed,
            "the customer itself is entitled"
        );
    }

    #[test]
    fn with_seats_free_a_user_is_allowed_without_being_looked_up() {
        let mut s = sub(Status::Active, "2");
        s.seats = Seats {
            limit: Some(3),
            used: 2,
        };
        let subs = std::slice::from_ref(&s);
        assert!(ask_seated(subs, "c", &[]).allowed);
        let q = Question {
            product: "ci",
            user: Some("c"),
            ..Question::default()
        };
        assert!(seat_lookups(&catalog(""), subs, &q, now()).is_empty());
    }

    #[test]
    fn after_a_downgrade_below_the_holders_they_keep_access_and_nobody_else_gets_in() {
        let mut s = sub(Status::Active, "2");
        s.seats = Seats {
            limit: Some(2),
            used: 3,
        };
        let subs = std::slice::from_ref(&s);
        assert!(ask_seated(subs, "a", std::slice::from_ref(&s.key)).allowed);
        let d = ask_seated(subs, "new", &[]);
        assert_eq!((d.allowed, d.reason), (false, Reason::SeatLimitReached));
        assert_eq!(d.seats.map(|v| (v.limit, v.used)), Some((Some(2), 3)));
    }

    #[test]
    fn seat_lookups_name_only_the_full_seat_counted_subscriptions_that_would_grant() {
        let c = catalog("");
        let full = |id: &str, status: Status, plan: &str| {
            let mut s = sub(status, plan);
            s.key = SubscriptionKey::new(Marketplace::Github, id);
            s.seats = Seats {
                limit: Some(1),
                used: 1,
            };
            s
        };
        let mut other_product = full("other", Status::Active, "2");
        other_product.product = "docs".into();
        let subs = [
            full("team-full", Status::Active, "2"),
            // Unlimited seats on the free tier: nobody is refused a seat.
            full("free-full", Status::Active, "1"),
            full("suspended", Status::Suspended, "2"),
            other_product,
        ];
        let q = |user, seated| Question {
            product: "ci",
            feature: None,
            user,
            seated,
        };
        let keys = |v: Vec<&SubscriptionKey>| -> Vec<String> {
            v.into_iter().map(|k| k.id.clone()).collect()
        };
        assert_eq!(
            keys(seat_lookups(&c, &subs, &q(Some("u"), &[]), now())),
            ["team-full"]
        );
        assert!(seat_lookups(&c, &subs, &q(None, &[]), now()).is_empty());
        let seated = [subs[0].key.clone()];
        assert!(seat_lookups(&c, &subs, &q(Some("u"), &seated), now()).is_empty());
        // The user's seat on the full team subscription is what allows them.
        assert!(decide(&c, &subs, &q(Some("u"), &seated), now()).allowed);
    }

    #[test]
    fn a_claim_is_checked_against_the_tiers_limit() {
        let c = catalog(
            "[products.ci.tiers.big]\nfeatures = []\nseats = 3\n\
             [products.ci.plans.gcp]\n\"b\" = \"big\"\n",
        );
        let team = sub(Status::Active, "2");
        assert_eq!(claim_limit(&c, &team, now()), Some(SeatLimit::Purchased));
        assert_eq!(claim_limit(&c, &sub(Status::Active, "1"), now()), None);
        let mut big = sub(Status::Active, "b");
        big.key = SubscriptionKey::new(Marketplace::Gcp, "9");
        assert_eq!(claim_limit(&c, &big, now()), Some(SeatLimit::Fixed(3)));
        assert_eq!(claim_limit(&c, &sub(Status::Suspended, "2"), now()), None);
        // After cancellation the fallback tier does not inherit purchased seats.
        let fallback = catalog("[products.ci]\ncancelled_tier = \"team\"\n");
        assert_eq!(
            claim_limit(&fallback, &sub(Status::Cancelled, "2"), now()),
            None
        );
        assert_eq!(SeatLimit::Purchased.resolve(Some(4)), Some(4));
        assert_eq!(SeatLimit::Purchased.resolve(None), None);
        assert_eq!(SeatLimit::Fixed(3).resolve(Some(9)), Some(3));
    }

    #[test]
    fn unknown_plan_grants_nothing() {
        let d = ask(&catalog(""), &[sub(Status::Active, "999")], None, None);
        assert_eq!((d.allowed, d.reason), (false, Reason::UnknownPlan));
        assert!(d.features.is_empty() && d.tier.is_none());
    }

    #[test]
    fn unknown_product_whatever_the_customer_holds() {
        let subs = [sub(Status::Active, "2")];
        for (product, feature) in [("cj", None), ("cj", Some("private")), ("", None)] {
            let q = Question {
                product,
                feature,
                ..Question::default()
            };
            let d = decide(&catalog(""), &subs, &q, now());
            assert_eq!(d, Decision::refused(Reason::UnknownProduct), "{product}");
            assert_eq!(
                undefined_name(&catalog(""), &q),
                Some(Reason::UnknownProduct)
            );
        }
        assert_eq!(
            ask(&catalog(""), &[], None, None).reason,
            Reason::NoSubscription,
            "a defined product without a subscription is a denial"
        );
    }

    #[test]
    fn unknown_feature_when_no_tier_of_the_product_grants_it() {
        // Even for a customer who could never have it (cancelled), a typo
        // is reported as a typo.
        for status in [Status::Active, Status::Cancelled] {
            let d = ask(&catalog(""), &[sub(status, "2")], Some("privat"), None);
            assert_eq!(d, Decision::refused(Reason::UnknownFeature), "{status:?}");
        }
        // Granted by a tier that no plan maps to, so nobody has it yet: a
        // real feature, denied as not in the plan.
        let c = catalog("[products.ci.tiers.enterprise]\nfeatures = [\"audit\"]\n");
        let d = ask(&c, &[sub(Status::Active, "2")], Some("audit"), None);
        assert_eq!((d.allowed, d.reason), (false, Reason::FeatureNotInPlan));
        // A feature of a tier of another product is not this product's.
        let c = catalog("[products.docs.tiers.pro]\nfeatures = [\"write\"]\n");
        let q = Question {
            product: "ci",
            feature: Some("write"),
            ..Question::default()
        };
        assert_eq!(undefined_name(&c, &q), Some(Reason::UnknownFeature));
        let q = Question {
            feature: Some("public"),
            ..q
        };
        assert_eq!(undefined_name(&c, &q), None);
    }

    #[test]
    fn undefined_names_are_told_apart_from_denials() {
        let undefined: Vec<_> = Reason::ALL
            .into_iter()
            .filter(|r| r.is_undefined_name())
            .collect();
        assert_eq!(undefined, [Reason::UnknownProduct, Reason::UnknownFeature]);
        assert!(!Reason::Unrecognized.is_undefined_name());
    }

    #[test]
    fn an_allowing_subscription_wins_over_a_denying_one() {
        let subs = [sub(Status::Cancelled, "2"), sub(Status::Active, "1")];
        let d = ask(&catalog(""), &subs, None, None);
        assert!(d.allowed);
        assert_eq!(d.plan.as_deref(), Some("1"));
    }

    #[test]
    fn reason_strings_are_stable() {
        let names: Vec<_> = Reason::ALL
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect();
        for (r, n) in Reason::ALL.iter().zip(&names) {
            assert_eq!(n, r.as_str());
        }
    }
}
