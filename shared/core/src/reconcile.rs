//! Reconciliation, the pure part: what a marketplace says one subscription
//! is now (a [`Snapshot`]) against what Tollgate has stored, and the
//! [`MarketEvent`]s that would close the gap — or none.
//!
//! Drift is never written here: [`compare`] returns the events, and the
//! caller commits them through the same ingest path as a delivery, so the
//! same [`rules::apply`] decides what they do. Their ids start with
//! [`EVENT_ID_PREFIX`]: that is how a log entry says its source was a
//! reconciliation rather than a delivery ([`is_reconcile_event`]).
//!
//! # Never regress newer state
//!
//! A snapshot vouches for the state at the moment it was read, no later,
//! and a marketplace's listing may lag its own webhooks. So:
//!
//! 1. **Ordering.** Reconcile events are ordered like the marketplace's own
//!    events, and the rules' staleness check refuses them when something
//!    later is applied. GitHub's deliveries are ordered by day (their
//!    `effective_date`, never after the UTC day they were received), so a
//!    GitHub snapshot takes the start of the UTC day it was read: a delivery
//!    of the same day that arrives after it still applies. Google's
//!    entitlement carries `updateTime`, which orders it exactly; a lagging
//!    listing has an older one and is stale.
//! 2. **Recent commits.** A subscription whose stored state changed less
//!    than [`LISTING_LAG`] before the snapshot was read is held, not
//!    changed: the change was recorded a moment ago and the listing may not
//!    show it yet. The next run looks again.
//! 3. **Cancellations.** A GitHub account still listed although Tollgate
//!    recorded its cancellation the same day is held (the listing may lag
//!    the cancellation); and a pending cancellation GitHub's listing does
//!    not show is left alone until its date has passed, because GitHub does
//!    not document how a listing shows a pending cancellation.
//! 4. **Gone means confirmed gone.** [`Snapshot::Gone`] is for a 404 from
//!    the marketplace's own `GET` of that one account or entitlement, not
//!    for an id a listing happened to leave out (a listing read page by
//!    page can skip an entry that moved between pages).
//!
//! Held subscriptions are reported, so an operator sees them.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};

use crate::model::{
    Customer, CustomerKey, Disposition, EventKind, MarketEvent, Marketplace, Observation,
    ObservedState, PendingChange, PlanTerms, Status, Subscription, SubscriptionKey,
};
use crate::rules;

/// Every reconcile event id starts with this (`reconcile:<run>:<n>`).
pub const EVENT_ID_PREFIX: &str = "reconcile:";

/// How long a marketplace's listing may trail what its webhooks already
/// told Tollgate. Not documented by GitHub or Google [inference]; an hour
/// is far longer than any lag seen in practice and costs one more run at
/// most.
pub const LISTING_LAG: Duration = Duration::hours(1);

/// How long a GitHub trial lasts when the listing says "on trial" without
/// an end date (GitHub's documented 14 days, as the webhook reader assumes).
const GITHUB_TRIAL: Duration = Duration::days(14);

/// Whether a log entry's (or applied mark's) event id was written by a
/// reconciliation.
pub fn is_reconcile_event(event_id: &str) -> bool {
    event_id.starts_with(EVENT_ID_PREFIX)
}

/// The id of the `n`th event a run started at `run` writes to one
/// subscription (distinct ids keep two log entries of one commit time apart).
pub fn event_id(run: DateTime<Utc>, n: usize) -> String {
    format!(
        "{EVENT_ID_PREFIX}{}:{n}",
        run.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// What the marketplace says one subscription is, read at `taken_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// A GitHub account listed on one of the listing's plans.
    Github(GithubPurchase),
    /// A Google entitlement as the Procurement API returns it, with its
    /// `updateTime`.
    Gcp {
        customer: Customer,
        observation: Observation,
        updated_at: Option<DateTime<Utc>>,
    },
    /// The marketplace answered 404 for this very account or entitlement.
    Gone,
}

/// One account's purchase of the GitHub listing, from
/// `/marketplace_listing/plans/{id}/accounts` (or `/accounts/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubPurchase {
    pub customer: Customer,
    /// Plan, seats (per-unit plans only, as the webhook reads them), billing
    /// cycle, next billing date and, when GitHub names it, the trial's end.
    pub terms: PlanTerms,
    pub on_free_trial: bool,
    /// `marketplace_pending_change`, read as a plan change or (when it names
    /// no plan, or the current plan and unit count) a cancellation.
    pub pending: Option<PendingChange>,
}

