//! The Q2 decision rules, pure: what an order, change or cancellation
//! means for a subscription keyed by (institution, user, product), and when
//! Tollgate refuses it with one of Q2's error codes. The adapter reads the
//! store, asks these functions, and writes; nothing here does I/O.

use chrono::{DateTime, Datelike, Duration, Months, Utc};

use crate::config::{CancelAccess, Catalog, Q2Product};
use crate::model::{
    BillingCycle, Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Plan, PlanTerms,
    Status, Subscription, SubscriptionKey,
};
use crate::store::{Enrollment, GroupKey};

use super::answer::ErrorCode;
use super::event::Q2Event;

/// How long a place held for a subscription that was never committed
/// still counts: an order enrolls its user before it commits, so within
/// this window the holder may simply not be written yet. Far more than the
/// pipeline's time bounds.
pub const IN_FLIGHT_GRACE: Duration = Duration::minutes(2);

/// Why Tollgate refuses a Q2 event: the code Q2 receives and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub reason: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

/// A product identifier that is configured: the product and its Q2 rules.
#[derive(Debug, Clone, Copy)]
pub struct Sold<'a> {
    pub product: &'a str,
    pub rules: &'a Q2Product,
}

/// The configured product Q2 names by `product_identifier`.
pub fn sold<'a>(catalog: &'a Catalog, event: &Q2Event) -> Result<Sold<'a>, Refusal> {
    catalog
        .q2_product(&event.product_identifier)
        .map(|(product, rules)| Sold { product, rules })
        .ok_or_else(|| {
            Refusal::new(
                ErrorCode::ConfigurationError,
                format!(
                    "product identifier `{}` is not configured in Tollgate (products.<product>.q2.product_identifier)",
                    event.product_identifier
                ),
            )
        })
}

/// The customer a Q2 subscription belongs to: one user of one institution.
/// Its id, `<institution>:<user id>`, is what apps pass to `/v1/check`.
pub fn customer_key(institution: &str, user: &str) -> CustomerKey {
    CustomerKey::new(Marketplace::Q2, format!("{institution}:{user}"))
}

pub fn customer(event: &Q2Event) -> Customer {
    Customer {
        name: Some(event.institution.clone()),
        ..Customer::new(customer_key(&event.institution, &event.user_id))
    }
}

/// The users of one institution holding one product: what the cap counts.
pub fn group(product: &str, event: &Q2Event) -> GroupKey {
    GroupKey::new(Marketplace::Q2, product, &event.institution)
}

pub fn subscription_key(event: &Q2Event) -> SubscriptionKey {
    SubscriptionKey::new(Marketplace::Q2, &event.subscription_id)
}

/// The event Tollgate applies (or logs, for a refusal) at `now`.
pub fn market_event(
    event: &Q2Event,
    product: &str,
    kind: EventKind,
    now: DateTime<Utc>,
) -> MarketEvent {
    MarketEvent {
        id: String::new(),
        subscription: subscription_key(event),
        customer: customer(event),
        product: product.to_owned(),
        // Q2 waits for each answer, so arrival order is the order Q2 acted
        // in; its own timestamps' meaning is not documented.
        effective_at: now,
        kind,
    }
}

pub fn refused(refusal: Refusal) -> EventKind {
    EventKind::Refused {
        code: refusal.code.as_str().to_owned(),
        reason: refusal.reason,
    }
}

/// The terms an order or change asks for: its edition (or the product's
/// default edition), which must be mapped to a tier, so a sale never grants
/// nothing.
pub fn terms(catalog: &Catalog, sold: Sold<'_>, event: &Q2Event) -> Result<PlanTerms, Refusal> {
    let edition = event
        .edition
        .as_deref()
        .or(sold.rules.default_edition.as_deref())
        .ok_or_else(|| {
            Refusal::new(
                ErrorCode::ConfigurationError,
                format!(
                    "the event names no edition (payload.order.editionCode) and products.{}.q2.default_edition is not set",
                    sold.product
                ),
            )
        })?;
    if catalog
        .tier_for(Marketplace::Q2, sold.product, edition)
        .is_none()
    {
        return Err(Refusal::new(
            ErrorCode::ConfigurationError,
            format!(
                "edition `{edition}` is not mapped to a tier under products.{}.plans.q2",
                sold.product
            ),
        ));
    }
    Ok(PlanTerms {
        seats: event.users,
        billing_cycle: event.billing_cycle,
        ..PlanTerms::new(Plan::new(edition))
    })
}

/// Checks an order against the subscription it names, before its user is
/// given a place.
pub fn check_order(
    catalog: &Catalog,
    sold: Sold<'_>,
    event: &Q2Event,
    current: Option<&Subscription>,
) -> Result<PlanTerms, Refusal> {
    let terms = terms(catalog, sold, event)?;
    if let Some(cur) = current {
        same_owner(cur, event, sold, ErrorCode::InvalidResponse)?;
    }
    Ok(terms)
}

