//! The subscription state machine: `apply(current, event, now)` folds one
//! normalized marketplace event into a subscription.
//!
//! Pure: no clock, no I/O. The caller reads the current state, calls
//! [`apply`], and commits the result conditional on the version it read.
//!
//! # Ordering
//!
//! Marketplaces deliver out of order. Every applied event leaves an
//! [`AppliedMark`] (its `effective_at`); an event whose `effective_at` is older
//! than the mark is *stale*: it is logged but changes nothing.
//!
//! Tie-break for equal `effective_at` (GitHub's `effective_date` is
//! day-granular, so same-day events are common): events apply in arrival
//! order — a same-day `changed` after an upgrade is GitHub's "revert of a
//! failed upgrade" — except that after a cancellation only a new purchase
//! applies at the same instant, so a late same-day change never resurrects a
//! cancelled subscription; and a purchase applies at the same instant only
//! as such a re-purchase (after the cancellation of a purchase that was
//! seen), so a purchase delivered after its own same-day upgrade or
//! cancellation does not roll them back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{
    AppliedMark, Awaiting, Customer, Disposition, EventKind, LogEntry, MarketEvent, Observation,
    ObservedState, PendingChange, Plan, PlanTerms, PriceModel, Seats, Status, Subscription,
};

/// Something to do at the marketplace after the new state is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// The order waited for sign-up/approval and may now be approved at the
    /// marketplace (Google: `entitlements.approve`).
    ApproveOrder,
    /// A plan change was requested; approve it at the marketplace (Google:
    /// `entitlements.approvePlanChange`).
    ApprovePlanChange { plan: Plan },
    /// The new seat limit is below the seats in use; the vendor should tell
    /// the customer (GitHub asks vendors to check plan limits after a downgrade).
    SeatsOverLimit { limit: u32, used: u32 },
}

/// The result of applying one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The state to commit; `None` when the event changes nothing (stale,
    /// ignored). The log entry is committed either way.
    pub next: Option<Subscription>,
    pub log: LogEntry,
    pub actions: Vec<Action>,
}

impl Outcome {
    pub fn disposition(&self) -> Disposition {
        self.log.disposition
    }
}

/// Folds `event` into `current` (`None`: never seen) at time `now`.
pub fn apply(current: Option<&Subscription>, event: &MarketEvent, now: DateTime<Utc>) -> Outcome {
    if let EventKind::Informational { name } = &event.kind {
        return not_applied(
            current,
            event,
            now,
            Disposition::Ignored,
            format!("`{name}` recorded; it changes no subscription"),
        );
    }
    if let EventKind::Unknown { name } = &event.kind {
        return not_applied(
            current,
            event,
            now,
            Disposition::Ignored,
            format!("unknown event type `{name}`"),
        );
    }
    // A refusal is the answer itself, whatever the order of events.
    if let EventKind::Refused { code, reason } = &event.kind {
        return not_applied(
            current,
            event,
            now,
            Disposition::Ignored,
            refusal_note(code, reason),
        );
    }
    if let Some(cur) = current
        && let Some(reason) = stale_reason(cur, event)
    {
        return not_applied(current, event, now, Disposition::Stale, reason);
    }
    match transition(current, event, now) {
        Ok((next, actions, note)) => {
            let log = log_entry(
                event,
                now,
                Disposition::Applied,
                note,
                current.map(|c| c.status),
                Some(next.status),
            );
            Outcome {
                next: Some(next),
                log,
                actions,
            }
        }
        Err(note) => not_applied(current, event, now, Disposition::Ignored, note),
    }
}

fn stale_reason(cur: &Subscription, event: &MarketEvent) -> Option<String> {
    let mark = cur.last_applied.as_ref()?;
    if event.effective_at < mark.effective_at {
        return Some(format!(
            "stale: takes effect {} but {} (effective {}) is already applied",
            event.effective_at, mark.event_id, mark.effective_at
        ));
    }
    let is_purchase = matches!(event.kind, EventKind::Purchased { .. });
    if event.effective_at == mark.effective_at && cur.status == Status::Cancelled && !is_purchase {
        return Some(format!(
            "stale: same effective time as the cancellation {}; only a new purchase follows a cancellation",
            mark.event_id
        ));
    }
    // A purchase opens a lifecycle, so at the same instant as events already
    // applied it is the opening purchase delivered late (concurrent
    // deliveries commit in any order) — unless it re-purchases after the
    // cancellation of a purchase we saw. A cancellation that created the
    // record (version 1) had its own purchase still in flight.
    let is_repurchase = cur.status == Status::Cancelled && cur.version > 1;
    if event.effective_at == mark.effective_at && is_purchase && !is_repurchase {
        return Some(format!(
            "stale: a purchase at the same effective time as {}, which is already applied",
            mark.event_id
        ));
    }
    None
}

type Transition = Result<(Subscription, Vec<Action>, String), String>;

