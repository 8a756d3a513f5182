//! Values the tests of every role build on.

use chrono::{DateTime, Utc};

use crate::model::{
    Customer, CustomerKey, Disposition, LogEntry, Marketplace, Plan, Seats, Status, Subscription,
    SubscriptionKey,
};
use crate::store::Commit;

pub(super) fn key(id: &str) -> SubscriptionKey {
    SubscriptionKey::new(Marketplace::Github, id)
}

pub(super) fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_323_200 + secs, 0).expect("in range")
}

pub(super) fn sub(id: &str, version: u64) -> Subscription {
    Subscription {
        key: key(id),
        customer: Customer::new(CustomerKey::new(Marketplace::Github, "cust")),
        product: "app".into(),
        plan: Plan::new("pro"),
        status: Status::Active,
        awaiting: None,
        seats: Seats {
            limit: Some(3),
            used: 0,
        },
        billing_cycle: None,
        trial_ends_at: None,
        next_billing_at: None,
        access_until: None,
        pending_change: None,
        last_applied: None,
        version,
        created_at: at(0),
        updated_at: at(0),
    }
}

pub(super) fn log(id: &str, event: &str) -> LogEntry {
    LogEntry {
        subscription: key(id),
        event_id: event.into(),
        event: "purchased".into(),
        effective_at: at(0),
        recorded_at: at(0),
        disposition: Disposition::Applied,
        note: String::new(),
        status_before: None,
        status_after: Some(Status::Active),
    }
}

/// Creates subscription `id` at version 1.
pub(super) fn create(id: &str) -> Commit {
    Commit {
        subscription: key(id),
        expected_version: 0,
        state: Some(sub(id, 1)),
        log: log(id, "e1"),
        delivery: None,
    }
}