/// What [`compare`] decided for one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    InSync,
    /// The events that bring the stored state to the snapshot, in order,
    /// and what differs (`status active → cancelled; plan 1002 → 1003`).
    Drift {
        events: Vec<MarketEvent>,
        differences: String,
    },
    /// The snapshot differs, but cannot be trusted over what is stored.
    Held { differences: String, reason: String },
}

/// The subscription being compared.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub key: &'a SubscriptionKey,
    /// Tollgate's product for it (from the catalog).
    pub product: &'a str,
    pub stored: Option<&'a Subscription>,
}

/// Compares `snapshot`, read at `taken_at` by the run started at `run`,
/// with the stored state.
pub fn compare(
    subject: Subject<'_>,
    snapshot: &Snapshot,
    taken_at: DateTime<Utc>,
    run: DateTime<Utc>,
) -> Verdict {
    let stored = subject.stored;
    let kinds = match snapshot {
        Snapshot::Github(purchase) => github_events(stored, purchase, taken_at),
        Snapshot::Gcp { observation, .. } => vec![EventKind::Observed(observation.clone())],
        Snapshot::Gone => gone_events(subject.key, stored),
    };
    if kinds.is_empty() {
        return Verdict::InSync;
    }
    let effective_at = match (subject.key.marketplace, snapshot) {
        (_, Snapshot::Gcp { updated_at, .. }) => updated_at.unwrap_or(taken_at),
        (Marketplace::Github, _) => day_of(taken_at),
        // Google's deletion is final: it orders after whatever is applied.
        _ => stored
            .and_then(|s| s.last_applied.as_ref())
            .map_or(taken_at, |m| m.effective_at.max(taken_at)),
    };
    let customer = match snapshot {
        Snapshot::Github(p) => p.customer.clone(),
        Snapshot::Gcp { customer, .. } => customer.clone(),
        Snapshot::Gone => stored.map_or_else(
            || Customer::new(CustomerKey::new(subject.key.marketplace, "")),
            |s| s.customer.clone(),
        ),
    };
    let events: Vec<MarketEvent> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| MarketEvent {
            id: event_id(run, i + 1),
            subscription: subject.key.clone(),
            customer: customer.clone(),
            product: subject.product.to_owned(),
            effective_at,
            kind,
        })
        .collect();

    // What the snapshot says, whatever the order: the stored state with its
    // ordering mark forgotten, so no event is refused as stale.
    let unordered = stored.map(|s| Subscription {
        last_applied: None,
        ..s.clone()
    });
    let target = fold(unordered.as_ref(), &events, taken_at).state;
    let differences = match (stored, &target) {
        (_, None) => return Verdict::InSync,
        (None, Some(t)) => format!("not stored; {} on plan {}", t.status.as_str(), t.plan.id),
        (Some(s), Some(t)) => match differences(s, t) {
            Some(d) => d,
            None => return Verdict::InSync,
        },
    };
    if let Some(s) = stored {
        if let Some(reason) = hold_reason(s, snapshot, taken_at) {
            return Verdict::Held {
                differences,
                reason,
            };
        }
        // The rules with the real mark: a snapshot older than what is
        // applied is stale and must not roll it back.
        if let Some(stale) = fold(Some(s), &events, taken_at).stale {
            return Verdict::Held {
                differences,
                reason: stale,
            };
        }
    }
    Verdict::Drift {
        events,
        differences,
    }
}

/// The start of the UTC day of `t`: where GitHub's day-granular ordering
/// puts anything that happened that day.
pub fn day_of(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&t.date_naive().and_time(NaiveTime::MIN))
}

/// Why a difference must wait rather than be fixed, if it must.
fn hold_reason(
    stored: &Subscription,
    snapshot: &Snapshot,
    taken_at: DateTime<Utc>,
) -> Option<String> {
    if stored.updated_at > taken_at - LISTING_LAG {
        return Some(format!(
            "stored state changed at {} (less than {} min before the marketplace was read); the listing may lag",
            stored.updated_at.to_rfc3339(),
            LISTING_LAG.num_minutes()
        ));
    }
    if let Snapshot::Github(_) = snapshot
        && stored.status == Status::Cancelled
        && stored
            .last_applied
            .as_ref()
            .is_some_and(|m| m.effective_at >= day_of(taken_at))
    {
        return Some(
            "cancelled today, yet still listed: the listing may lag the cancellation".to_owned(),
        );
    }
    None
}