/// Whether a place held for another subscription still stands in the way
/// of a new order by the same user (`USER_ALREADY_EXISTS`): it does while
/// that subscription is live, or, never committed, may still be on its way.
/// Ended or cancelled ones give their place up.
pub fn holder_blocks(
    holder: Option<&Subscription>,
    place: &Enrollment,
    now: DateTime<Utc>,
) -> bool {
    match holder {
        Some(sub) => !matches!(sub.status, Status::Cancelled | Status::PendingCancellation),
        None => now < place.since + IN_FLIGHT_GRACE,
    }
}

pub fn already_subscribed(place: &Enrollment) -> Refusal {
    Refusal::new(
        ErrorCode::UserAlreadyExists,
        format!(
            "the user already holds this product under subscription {}",
            place.subscription
        ),
    )
}

pub fn cap_reached(sold: Sold<'_>, event: &Q2Event, cap: u32) -> Refusal {
    Refusal::new(
        ErrorCode::MaxUsersReached,
        format!(
            "{} already has {cap} users of {} (products.{}.q2.max_users_per_institution)",
            event.institution, sold.product, sold.product
        ),
    )
}

/// Checks a change against the subscription it names.
pub fn check_change(
    catalog: &Catalog,
    sold: Sold<'_>,
    event: &Q2Event,
    current: &Subscription,
) -> Result<PlanTerms, Refusal> {
    same_owner(current, event, sold, ErrorCode::UserNotFound)?;
    if current.status == Status::Cancelled {
        return Err(Refusal::new(
            ErrorCode::AccountNotFound,
            format!("subscription {} is cancelled", event.subscription_id),
        ));
    }
    terms(catalog, sold, event)
}

/// A change or cancellation for a subscription Tollgate does not know:
/// `USER_NOT_FOUND` when the user holds nothing of the product at the
/// institution, else `ACCOUNT_NOT_FOUND`.
pub fn unknown_subscription(event: &Q2Event, place: Option<&Enrollment>) -> Refusal {
    match place {
        Some(place) => Refusal::new(
            ErrorCode::AccountNotFound,
            format!(
                "no subscription {}; the user holds subscription {}",
                event.subscription_id, place.subscription
            ),
        ),
        None => Refusal::new(
            ErrorCode::UserNotFound,
            format!(
                "the user has no subscription {} at this institution",
                event.subscription_id
            ),
        ),
    }
}

