//! A cancellation records the plan the marketplace says it cancelled.
//! GitHub's `cancelled` names its plan; a change older than the
//! cancellation can arrive after it (and is then stale), so the plan on
//! record before the cancellation may be one the customer had already left.

use chrono::{DateTime, Duration, TimeZone, Utc};
use tollgate_core::model::{
    Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Plan, PlanTerms, Status,
    Subscription, SubscriptionKey,
};
use tollgate_core::rules;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0).unwrap()
}

fn event(kind: EventKind, effective_at: DateTime<Utc>) -> MarketEvent {
    MarketEvent {
        id: format!("{}-{}", kind.name(), effective_at.timestamp()),
        subscription: SubscriptionKey::new(Marketplace::Github, "42"),
        customer: Customer::new(CustomerKey::new(Marketplace::Github, "42")),
        product: "ci".into(),
        effective_at,
        kind,
    }
}

fn fold(events: &[MarketEvent]) -> Subscription {
    let mut state: Option<Subscription> = None;
    for e in events {
        if let Some(next) = rules::apply(state.as_ref(), e, now()).next {
            state = Some(next);
        }
    }
    state.expect("something applied")
}

#[test]
fn a_cancellation_overtaking_an_upgrade_records_the_cancelled_plan() {
    let day = Duration::days(1);
    let purchase = event(
        EventKind::Purchased {
            terms: PlanTerms::new(Plan::new("team")),
            awaiting: None,
        },
        now() - day * 3,
    );
    let upgrade = event(
        EventKind::Changed {
            terms: PlanTerms::new(Plan::new("business")),
        },
        now() - day * 2,
    );
    let cancel = event(
        EventKind::Cancelled {
            plan: Some(Plan::new("business")),
            access_until: None,
        },
        now() - day,
    );
    // In order and with the cancellation first: the same record.
    for order in [
        [&purchase, &upgrade, &cancel],
        [&purchase, &cancel, &upgrade],
    ] {
        let state = fold(&order.map(Clone::clone));
        assert_eq!(
            (state.status, state.plan.id.as_str()),
            (Status::Cancelled, "business")
        );
    }
    // Without a named plan the current one stays.
    let unnamed = event(
        EventKind::Cancelled {
            plan: None,
            access_until: None,
        },
        now() - day,
    );
    let state = fold(&[purchase, unnamed]);
    assert_eq!(state.plan.id, "team");
}