/// The events that would make a stored GitHub subscription match a listed
/// purchase; empty when nothing differs.
fn github_events(
    stored: Option<&Subscription>,
    purchase: &GithubPurchase,
    taken_at: DateTime<Utc>,
) -> Vec<EventKind> {
    let mut terms = purchase.terms.clone();
    if purchase.on_free_trial && terms.trial_ends_at.is_none() {
        // On trial, end not named: keep the end we know, else GitHub's 14 days.
        terms.trial_ends_at = stored
            .and_then(|s| s.trial_ends_at)
            .or(Some(day_of(taken_at) + GITHUB_TRIAL));
    }
    if !purchase.on_free_trial {
        terms.trial_ends_at = None;
    }
    let running = stored.filter(|s| s.status != Status::Cancelled);
    let mut kinds = Vec::new();
    match running {
        None => kinds.push(EventKind::Purchased {
            terms: terms.clone(),
            awaiting: None,
        }),
        Some(s) => {
            let same_terms = s.plan.id == terms.plan.id
                && s.seats.limit == terms.seats
                && s.billing_cycle == terms.billing_cycle
                && s.trial_ends_at == terms.trial_ends_at;
            if !same_terms {
                kinds.push(EventKind::Changed {
                    terms: terms.clone(),
                });
            }
        }
    }
    let stored_pending = running.and_then(|s| s.pending_change.as_ref());
    match (&purchase.pending, stored_pending) {
        (Some(p), Some(s)) if p == s => {}
        (
            Some(PendingChange::Plan {
                plan,
                seats,
                effective_at,
            }),
            _,
        ) => kinds.push(EventKind::ChangePending {
            plan: plan.clone(),
            seats: *seats,
            effective_at: *effective_at,
        }),
        (Some(PendingChange::Cancellation { effective_at }), _) => {
            kinds.push(EventKind::CancellationPending {
                effective_at: *effective_at,
            });
        }
        (None, Some(PendingChange::Plan { .. })) => kinds.push(EventKind::PendingChangeWithdrawn),
        // Still listed after its end: the cancellation was withdrawn. Before
        // its end the listing proves nothing (see the module doc).
        (None, Some(PendingChange::Cancellation { effective_at })) if *effective_at <= taken_at => {
            kinds.push(EventKind::PendingChangeWithdrawn);
        }
        (None, _) => {}
    }
    kinds
}

/// The events for a subscription the marketplace no longer has.
fn gone_events(key: &SubscriptionKey, stored: Option<&Subscription>) -> Vec<EventKind> {
    let Some(s) = stored.filter(|s| s.status != Status::Cancelled) else {
        return vec![];
    };
    if key.marketplace == Marketplace::Github {
        // Gone from the listing: GitHub ended it. Access lasts to a paid
        // period's end we already know of, else ends now.
        vec![EventKind::Cancelled {
            plan: Some(s.plan.clone()),
            access_until: s.access_until,
        }]
    } else {
        vec![EventKind::Observed(Observation {
            state: ObservedState::Deleted,
            terms: PlanTerms::new(s.plan.clone()),
            awaiting: None,
            pending_plan: None,
            term_ends_at: None,
        })]
    }
}

struct Folded {
    state: Option<Subscription>,
    /// The note of the first event the rules found stale.
    stale: Option<String>,
}

/// Applies `events` in order through the rules, as ingesting them would.
fn fold(start: Option<&Subscription>, events: &[MarketEvent], now: DateTime<Utc>) -> Folded {
    let mut state = start.cloned();
    let mut stale = None;
    for event in events {
        let outcome = rules::apply(state.as_ref(), event, now);
        if outcome.disposition() == Disposition::Stale && stale.is_none() {
            stale = Some(outcome.log.note.clone());
        }
        if let Some(next) = outcome.next {
            state = Some(next);
        }
    }
    Folded { state, stale }
}