fn transition(
    current: Option<&Subscription>,
    event: &MarketEvent,
    now: DateTime<Utc>,
) -> Transition {
    match (&event.kind, current) {
        (EventKind::Purchased { terms, awaiting }, cur) => {
            Ok(purchased(cur, event, terms, *awaiting, now))
        }
        (EventKind::Changed { terms }, Some(cur)) => Ok(changed(cur, event, terms, now)),
        // GitHub never retries, so the purchase may be lost; a change carries
        // the whole purchase, which is enough to start from.
        (EventKind::Changed { terms }, None) => {
            let (sub, actions, _) = purchased(None, event, terms, None, now);
            Ok((
                sub,
                actions,
                "created from a change; the purchase was never seen".into(),
            ))
        }
        (
            EventKind::ChangePending {
                plan,
                seats,
                effective_at,
            },
            Some(cur),
        ) => {
            let mut next = advance(cur, event, now);
            next.pending_change = Some(PendingChange::Plan {
                plan: plan.clone(),
                seats: *seats,
                effective_at: *effective_at,
            });
            let actions = vec![Action::ApprovePlanChange { plan: plan.clone() }];
            Ok((
                next,
                actions,
                format!("change to plan {} pending until {effective_at}", plan.id),
            ))
        }
        (EventKind::CancellationPending { effective_at }, Some(cur)) => {
            if cur.status == Status::Cancelled {
                return Err("already cancelled".into());
            }
            let mut next = advance(cur, event, now);
            next.pending_change = Some(PendingChange::Cancellation {
                effective_at: *effective_at,
            });
            next.access_until = Some(*effective_at);
            if next.status != Status::Suspended {
                next.status = Status::PendingCancellation;
            }
            Ok((
                next,
                vec![],
                format!("cancellation pending; entitled until {effective_at}"),
            ))
        }
        (EventKind::PendingChangeWithdrawn, Some(cur)) => {
            if cur.pending_change.is_none() {
                return Err("no pending change to withdraw".into());
            }
            let mut next = advance(cur, event, now);
            next.pending_change = None;
            if next.status == Status::PendingCancellation {
                next.access_until = None;
                next.status = running_status(&next, now);
            }
            Ok((next, vec![], "pending change withdrawn".into()))
        }
        (EventKind::Cancelled { plan, access_until }, cur) => {
            Ok(cancelled(cur, event, plan.as_ref(), *access_until, now))
        }
        (EventKind::Suspended, Some(cur)) => {
            if cur.status == Status::Cancelled {
                return Err("cannot suspend a cancelled subscription".into());
            }
            let mut next = advance(cur, event, now);
            next.status = Status::Suspended;
            Ok((next, vec![], "suspended".into()))
        }
        (EventKind::Reinstated, Some(cur)) => {
            if cur.status != Status::Suspended {
                return Err(format!("not suspended (status {})", cur.status.as_str()));
            }
            let mut next = advance(cur, event, now);
            next.status = if next.access_until.is_some() {
                Status::PendingCancellation
            } else {
                running_status(&next, now)
            };
            Ok((next, vec![], "reinstated".into()))
        }
        (EventKind::Approved, Some(cur)) => {
            if cur.status != Status::Pending {
                return Err(format!(
                    "nothing to approve (status {})",
                    cur.status.as_str()
                ));
            }
            let mut next = advance(cur, event, now);
            next.awaiting = None;
            next.status = running_status(&next, now);
            Ok((next, vec![Action::ApproveOrder], "approved".into()))
        }
        (EventKind::Observed(observation), cur) => observed(cur, event, observation, now),
        (kind, None) => Err(format!(
            "`{}` for a subscription that was never purchased",
            kind.name()
        )),
        (EventKind::Informational { name } | EventKind::Unknown { name }, Some(_)) => {
            Err(format!("unknown event type `{name}`"))
        }
        (EventKind::Refused { code, reason }, Some(_)) => Err(refusal_note(code, reason)),
    }
}

/// The log note of a [`EventKind::Refused`] event: `refused <code>: <reason>`.
/// [`parse_refusal_note`] reads it back, so a marketplace can answer a
/// redelivery from the log exactly as it answered the first time.
pub fn refusal_note(code: &str, reason: &str) -> String {
    format!("refused {code}: {reason}")
}

/// The code and reason of a note written by [`refusal_note`].
pub fn parse_refusal_note(note: &str) -> Option<(&str, &str)> {
    let (code, reason) = note.strip_prefix("refused ")?.split_once(": ")?;
    let is_code = !code.is_empty()
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    is_code.then_some((code, reason))
}