/// Checks a cancellation; `Ok` carries the end of access (`None`: now).
/// Q2 cancels whatever the answer unless it is `DO_NOT_CANCEL`, which the
/// minimum term alone produces.
pub fn check_cancel(
    sold: Sold<'_>,
    event: &Q2Event,
    current: Option<&Subscription>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, Refusal> {
    let Some(cur) = current else {
        return Ok(None);
    };
    same_owner(cur, event, sold, ErrorCode::UserNotFound)?;
    if matches!(cur.status, Status::Cancelled | Status::PendingCancellation) {
        // Cancelled already: the same answer, the same end of access.
        return Ok(cur.access_until);
    }
    let term = Duration::days(i64::from(sold.rules.minimum_term_days));
    if sold.rules.minimum_term_days > 0 && now < cur.created_at + term {
        return Err(Refusal::new(
            ErrorCode::DoNotCancel,
            format!(
                "the minimum term of {} days runs until {}",
                sold.rules.minimum_term_days,
                (cur.created_at + term).format("%Y-%m-%d")
            ),
        ));
    }
    Ok(match sold.rules.cancel_access {
        CancelAccess::Immediate => None,
        CancelAccess::EndOfPeriod => paid_until(cur.created_at, cur.billing_cycle, now),
    })
}

/// The end of the billing period running at `now` for a subscription
/// billed every month or year from `anchor` (Q2 bills from the order date,
/// day of month kept, shortened to the month's last day). `None` when the
/// cycle is unknown: no paid period to honour.
pub fn paid_until(
    anchor: DateTime<Utc>,
    cycle: Option<BillingCycle>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let step: u32 = match cycle? {
        BillingCycle::Monthly => 1,
        BillingCycle::Yearly => 12,
    };
    let months_elapsed =
        (now.year() - anchor.year()) * 12 + now.month() as i32 - anchor.month() as i32;
    let periods = u32::try_from(months_elapsed).unwrap_or(0) / step;
    // Counting whole months from the anchor may be one period short or
    // long by the day of month; the first end after `now` is among these.
    (periods.max(1)..periods.saturating_add(3))
        .filter_map(|k| anchor.checked_add_months(Months::new(k.checked_mul(step)?)))
        .find(|end| *end > now)
}

/// The subscription must be this user's, at this institution, of this
/// product; otherwise it is refused with `code`.
fn same_owner(
    cur: &Subscription,
    event: &Q2Event,
    sold: Sold<'_>,
    code: ErrorCode,
) -> Result<(), Refusal> {
    if cur.customer.key != customer_key(&event.institution, &event.user_id) {
        return Err(Refusal::new(
            code,
            format!(
                "subscription {} belongs to another user",
                event.subscription_id
            ),
        ));
    }
    if cur.product != sold.product {
        return Err(Refusal::new(
            ErrorCode::InvalidResponse,
            format!(
                "subscription {} is for product {}, not {}",
                event.subscription_id, cur.product, sold.product
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Seats, Status};
    use chrono::TimeZone;
    use std::path::Path;

    const CONFIG: &str = r#"
        [products.bh.tiers.standard]
        features = ["BudgetHelper"]
        [products.bh.plans.q2]
        STANDARD = "standard"
        [products.bh.q2]
        product_identifier = "bh-id"
        extensions = ["BudgetHelper"]
        minimum_term_days = 30
    "#;

    fn catalog(text: &str) -> Catalog {
        Catalog::parse(text, Path::new("tollgate.toml")).unwrap()
    }

    fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    fn event(edition: Option<&str>) -> Q2Event {
        Q2Event {
            event_type: super::super::event::EventType::Order,
            subscription_id: "sub-1".into(),
            user_id: "42".into(),
            sso_user_id: None,
            product_identifier: "bh-id".into(),
            institution: "Local CU".into(),
            extension_name: None,
            created: None,
            processed: None,
            sent_time: None,
            edition: edition.map(str::to_owned),
            users: Some(1),
            billing_cycle: Some(BillingCycle::Monthly),
            stateless: false,
        }
    }

    fn sub(status: Status, created: DateTime<Utc>, user: &str) -> Subscription {
        Subscription {
            key: SubscriptionKey::new(Marketplace::Q2, "sub-1"),
            customer: Customer::new(customer_key("Local CU", user)),
            product: "bh".into(),
            plan: Plan::new("STANDARD"),
            status,
            awaiting: None,
            seats: Seats::default(),
            billing_cycle: Some(BillingCycle::Monthly),
            trial_ends_at: None,
            next_billing_at: None,
            access_until: None,
            pending_change: None,
            last_applied: None,
            version: 1,
            created_at: created,
            updated_at: created,
        }
    }

    fn place(sub: &str, since: DateTime<Utc>) -> Enrollment {
        Enrollment {
            member: "42".into(),
            subscription: sub.into(),
            since,
        }
    }

    #[test]
    fn an_unknown_product_identifier_is_a_configuration_error() {
        let c = catalog(CONFIG);
        let mut e = event(Some("STANDARD"));
        assert_eq!(sold(&c, &e).unwrap().product, "bh");
        e.product_identifier = "nope".into();
        assert_eq!(
            sold(&c, &e).unwrap_err().code,
            ErrorCode::ConfigurationError
        );
    }

    #[test]
    fn an_unmapped_or_missing_edition_is_a_configuration_error_unless_there_is_a_default() {
        let c = catalog(CONFIG);
        let s = sold(&c, &event(None)).unwrap();
        let terms = terms(&c, s, &event(Some("STANDARD"))).unwrap();
        assert_eq!((terms.plan.id.as_str(), terms.seats), ("STANDARD", Some(1)));
        assert_eq!(terms.billing_cycle, Some(BillingCycle::Monthly));
        for e in [event(Some("GOLD")), event(None)] {
            assert_eq!(
                super::terms(&c, s, &e).unwrap_err().code,
                ErrorCode::ConfigurationError
            );
        }
        let with_default = catalog(&format!("{CONFIG}default_edition = \"STANDARD\"\n"));
        let s = sold(&with_default, &event(None)).unwrap();
        assert_eq!(
            super::terms(&with_default, s, &event(None))
                .unwrap()
                .plan
                .id,
            "STANDARD"
        );
    }

    #[test]
    fn a_live_holder_blocks_a_second_order_and_an_ended_or_lost_one_does_not() {
        let now = t(2026, 3, 10);
        let p = place("sub-0", now - Duration::days(3));
        for status in [
            Status::Active,
            Status::Trial,
            Status::Suspended,
            Status::Pending,
        ] {
            assert!(
                holder_blocks(Some(&sub(status, now, "42")), &p, now),
                "{status:?}"
            );
        }
        for status in [Status::Cancelled, Status::PendingCancellation] {
            assert!(
                !holder_blocks(Some(&sub(status, now, "42")), &p, now),
                "{status:?}"
            );
        }
        assert!(!holder_blocks(None, &p, now), "never committed, long ago");
        let fresh = place("sub-0", now - Duration::seconds(5));
        assert!(holder_blocks(None, &fresh, now), "an order on its way");
        assert_eq!(already_subscribed(&p).code, ErrorCode::UserAlreadyExists);
    }

    #[test]
    fn orders_changes_and_cancels_of_another_users_subscription_are_refused() {
        let c = catalog(CONFIG);
        let e = event(Some("STANDARD"));
        let s = sold(&c, &e).unwrap();
        let theirs = sub(Status::Active, t(2026, 1, 1), "99");
        assert_eq!(
            check_order(&c, s, &e, Some(&theirs)).unwrap_err().code,
            ErrorCode::InvalidResponse
        );
        assert_eq!(
            check_change(&c, s, &e, &theirs).unwrap_err().code,
            ErrorCode::UserNotFound
        );
        assert_eq!(
            check_cancel(s, &e, Some(&theirs), t(2026, 3, 1))
                .unwrap_err()
                .code,
            ErrorCode::UserNotFound
        );
    }

    #[test]
    fn a_change_needs_a_subscription_that_has_not_ended() {
        let c = catalog(CONFIG);
        let e = event(Some("STANDARD"));
        let s = sold(&c, &e).unwrap();
        let cancelled = sub(Status::Cancelled, t(2026, 1, 1), "42");
        assert_eq!(
            check_change(&c, s, &e, &cancelled).unwrap_err().code,
            ErrorCode::AccountNotFound
        );
        let ending = sub(Status::PendingCancellation, t(2026, 1, 1), "42");
        assert!(check_change(&c, s, &e, &ending).is_ok());
        assert_eq!(unknown_subscription(&e, None).code, ErrorCode::UserNotFound);
        assert_eq!(
            unknown_subscription(&e, Some(&place("sub-0", t(2026, 1, 1)))).code,
            ErrorCode::AccountNotFound
        );
    }

    #[test]
    fn a_cancel_inside_the_minimum_term_is_vetoed_and_after_it_keeps_the_paid_month() {
        let c = catalog(CONFIG);
        let e = event(None);
        let s = sold(&c, &e).unwrap();
        let ordered = t(2026, 1, 31);
        let live = sub(Status::Active, ordered, "42");
        let veto = check_cancel(s, &e, Some(&live), t(2026, 2, 20)).unwrap_err();
        assert_eq!(veto.code, ErrorCode::DoNotCancel);
        assert!(veto.reason.contains("2026-03-02"), "{}", veto.reason);
        assert_eq!(
            check_cancel(s, &e, Some(&live), t(2026, 3, 15)),
            Ok(Some(t(2026, 3, 31)))
        );
        assert_eq!(check_cancel(s, &e, None, t(2026, 3, 15)), Ok(None));
        let mut ended = sub(Status::PendingCancellation, ordered, "42");
        ended.access_until = Some(t(2026, 3, 31));
        assert_eq!(
            check_cancel(s, &e, Some(&ended), t(2026, 2, 1)),
            Ok(Some(t(2026, 3, 31))),
            "cancelled again: the same answer, no veto"
        );
    }

    #[test]
    fn immediate_cancel_access_ends_access_now() {
        let c = catalog(&CONFIG.replace("minimum_term_days = 30", "cancel_access = \"immediate\""));
        let e = event(None);
        let s = sold(&c, &e).unwrap();
        let live = sub(Status::Active, t(2026, 1, 1), "42");
        assert_eq!(check_cancel(s, &e, Some(&live), t(2026, 1, 2)), Ok(None));
    }

    #[test]
    fn the_paid_period_runs_from_the_order_date_by_month_or_year() {
        let anchor = t(2026, 1, 31);
        let monthly = Some(BillingCycle::Monthly);
        assert_eq!(
            paid_until(anchor, monthly, t(2026, 1, 31)),
            Some(t(2026, 2, 28))
        );
        assert_eq!(
            paid_until(anchor, monthly, t(2026, 2, 28)),
            Some(t(2026, 3, 31))
        );
        assert_eq!(
            paid_until(anchor, monthly, t(2026, 4, 30)),
            Some(t(2026, 5, 31))
        );
        assert_eq!(
            paid_until(anchor, monthly, t(2025, 12, 1)),
            Some(t(2026, 2, 28))
        );
        let yearly = Some(BillingCycle::Yearly);
        assert_eq!(
            paid_until(anchor, yearly, t(2027, 6, 1)),
            Some(t(2028, 1, 31))
        );
        assert_eq!(paid_until(anchor, None, t(2026, 2, 1)), None);
        let far = DateTime::<Utc>::MAX_UTC;
        assert_eq!(
            paid_until(anchor, monthly, far),
            None,
            "no panic at the edge"
        );
    }
}