/// What differs between two states, in the fields a marketplace decides
/// (not the next billing date, which moves every cycle without an event,
/// nor names and emails).
fn differences(a: &Subscription, b: &Subscription) -> Option<String> {
    let mut out = Vec::new();
    if a.status != b.status {
        out.push(format!(
            "status {} → {}",
            a.status.as_str(),
            b.status.as_str()
        ));
    }
    if a.plan.id != b.plan.id {
        out.push(format!("plan {} → {}", a.plan.id, b.plan.id));
    }
    if a.seats.limit != b.seats.limit {
        out.push(format!("seats {:?} → {:?}", a.seats.limit, b.seats.limit));
    }
    if a.billing_cycle != b.billing_cycle {
        out.push(format!(
            "billing cycle {:?} → {:?}",
            a.billing_cycle, b.billing_cycle
        ));
    }
    if a.trial_ends_at != b.trial_ends_at {
        out.push("trial end".to_owned());
    }
    if a.awaiting != b.awaiting {
        out.push(format!("awaiting {:?} → {:?}", a.awaiting, b.awaiting));
    }
    if a.pending_change != b.pending_change {
        out.push("pending change".to_owned());
    }
    if a.access_until != b.access_until {
        out.push("access until".to_owned());
    }
    (!out.is_empty()).then(|| out.join("; "))
}