/// Converges the stored state to what the marketplace says it is now.
fn observed(
    current: Option<&Subscription>,
    event: &MarketEvent,
    o: &Observation,
    now: DateTime<Utc>,
) -> Transition {
    if current.is_none() && matches!(o.state, ObservedState::Deleted) {
        return Err("deleted before it was ever seen".into());
    }
    let mut next = match current {
        Some(cur) => advance(cur, event, now),
        None => new_subscription(event, o.terms.plan.clone(), now),
    };
    next.customer = merge_customer(&next.customer, &event.customer);
    set_terms(&mut next, &o.terms);
    next.awaiting = None;
    next.access_until = None;
    next.pending_change = o.pending_plan.as_ref().map(|plan| PendingChange::Plan {
        plan: plan.clone(),
        seats: None,
        effective_at: o.term_ends_at.unwrap_or(event.effective_at),
    });
    next.status = match o.state {
        ObservedState::Requested => {
            next.awaiting = Some(o.awaiting.unwrap_or(Awaiting::Approval));
            Status::Pending
        }
        ObservedState::Active => running_status(&next, now),
        ObservedState::PendingCancellation => {
            // Entitled to the end of the term; without a known end, to now
            // (the marketplace will say `cancelled` soon).
            let until = o.term_ends_at.unwrap_or(event.effective_at);
            next.access_until = Some(until);
            next.pending_change = Some(PendingChange::Cancellation {
                effective_at: until,
            });
            Status::PendingCancellation
        }
        ObservedState::Suspended => Status::Suspended,
        ObservedState::Cancelled | ObservedState::Deleted => {
            next.pending_change = None;
            Status::Cancelled
        }
    };
    let unchanged = current.is_some_and(|cur| {
        cur.status == next.status
            && cur.plan == next.plan
            && cur.awaiting == next.awaiting
            && cur.pending_change == next.pending_change
            && cur.access_until == next.access_until
    });
    let note = format!(
        "{} {}: {} on plan {}",
        if unchanged {
            "observed unchanged"
        } else {
            "observed"
        },
        o.state.as_str(),
        next.status.as_str(),
        next.plan.id
    );
    let actions = seats_over_limit(&next);
    Ok((next, actions, note))
}

fn purchased(
    current: Option<&Subscription>,
    event: &MarketEvent,
    terms: &PlanTerms,
    awaiting: Option<Awaiting>,
    now: DateTime<Utc>,
) -> (Subscription, Vec<Action>, String) {
    let mut next = match current {
        Some(cur) => advance(cur, event, now),
        None => new_subscription(event, terms.plan.clone(), now),
    };
    next.customer = merge_customer(&next.customer, &event.customer);
    set_terms(&mut next, terms);
    next.pending_change = None;
    next.access_until = None;
    next.awaiting = awaiting;
    next.status = if awaiting.is_some() {
        Status::Pending
    } else {
        running_status(&next, now)
    };
    let note = match (current.map(|c| c.status), next.status) {
        (Some(Status::Cancelled), _) => "purchased again after a cancellation".to_owned(),
        (_, Status::Trial) => format!("purchased plan {} with a trial", terms.plan.id),
        (_, Status::Pending) => {
            format!("purchased plan {}; awaiting {:?}", terms.plan.id, awaiting)
        }
        _ => format!("purchased plan {}", terms.plan.id),
    };
    let actions = seats_over_limit(&next);
    (next, actions, note)
}

fn changed(
    cur: &Subscription,
    event: &MarketEvent,
    terms: &PlanTerms,
    now: DateTime<Utc>,
) -> (Subscription, Vec<Action>, String) {
    let mut next = advance(cur, event, now);
    next.customer = merge_customer(&next.customer, &event.customer);
    let was_trial = cur.status == Status::Trial;
    set_terms(&mut next, terms);
    // A change that takes effect supersedes a pending plan change; a pending
    // cancellation stays until it happens or is withdrawn.
    if matches!(next.pending_change, Some(PendingChange::Plan { .. })) {
        next.pending_change = None;
    }
    next.status = match cur.status {
        Status::Pending | Status::Suspended | Status::PendingCancellation => cur.status,
        Status::Trial | Status::Active | Status::Cancelled => {
            next.access_until = None;
            running_status(&next, now)
        }
    };
    let note = if was_trial && next.status == Status::Active {
        format!("trial converted to plan {}", terms.plan.id)
    } else {
        format!(
            "changed to plan {} (seats {:?})",
            terms.plan.id, terms.seats
        )
    };
    (next.clone(), seats_over_limit(&next), note)
}