#[cfg(test)]
mod tests {
    //! One test per edge the module doc names.
    use super::*;
    use crate::model::{AppliedMark, Plan, PriceModel, Seats};

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
    }

    fn gh_key() -> SubscriptionKey {
        SubscriptionKey::new(Marketplace::Github, "42")
    }

    fn plan(id: &str, model: PriceModel) -> Plan {
        Plan {
            id: id.into(),
            name: None,
            price_model: Some(model),
        }
    }

    fn terms(id: &str, seats: Option<u32>) -> PlanTerms {
        PlanTerms {
            seats,
            ..PlanTerms::new(plan(id, PriceModel::PerUnit))
        }
    }

    fn listed(id: &str, seats: Option<u32>) -> Snapshot {
        Snapshot::Github(GithubPurchase {
            customer: Customer::new(CustomerKey::new(Marketplace::Github, "42")),
            terms: terms(id, seats),
            on_free_trial: false,
            pending: None,
        })
    }

    /// A subscription as the webhook left it: applied on `day`, committed at
    /// `committed`.
    fn stored(status: Status, plan_id: &str, seats: Option<u32>, day: u32) -> Subscription {
        Subscription {
            key: gh_key(),
            customer: Customer::new(CustomerKey::new(Marketplace::Github, "42")),
            product: "acme-ci".into(),
            plan: plan(plan_id, PriceModel::PerUnit),
            status,
            awaiting: None,
            seats: Seats {
                limit: seats,
                ..Seats::default()
            },
            billing_cycle: None,
            trial_ends_at: None,
            next_billing_at: None,
            access_until: None,
            pending_change: None,
            last_applied: Some(AppliedMark {
                effective_at: t(day, 0),
                event_id: "delivery-1".into(),
            }),
            version: 3,
            created_at: t(1, 0),
            updated_at: t(day, 9),
        }
    }

    fn run(snapshot: &Snapshot, sub: Option<&Subscription>, taken_at: DateTime<Utc>) -> Verdict {
        compare(
            Subject {
                key: &gh_key(),
                product: "acme-ci",
                stored: sub,
            },
            snapshot,
            taken_at,
            taken_at,
        )
    }

    fn drift_kinds(v: &Verdict) -> Vec<&str> {
        match v {
            Verdict::Drift { events, .. } => events.iter().map(|e| e.kind.name()).collect(),
            other => panic!("expected drift, got {other:?}"),
        }
    }

    /// Applies a drift's events as ingesting them would.
    fn fixed(v: &Verdict, sub: Option<&Subscription>, now: DateTime<Utc>) -> Subscription {
        let Verdict::Drift { events, .. } = v else {
            panic!("expected drift, got {v:?}")
        };
        fold(sub, events, now).state.expect("a state")
    }

    #[test]
    fn a_listing_that_matches_is_in_sync_and_writes_nothing() {
        let s = stored(Status::Active, "team", Some(5), 2);
        assert_eq!(
            run(&listed("team", Some(5)), Some(&s), t(10, 12)),
            Verdict::InSync
        );
    }

    #[test]
    fn the_next_billing_date_moving_on_is_not_drift() {
        let s = stored(Status::Active, "team", Some(5), 2);
        let Snapshot::Github(mut p) = listed("team", Some(5)) else {
            unreachable!()
        };
        p.terms.next_billing_at = Some(t(30, 0));
        assert_eq!(
            run(&Snapshot::Github(p), Some(&s), t(10, 12)),
            Verdict::InSync
        );
    }

    #[test]
    fn a_missed_plan_change_is_applied_as_a_change_from_the_start_of_the_day() {
        let s = stored(Status::Active, "team", Some(5), 2);
        let v = run(&listed("business", Some(10)), Some(&s), t(10, 12));
        assert_eq!(drift_kinds(&v), ["changed"]);
        let Verdict::Drift {
            events,
            differences,
        } = &v
        else {
            unreachable!()
        };
        assert!(is_reconcile_event(&events[0].id), "{}", events[0].id);
        assert_eq!(events[0].effective_at, t(10, 0));
        assert_eq!(
            differences,
            "plan team → business; seats Some(5) → Some(10)"
        );
        let next = fixed(&v, Some(&s), t(10, 12));
        assert_eq!(
            (next.plan.id.as_str(), next.seats.limit),
            ("business", Some(10))
        );
        // Once fixed, the same listing is in sync: a second run writes nothing.
        assert_eq!(
            run(&listed("business", Some(10)), Some(&next), t(11, 12)),
            Verdict::InSync
        );
    }

    #[test]
    fn a_lost_cancellation_cancels_an_account_github_no_longer_has() {
        let s = stored(Status::Active, "team", Some(5), 2);
        let v = run(&Snapshot::Gone, Some(&s), t(10, 12));
        assert_eq!(drift_kinds(&v), ["cancelled"]);
        assert_eq!(fixed(&v, Some(&s), t(10, 12)).status, Status::Cancelled);
    }

    #[test]
    fn a_gone_free_plan_is_cancelled_at_once() {
        let mut s = stored(Status::Active, "free", None, 2);
        s.plan.price_model = Some(PriceModel::Free);
        let v = run(&Snapshot::Gone, Some(&s), t(10, 12));
        let next = fixed(&v, Some(&s), t(10, 12));
        assert_eq!((next.status, next.access_until), (Status::Cancelled, None));
    }

    #[test]
    fn a_gone_account_keeps_a_paid_period_already_known() {
        let mut s = stored(Status::PendingCancellation, "team", Some(5), 2);
        s.access_until = Some(t(20, 0));
        s.pending_change = Some(PendingChange::Cancellation {
            effective_at: t(20, 0),
        });
        // The rules keep access to the known end: nothing differs.
        assert_eq!(run(&Snapshot::Gone, Some(&s), t(10, 12)), Verdict::InSync);
    }

    #[test]
    fn gone_and_never_seen_or_already_cancelled_is_in_sync() {
        assert_eq!(run(&Snapshot::Gone, None, t(10, 12)), Verdict::InSync);
        let s = stored(Status::Cancelled, "team", None, 2);
        assert_eq!(run(&Snapshot::Gone, Some(&s), t(10, 12)), Verdict::InSync);
    }

    #[test]
    fn an_account_never_seen_is_created_from_the_listing() {
        let v = run(&listed("team", Some(3)), None, t(10, 12));
        assert_eq!(drift_kinds(&v), ["purchased"]);
        let next = fixed(&v, None, t(10, 12));
        assert_eq!(
            (next.status, next.plan.id.as_str(), next.seats.limit),
            (Status::Active, "team", Some(3))
        );
    }

    #[test]
    fn a_free_plan_never_seen_is_created_without_seats() {
        let snapshot = Snapshot::Github(GithubPurchase {
            customer: Customer::new(CustomerKey::new(Marketplace::Github, "42")),
            terms: PlanTerms::new(plan("free", PriceModel::Free)),
            on_free_trial: false,
            pending: None,
        });
        let next = fixed(&run(&snapshot, None, t(10, 12)), None, t(10, 12));
        assert_eq!((next.status, next.seats.limit), (Status::Active, None));
    }

    #[test]
    fn a_change_recorded_a_moment_ago_is_held_against_a_lagging_listing() {
        let mut s = stored(Status::Active, "business", Some(10), 10);
        s.updated_at = t(10, 11) + Duration::minutes(50);
        let v = run(&listed("team", Some(5)), Some(&s), t(10, 12));
        assert!(
            matches!(&v, Verdict::Held { reason, .. } if reason.contains("may lag")),
            "{v:?}"
        );
    }

    #[test]
    fn a_snapshot_older_than_the_applied_state_never_rolls_it_back() {
        // A Google entitlement listed with an updateTime before the one applied.
        let mut s = stored(Status::Cancelled, "team", None, 8);
        s.key = SubscriptionKey::new(Marketplace::Gcp, "ent-1");
        s.last_applied = Some(AppliedMark {
            effective_at: t(8, 10),
            event_id: "push-9".into(),
        });
        let snapshot = Snapshot::Gcp {
            customer: s.customer.clone(),
            observation: observation(ObservedState::Active, "team"),
            updated_at: Some(t(7, 10)),
        };
        let v = compare(
            Subject {
                key: &s.key,
                product: "acme-ci",
                stored: Some(&s),
            },
            &snapshot,
            t(10, 12),
            t(10, 12),
        );
        assert!(
            matches!(&v, Verdict::Held { reason, .. } if reason.starts_with("stale")),
            "{v:?}"
        );
    }

    #[test]
    fn a_same_day_cancellation_is_not_undone_by_a_listing_that_still_shows_the_account() {
        let s = stored(Status::Cancelled, "team", None, 10);
        let v = run(&listed("team", Some(5)), Some(&s), t(10, 23));
        assert!(
            matches!(&v, Verdict::Held { reason, .. } if reason.contains("cancelled today")),
            "{v:?}"
        );
        // Days later it is a new purchase GitHub lists: created again.
        assert_eq!(
            drift_kinds(&run(&listed("team", Some(5)), Some(&s), t(13, 12))),
            ["purchased"]
        );
    }

    #[test]
    fn a_pending_downgrade_with_a_future_date_is_in_sync_when_listed_and_kept_on_the_current_plan()
    {
        let mut s = stored(Status::Active, "business", Some(10), 2);
        let pending = PendingChange::Plan {
            plan: plan("team", PriceModel::PerUnit),
            seats: Some(5),
            effective_at: t(28, 0),
        };
        s.pending_change = Some(pending.clone());
        let Snapshot::Github(mut p) = listed("business", Some(10)) else {
            unreachable!()
        };
        p.pending = Some(pending);
        assert_eq!(
            run(&Snapshot::Github(p), Some(&s), t(10, 12)),
            Verdict::InSync
        );
    }

    #[test]
    fn a_missed_pending_change_is_recorded_and_a_withdrawn_one_cleared() {
        let s = stored(Status::Active, "business", Some(10), 2);
        let Snapshot::Github(mut p) = listed("business", Some(10)) else {
            unreachable!()
        };
        p.pending = Some(PendingChange::Plan {
            plan: plan("team", PriceModel::PerUnit),
            seats: Some(5),
            effective_at: t(28, 0),
        });
        let v = run(&Snapshot::Github(p), Some(&s), t(10, 12));
        assert_eq!(drift_kinds(&v), ["change_pending"]);
        let next = fixed(&v, Some(&s), t(10, 12));
        assert_eq!(
            next.plan.id, "business",
            "the current plan stays until the date"
        );
        let v = run(&listed("business", Some(10)), Some(&next), t(12, 12));
        assert_eq!(drift_kinds(&v), ["pending_change_withdrawn"]);
    }

    #[test]
    fn a_pending_cancellation_the_listing_does_not_show_is_left_until_its_date() {
        let mut s = stored(Status::PendingCancellation, "team", Some(5), 2);
        s.access_until = Some(t(20, 0));
        s.pending_change = Some(PendingChange::Cancellation {
            effective_at: t(20, 0),
        });
        assert_eq!(
            run(&listed("team", Some(5)), Some(&s), t(10, 12)),
            Verdict::InSync
        );
        // Still listed after its date: withdrawn.
        let v = run(&listed("team", Some(5)), Some(&s), t(21, 12));
        assert_eq!(drift_kinds(&v), ["pending_change_withdrawn"]);
        assert_eq!(fixed(&v, Some(&s), t(21, 12)).status, Status::Active);
    }

    #[test]
    fn a_listed_trial_without_an_end_keeps_the_end_we_know() {
        let mut s = stored(Status::Trial, "team", Some(5), 2);
        s.trial_ends_at = Some(t(16, 0));
        let Snapshot::Github(mut p) = listed("team", Some(5)) else {
            unreachable!()
        };
        p.on_free_trial = true;
        assert_eq!(
            run(&Snapshot::Github(p), Some(&s), t(10, 12)),
            Verdict::InSync
        );
        // Listed as no longer on trial: converted.
        let v = run(&listed("team", Some(5)), Some(&s), t(10, 12));
        assert_eq!(fixed(&v, Some(&s), t(10, 12)).status, Status::Active);
    }

    fn observation(state: ObservedState, plan_id: &str) -> Observation {
        Observation {
            state,
            terms: PlanTerms::new(crate::model::Plan::new(plan_id)),
            awaiting: None,
            pending_plan: None,
            term_ends_at: None,
        }
    }

    fn gcp(
        sub: Option<&Subscription>,
        observation: Observation,
        updated: DateTime<Utc>,
    ) -> Verdict {
        let key = SubscriptionKey::new(Marketplace::Gcp, "ent-1");
        compare(
            Subject {
                key: &key,
                product: "acme-ci",
                stored: sub,
            },
            &Snapshot::Gcp {
                customer: Customer::new(CustomerKey::new(Marketplace::Gcp, "acct-1")),
                observation,
                updated_at: Some(updated),
            },
            t(10, 12),
            t(10, 12),
        )
    }

    fn gcp_stored(status: Status, plan_id: &str) -> Subscription {
        let mut s = stored(status, plan_id, None, 2);
        s.key = SubscriptionKey::new(Marketplace::Gcp, "ent-1");
        s.customer = Customer::new(CustomerKey::new(Marketplace::Gcp, "acct-1"));
        s.plan = crate::model::Plan::new(plan_id);
        s
    }

    #[test]
    fn google_states_converge_the_stored_state() {
        let active = gcp_stored(Status::Active, "team");
        assert_eq!(
            gcp(
                Some(&active),
                observation(ObservedState::Active, "team"),
                t(5, 0)
            ),
            Verdict::InSync
        );

        let v = gcp(
            Some(&active),
            observation(ObservedState::Cancelled, "team"),
            t(5, 0),
        );
        assert_eq!(
            fixed(&v, Some(&active), t(10, 12)).status,
            Status::Cancelled
        );

        let mut ending = observation(ObservedState::PendingCancellation, "team");
        ending.term_ends_at = Some(t(30, 0));
        let v = gcp(Some(&active), ending, t(5, 0));
        let next = fixed(&v, Some(&active), t(10, 12));
        assert_eq!(
            (next.status, next.access_until),
            (Status::PendingCancellation, Some(t(30, 0)))
        );

        // ENTITLEMENT_PENDING_PLAN_CHANGE: active on the current plan, the
        // new one pending.
        let mut changing = observation(ObservedState::Active, "team");
        changing.pending_plan = Some(crate::model::Plan::new("business"));
        changing.term_ends_at = Some(t(30, 0));
        let v = gcp(Some(&active), changing, t(5, 0));
        let next = fixed(&v, Some(&active), t(10, 12));
        assert_eq!(next.plan.id, "team");
        assert!(
            matches!(next.pending_change, Some(PendingChange::Plan { ref plan, .. }) if plan.id == "business")
        );
    }

    #[test]
    fn a_google_entitlement_never_seen_is_created_and_a_deleted_one_revoked() {
        let v = gcp(None, observation(ObservedState::Active, "team"), t(5, 0));
        assert_eq!(fixed(&v, None, t(10, 12)).status, Status::Active);

        let active = gcp_stored(Status::Active, "team");
        let v = compare(
            Subject {
                key: &active.key,
                product: "acme-ci",
                stored: Some(&active),
            },
            &Snapshot::Gone,
            t(10, 12),
            t(10, 12),
        );
        let Verdict::Drift { events, .. } = &v else {
            panic!("{v:?}")
        };
        assert_eq!(events[0].kind.name(), "observed_deleted");
        assert_eq!(
            fixed(&v, Some(&active), t(10, 12)).status,
            Status::Cancelled
        );
    }

    #[test]
    fn event_ids_say_they_come_from_a_reconciliation() {
        let id = event_id(t(10, 12), 2);
        assert_eq!(id, "reconcile:2026-03-10T12:00:00Z:2");
        assert!(is_reconcile_event(&id));
        assert!(!is_reconcile_event("72d3162e-cc78-11e3-81ab-4c9367dc0958"));
    }
}