fn cancelled(
    current: Option<&Subscription>,
    event: &MarketEvent,
    plan: Option<&Plan>,
    access_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (Subscription, Vec<Action>, String) {
    // A cancellation for a subscription never seen is still recorded, so that
    // a purchase delivered late (and older) cannot bring it back.
    let mut next = match current {
        Some(cur) => advance(cur, event, now),
        None => new_subscription(event, plan.cloned().unwrap_or_else(|| Plan::new("")), now),
    };
    // The plan the marketplace says it cancelled is the one on record: a
    // change older than the cancellation may arrive after it (and is then
    // stale), so the current plan can be one the customer had left.
    if let Some(plan) = plan {
        next.plan = plan.clone();
    }
    let ends_at_once = current
        .is_none_or(|c| c.status == Status::Trial || c.status == Status::Pending)
        || next.plan.price_model == Some(PriceModel::Free)
        || plan.and_then(|p| p.price_model) == Some(PriceModel::Free);
    next.pending_change = None;
    match access_until {
        Some(until) if until > now && !ends_at_once => {
            next.status = Status::PendingCancellation;
            next.access_until = Some(until);
            next.pending_change = Some(PendingChange::Cancellation {
                effective_at: until,
            });
            (next, vec![], format!("cancelled; entitled until {until}"))
        }
        _ => {
            next.status = Status::Cancelled;
            next.access_until = None;
            let note = if current.is_some_and(|c| c.status == Status::Trial) {
                "trial cancelled; access ends now"
            } else {
                "cancelled; access ends now"
            };
            (next, vec![], note.to_owned())
        }
    }
}

/// The status of a subscription that is neither pending, suspended nor ending.
fn running_status(sub: &Subscription, now: DateTime<Utc>) -> Status {
    match sub.trial_ends_at {
        Some(end) if end > now => Status::Trial,
        _ => Status::Active,
    }
}

fn set_terms(next: &mut Subscription, terms: &PlanTerms) {
    next.plan = terms.plan.clone();
    next.seats = Seats {
        limit: terms.seats,
        used: next.seats.used,
    };
    next.billing_cycle = terms.billing_cycle;
    next.trial_ends_at = terms.trial_ends_at;
    next.next_billing_at = terms.next_billing_at;
}

fn seats_over_limit(sub: &Subscription) -> Vec<Action> {
    match sub.seats.limit {
        Some(limit) if sub.seats.used > limit => vec![Action::SeatsOverLimit {
            limit,
            used: sub.seats.used,
        }],
        _ => vec![],
    }
}

/// Keeps what we already know of a customer when an event omits it.
fn merge_customer(old: &Customer, new: &Customer) -> Customer {
    Customer {
        key: new.key.clone(),
        name: new.name.clone().or_else(|| old.name.clone()),
        kind: new.kind.or(old.kind),
        billing_email: new
            .billing_email
            .clone()
            .or_else(|| old.billing_email.clone()),
    }
}

fn new_subscription(event: &MarketEvent, plan: Plan, now: DateTime<Utc>) -> Subscription {
    Subscription {
        key: event.subscription.clone(),
        customer: event.customer.clone(),
        product: event.product.clone(),
        plan,
        status: Status::Pending,
        awaiting: None,
        seats: Seats::default(),
        billing_cycle: None,
        trial_ends_at: None,
        next_billing_at: None,
        access_until: None,
        pending_change: None,
        last_applied: Some(AppliedMark {
            effective_at: event.effective_at,
            event_id: event.id.clone(),
        }),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// The next version of `cur`, marked with `event`.
fn advance(cur: &Subscription, event: &MarketEvent, now: DateTime<Utc>) -> Subscription {
    let mut next = cur.clone();
    next.last_applied = Some(AppliedMark {
        effective_at: event.effective_at,
        event_id: event.id.clone(),
    });
    next.version = cur.version + 1;
    next.updated_at = now;
    next
}

fn not_applied(
    current: Option<&Subscription>,
    event: &MarketEvent,
    now: DateTime<Utc>,
    disposition: Disposition,
    note: String,
) -> Outcome {
    let status = current.map(|c| c.status);
    Outcome {
        next: None,
        log: log_entry(event, now, disposition, note, status, status),
        actions: vec![],
    }
}

fn log_entry(
    event: &MarketEvent,
    now: DateTime<Utc>,
    disposition: Disposition,
    note: String,
    status_before: Option<Status>,
    status_after: Option<Status>,
) -> LogEntry {
    LogEntry {
        subscription: event.subscription.clone(),
        event_id: event.id.clone(),
        event: event.kind.name().to_owned(),
        effective_at: event.effective_at,
        recorded_at: now,
        disposition,
        note,
        status_before,
        status_after,
    }
}

#[cfg(test)]
mod tests {
    //! One test per documented transition, named after it.
    use super::*;
    use crate::model::{CustomerKey, Marketplace, SubscriptionKey};
    use chrono::{Duration, TimeZone};

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 0, 0, 0).unwrap()
    }

    fn plan(id: &str) -> Plan {
        Plan {
            id: id.into(),
            name: None,
            price_model: Some(PriceModel::PerUnit),
        }
    }

    fn terms(id: &str, seats: Option<u32>) -> PlanTerms {
        PlanTerms {
            seats,
            ..PlanTerms::new(plan(id))
        }
    }

    fn event(id: &str, day: u32, kind: EventKind) -> MarketEvent {
        MarketEvent {
            id: id.into(),
            subscription: SubscriptionKey::new(Marketplace::Github, "42"),
            customer: Customer::new(CustomerKey::new(Marketplace::Github, "42")),
            product: "acme-ci".into(),
            effective_at: t(day),
            kind,
        }
    }

    fn buy(day: u32, terms: PlanTerms) -> MarketEvent {
        event(
            "purchase",
            day,
            EventKind::Purchased {
                terms,
                awaiting: None,
            },
        )
    }

    /// Applies and expects the event to be applied.
    fn step(cur: Option<&Subscription>, e: &MarketEvent, now: DateTime<Utc>) -> Subscription {
        let out = apply(cur, e, now);
        assert_eq!(out.disposition(), Disposition::Applied, "{}", out.log.note);
        out.next.expect("applied events return the next state")
    }

    fn active(seats: Option<u32>) -> Subscription {
        step(None, &buy(1, terms("team", seats)), t(1))
    }

    #[test]
    fn purchase_without_trial_is_active() {
        let s = active(Some(5));
        assert_eq!(s.status, Status::Active);
        assert_eq!(s.plan.id, "team");
        assert_eq!(s.seats.limit, Some(5));
        assert_eq!(s.version, 1);
        assert_eq!(s.trial_ends_at, None);
    }

    #[test]
    fn purchase_with_trial_starts_a_trial() {
        let trial = PlanTerms {
            trial_ends_at: Some(t(15)),
            ..terms("team", Some(3))
        };
        let s = step(None, &buy(1, trial), t(1));
        assert_eq!(s.status, Status::Trial);
        assert_eq!(s.trial_ends_at, Some(t(15)));
    }

    #[test]
    fn purchase_awaiting_signup_is_pending_then_approved_becomes_active() {
        let e = event(
            "p",
            1,
            EventKind::Purchased {
                terms: terms("team", None),
                awaiting: Some(Awaiting::Signup),
            },
        );
        let s = step(None, &e, t(1));
        assert_eq!(
            (s.status, s.awaiting),
            (Status::Pending, Some(Awaiting::Signup))
        );
        let out = apply(Some(&s), &event("ok", 2, EventKind::Approved), t(2));
        let next = out.next.expect("approval applies");
        assert_eq!((next.status, next.awaiting), (Status::Active, None));
        assert_eq!(out.actions, vec![Action::ApproveOrder]);
    }

    #[test]
    fn approval_of_a_subscription_that_is_not_pending_is_ignored() {
        let s = active(None);
        let out = apply(Some(&s), &event("ok", 2, EventKind::Approved), t(2));
        assert_eq!(out.disposition(), Disposition::Ignored);
        assert!(out.next.is_none() && out.actions.is_empty());
    }

    #[test]
    fn upgrade_takes_effect_now() {
        let s = active(Some(5));
        let next = step(
            Some(&s),
            &event(
                "up",
                3,
                EventKind::Changed {
                    terms: terms("business", Some(10)),
                },
            ),
            t(3),
        );
        assert_eq!(next.status, Status::Active);
        assert_eq!(next.plan.id, "business");
        assert_eq!(next.seats.limit, Some(10));
        assert_eq!(next.version, 2);
    }

    #[test]
    fn trial_conversion_makes_the_trial_active() {
        let trial = PlanTerms {
            trial_ends_at: Some(t(15)),
            ..terms("team", Some(3))
        };
        let s = step(None, &buy(1, trial), t(1));
        let next = step(
            Some(&s),
            &event(
                "conv",
                15,
                EventKind::Changed {
                    terms: terms("team", Some(3)),
                },
            ),
            t(15),
        );
        assert_eq!(next.status, Status::Active);
        assert_eq!(next.trial_ends_at, None);
    }

    #[test]
    fn downgrade_is_pending_until_its_date_then_takes_effect() {
        let s = active(Some(10));
        let pending = EventKind::ChangePending {
            plan: plan("free"),
            seats: None,
            effective_at: t(30),
        };
        let out = apply(Some(&s), &event("pc", 5, pending), t(5));
        assert_eq!(
            out.actions,
            vec![Action::ApprovePlanChange { plan: plan("free") }]
        );
        let s2 = out.next.unwrap();
        assert_eq!(
            s2.plan.id, "team",
            "current plan is kept until the change takes effect"
        );
        assert_eq!(s2.status, Status::Active);
        assert!(
            matches!(&s2.pending_change, Some(PendingChange::Plan { plan, effective_at, .. }) if plan.id == "free" && *effective_at == t(30))
        );
        let s3 = step(
            Some(&s2),
            &event(
                "down",
                30,
                EventKind::Changed {
                    terms: terms("free", None),
                },
            ),
            t(30),
        );
        assert_eq!(s3.plan.id, "free");
        assert_eq!(s3.pending_change, None);
    }

    #[test]
    fn cancellation_is_pending_until_its_date() {
        let s = active(None);
        let s2 = step(
            Some(&s),
            &event(
                "pc",
                5,
                EventKind::CancellationPending {
                    effective_at: t(30),
                },
            ),
            t(5),
        );
        assert_eq!(s2.status, Status::PendingCancellation);
        assert_eq!(s2.access_until, Some(t(30)));
        assert_eq!(
            s2.pending_change,
            Some(PendingChange::Cancellation {
                effective_at: t(30)
            })
        );
    }

    #[test]
    fn pending_change_withdrawn_clears_a_pending_downgrade() {
        let s = active(Some(10));
        let pending = EventKind::ChangePending {
            plan: plan("free"),
            seats: None,
            effective_at: t(30),
        };
        let s2 = step(Some(&s), &event("pc", 5, pending), t(5));
        let s3 = step(
            Some(&s2),
            &event("w", 6, EventKind::PendingChangeWithdrawn),
            t(6),
        );
        assert_eq!(s3.pending_change, None);
        assert_eq!((s3.status, s3.plan.id.as_str()), (Status::Active, "team"));
    }

    #[test]
    fn pending_change_withdrawn_restores_access_after_a_pending_cancellation() {
        let s = active(None);
        let s2 = step(
            Some(&s),
            &event(
                "pc",
                5,
                EventKind::CancellationPending {
                    effective_at: t(30),
                },
            ),
            t(5),
        );
        let s3 = step(
            Some(&s2),
            &event("w", 6, EventKind::PendingChangeWithdrawn),
            t(6),
        );
        assert_eq!(
            (s3.status, s3.access_until, s3.pending_change),
            (Status::Active, None, None)
        );
    }

    #[test]
    fn withdrawing_when_nothing_is_pending_is_ignored() {
        let s = active(None);
        let out = apply(
            Some(&s),
            &event("w", 6, EventKind::PendingChangeWithdrawn),
            t(6),
        );
        assert_eq!(out.disposition(), Disposition::Ignored);
    }

    #[test]
    fn cancellation_of_a_paid_plan_takes_effect_at_its_date() {
        let s = active(None);
        let cancel = EventKind::Cancelled {
            plan: None,
            access_until: Some(t(30)),
        };
        let s2 = step(Some(&s), &event("c", 10, cancel), t(10));
        assert_eq!(
            (s2.status, s2.access_until),
            (Status::PendingCancellation, Some(t(30)))
        );
    }

    #[test]
    fn cancellation_taking_effect_ends_access_now() {
        let s = active(None);
        let s2 = step(
            Some(&s),
            &event(
                "pc",
                5,
                EventKind::CancellationPending {
                    effective_at: t(30),
                },
            ),
            t(5),
        );
        let s3 = step(
            Some(&s2),
            &event(
                "c",
                30,
                EventKind::Cancelled {
                    plan: None,
                    access_until: None,
                },
            ),
            t(30),
        );
        assert_eq!(
            (s3.status, s3.access_until, s3.pending_change),
            (Status::Cancelled, None, None)
        );
    }

    #[test]
    fn cancellation_of_a_trial_is_immediate() {
        let trial = PlanTerms {
            trial_ends_at: Some(t(15)),
            ..terms("team", Some(3))
        };
        let s = step(None, &buy(1, trial), t(1));
        // Even if the marketplace names the end of the period, a trial ends now.
        let cancel = EventKind::Cancelled {
            plan: None,
            access_until: Some(t(15)),
        };
        let s2 = step(Some(&s), &event("c", 4, cancel), t(4));
        assert_eq!((s2.status, s2.access_until), (Status::Cancelled, None));
    }

    #[test]
    fn cancellation_of_a_free_plan_is_immediate() {
        let free = PlanTerms::new(Plan {
            id: "free".into(),
            name: None,
            price_model: Some(PriceModel::Free),
        });
        let s = step(None, &buy(1, free), t(1));
        let cancel = EventKind::Cancelled {
            plan: None,
            access_until: Some(t(30)),
        };
        assert_eq!(
            step(Some(&s), &event("c", 4, cancel), t(4)).status,
            Status::Cancelled
        );
    }

    #[test]
    fn cancellation_before_purchase_is_kept_so_the_late_purchase_is_stale() {
        let cancel = EventKind::Cancelled {
            plan: Some(plan("team")),
            access_until: None,
        };
        let s = step(None, &event("c", 20, cancel), t(20));
        assert_eq!(s.status, Status::Cancelled);
        let out = apply(Some(&s), &buy(1, terms("team", None)), t(21));
        assert_eq!(out.disposition(), Disposition::Stale);
        assert!(out.next.is_none());
    }

    #[test]
    fn purchase_after_cancellation_starts_again() {
        let s = active(None);
        let s2 = step(
            Some(&s),
            &event(
                "c",
                5,
                EventKind::Cancelled {
                    plan: None,
                    access_until: None,
                },
            ),
            t(5),
        );
        let s3 = step(Some(&s2), &buy(5, terms("business", None)), t(5));
        assert_eq!(
            (s3.status, s3.plan.id.as_str()),
            (Status::Active, "business")
        );
    }

    #[test]
    fn suspension_and_reinstatement() {
        let s = active(None);
        let s2 = step(Some(&s), &event("s", 3, EventKind::Suspended), t(3));
        assert_eq!(s2.status, Status::Suspended);
        let s3 = step(Some(&s2), &event("r", 4, EventKind::Reinstated), t(4));
        assert_eq!(s3.status, Status::Active);
    }

    #[test]
    fn reinstatement_returns_a_trial_to_its_trial() {
        let trial = PlanTerms {
            trial_ends_at: Some(t(15)),
            ..terms("team", None)
        };
        let s = step(None, &buy(1, trial), t(1));
        let s2 = step(Some(&s), &event("s", 3, EventKind::Suspended), t(3));
        assert_eq!(
            step(Some(&s2), &event("r", 4, EventKind::Reinstated), t(4)).status,
            Status::Trial
        );
    }

    #[test]
    fn reinstating_an_unsuspended_subscription_is_ignored() {
        let s = active(None);
        assert_eq!(
            apply(Some(&s), &event("r", 4, EventKind::Reinstated), t(4)).disposition(),
            Disposition::Ignored
        );
    }

    #[test]
    fn stale_event_is_logged_but_not_applied() {
        let s = active(Some(5));
        let s2 = step(
            Some(&s),
            &event(
                "c",
                10,
                EventKind::Cancelled {
                    plan: None,
                    access_until: None,
                },
            ),
            t(10),
        );
        let late_upgrade = event(
            "up",
            8,
            EventKind::Changed {
                terms: terms("business", Some(10)),
            },
        );
        let out = apply(Some(&s2), &late_upgrade, t(11));
        assert_eq!(out.disposition(), Disposition::Stale);
        assert!(out.next.is_none(), "a stale event never rolls state back");
        assert_eq!(out.log.event_id, "up");
        assert_eq!(out.log.status_after, Some(Status::Cancelled));
    }

    #[test]
    fn same_day_events_apply_in_arrival_order() {
        let s = active(Some(5));
        let up = step(
            Some(&s),
            &event(
                "up",
                3,
                EventKind::Changed {
                    terms: terms("business", None),
                },
            ),
            t(3),
        );
        // GitHub's revert of a failed upgrade arrives the same day.
        let reverted = step(
            Some(&up),
            &event(
                "revert",
                3,
                EventKind::Changed {
                    terms: terms("team", Some(5)),
                },
            ),
            t(3),
        );
        assert_eq!(reverted.plan.id, "team");
    }

    #[test]
    fn same_day_change_after_cancellation_is_stale() {
        let s = active(None);
        let s2 = step(
            Some(&s),
            &event(
                "c",
                5,
                EventKind::Cancelled {
                    plan: None,
                    access_until: None,
                },
            ),
            t(5),
        );
        let out = apply(
            Some(&s2),
            &event(
                "up",
                5,
                EventKind::Changed {
                    terms: terms("business", None),
                },
            ),
            t(5),
        );
        assert_eq!(out.disposition(), Disposition::Stale);
    }

    #[test]
    fn same_day_purchase_delivered_after_its_upgrade_is_stale() {
        let up = event(
            "up",
            3,
            EventKind::Changed {
                terms: terms("business", Some(10)),
            },
        );
        let s = step(None, &up, t(3));
        let out = apply(Some(&s), &buy(3, terms("team", Some(1))), t(3));
        assert_eq!(out.disposition(), Disposition::Stale, "{}", out.log.note);
        assert!(out.next.is_none());
    }

    #[test]
    fn same_day_purchase_delivered_after_its_cancellation_is_stale() {
        let trial = PlanTerms {
            trial_ends_at: Some(t(17)),
            ..terms("team", None)
        };
        let cancel = EventKind::Cancelled {
            plan: Some(plan("team")),
            access_until: None,
        };
        let s = step(None, &event("c", 3, cancel), t(3));
        let out = apply(Some(&s), &buy(3, trial), t(3));
        assert_eq!(out.disposition(), Disposition::Stale, "{}", out.log.note);
    }

    #[test]
    fn change_for_a_never_seen_subscription_creates_it() {
        let s = step(
            None,
            &event(
                "ch",
                3,
                EventKind::Changed {
                    terms: terms("team", Some(2)),
                },
            ),
            t(3),
        );
        assert_eq!((s.status, s.version), (Status::Active, 1));
    }

    #[test]
    fn other_events_for_a_never_seen_subscription_are_ignored() {
        for kind in [
            EventKind::Suspended,
            EventKind::Reinstated,
            EventKind::Approved,
            EventKind::PendingChangeWithdrawn,
        ] {
            let out = apply(None, &event("x", 3, kind), t(3));
            assert_eq!(out.disposition(), Disposition::Ignored);
            assert!(out.next.is_none());
        }
    }

    #[test]
    fn unknown_event_is_recorded_and_ignored() {
        let s = active(None);
        let out = apply(
            Some(&s),
            &event(
                "u",
                9,
                EventKind::Unknown {
                    name: "renamed".into(),
                },
            ),
            t(9),
        );
        assert_eq!(out.disposition(), Disposition::Ignored);
        assert_eq!(out.log.event, "renamed");
        assert!(out.next.is_none());
    }

    #[test]
    fn downgrade_below_seats_in_use_asks_to_tell_the_customer() {
        let mut s = active(Some(5));
        s.seats.used = 3;
        let out = apply(
            Some(&s),
            &event(
                "down",
                3,
                EventKind::Changed {
                    terms: terms("team", Some(2)),
                },
            ),
            t(3),
        );
        assert_eq!(
            out.actions,
            vec![Action::SeatsOverLimit { limit: 2, used: 3 }]
        );
        assert_eq!(
            out.next.unwrap().seats.used,
            3,
            "rules never drop seat holders"
        );
    }

    #[test]
    fn versions_increase_by_one_per_applied_event() {
        let mut s = active(None);
        for (i, day) in (2..6).enumerate() {
            s = step(
                Some(&s),
                &event(
                    &format!("e{day}"),
                    day,
                    EventKind::Changed {
                        terms: terms("team", None),
                    },
                ),
                t(day),
            );
            assert_eq!(s.version, i as u64 + 2);
        }
        assert_eq!(s.updated_at, t(5));
        assert!(s.created_at < s.updated_at);
        let _ = Duration::days(1);
    }

    fn observe(day: u32, state: ObservedState, plan_id: &str) -> MarketEvent {
        event(
            &format!("obs-{day}"),
            day,
            EventKind::Observed(Observation {
                state,
                terms: terms(plan_id, None),
                awaiting: None,
                pending_plan: None,
                term_ends_at: None,
            }),
        )
    }

    #[test]
    fn an_observed_order_awaiting_signup_is_pending_then_active_once_observed_active() {
        let mut order = observe(1, ObservedState::Requested, "team");
        if let EventKind::Observed(o) = &mut order.kind {
            o.awaiting = Some(Awaiting::Signup);
        }
        let s = step(None, &order, t(1));
        assert_eq!(
            (s.status, s.awaiting),
            (Status::Pending, Some(Awaiting::Signup))
        );
        let s = step(Some(&s), &observe(2, ObservedState::Active, "team"), t(2));
        assert_eq!((s.status, s.awaiting), (Status::Active, None));
    }

    #[test]
    fn the_same_observation_twice_changes_nothing() {
        let s = step(None, &observe(1, ObservedState::Active, "team"), t(1));
        let out = apply(Some(&s), &observe(1, ObservedState::Active, "team"), t(2));
        let next = out.next.clone().unwrap_or_else(|| s.clone());
        assert_eq!(
            (next.status, &next.plan.id),
            (Status::Active, &"team".to_owned())
        );
        assert!(
            out.disposition() == Disposition::Stale || out.log.note.contains("unchanged"),
            "{}",
            out.log.note
        );
    }

    #[test]
    fn an_older_observation_never_overwrites_a_newer_one() {
        let s = step(None, &observe(5, ObservedState::Cancelled, "team"), t(5));
        let out = apply(Some(&s), &observe(3, ObservedState::Active, "team"), t(6));
        assert_eq!(out.disposition(), Disposition::Stale);
        assert!(out.next.is_none());
    }

    #[test]
    fn an_observed_plan_change_keeps_the_current_plan_until_it_is_in_force() {
        let s = step(None, &observe(1, ObservedState::Active, "team"), t(1));
        let mut requested = observe(2, ObservedState::Active, "team");
        if let EventKind::Observed(o) = &mut requested.kind {
            o.pending_plan = Some(plan("business"));
            o.term_ends_at = Some(t(20));
        }
        let s = step(Some(&s), &requested, t(2));
        assert_eq!(s.plan.id, "team");
        assert!(matches!(
            &s.pending_change,
            Some(PendingChange::Plan { plan, effective_at, .. }) if plan.id == "business" && *effective_at == t(20)
        ));
        let s = step(
            Some(&s),
            &observe(3, ObservedState::Active, "business"),
            t(3),
        );
        assert_eq!((s.plan.id.as_str(), &s.pending_change), ("business", &None));
    }

    #[test]
    fn an_observed_pending_cancellation_keeps_access_to_the_term_end_and_a_revert_restores_it() {
        let s = step(None, &observe(1, ObservedState::Active, "team"), t(1));
        let mut pending = observe(2, ObservedState::PendingCancellation, "team");
        if let EventKind::Observed(o) = &mut pending.kind {
            o.term_ends_at = Some(t(28));
        }
        let s = step(Some(&s), &pending, t(2));
        assert_eq!(
            (s.status, s.access_until),
            (Status::PendingCancellation, Some(t(28)))
        );
        let s = step(Some(&s), &observe(3, ObservedState::Active, "team"), t(3));
        assert_eq!((s.status, s.access_until), (Status::Active, None));
        let s = step(
            Some(&s),
            &observe(4, ObservedState::Cancelled, "team"),
            t(4),
        );
        assert_eq!((s.status, s.access_until), (Status::Cancelled, None));
    }

    #[test]
    fn a_deletion_never_seen_before_is_ignored_and_a_seen_one_revokes() {
        let out = apply(None, &observe(1, ObservedState::Deleted, "team"), t(1));
        assert_eq!(out.disposition(), Disposition::Ignored);
        let s = step(None, &observe(1, ObservedState::Active, "team"), t(1));
        let s = step(Some(&s), &observe(2, ObservedState::Deleted, "team"), t(2));
        assert_eq!(s.status, Status::Cancelled);
    }

    fn refused(day: u32) -> MarketEvent {
        event(
            "r1",
            day,
            EventKind::Refused {
                code: "MAX_USERS_REACHED".into(),
                reason: "all 3 licences: taken".into(),
            },
        )
    }

    #[test]
    fn a_refusal_is_logged_with_its_code_and_changes_nothing_even_when_stale() {
        let s = active(Some(5));
        for (cur, day) in [(None, 1), (Some(&s), 1), (Some(&s), 9)] {
            let out = apply(cur, &refused(day), t(9));
            assert_eq!(out.next, None);
            assert_eq!(out.disposition(), Disposition::Ignored);
            assert_eq!(out.log.event, "refused");
            assert_eq!(
                parse_refusal_note(&out.log.note),
                Some(("MAX_USERS_REACHED", "all 3 licences: taken"))
            );
        }
    }

    #[test]
    fn only_notes_written_as_refusals_read_back_as_refusals() {
        assert_eq!(
            parse_refusal_note(&refusal_note("DO_NOT_CANCEL", "x")),
            Some(("DO_NOT_CANCEL", "x"))
        );
        for note in [
            "purchased plan team",
            "refused: x",
            "refused lower: x",
            "refused X",
        ] {
            assert_eq!(parse_refusal_note(note), None, "{note}");
        }
    }
}
