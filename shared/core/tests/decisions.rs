//! The rules and the entitlement decision, pinned where mutation testing
//! (`make mutants`) found behaviour no unit test held. Subscriptions are
//! built the way production builds them, by folding events through
//! `rules::apply`, so these tests hold through changes of the model's
//! fields; each asserts the rule (module docs, ARCHITECTURE.md), not today's output.

use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use tollgate_core::config::Catalog;
use tollgate_core::entitlement::{self, Question, Reason, SeatsView};
use tollgate_core::model::{
    Awaiting, Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Observation,
    ObservedState, Plan, PlanTerms, Status, Subscription, SubscriptionKey,
};
use tollgate_core::rules::{self, Action, Outcome};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0).unwrap()
}

fn key(id: &str) -> SubscriptionKey {
    SubscriptionKey::new(Marketplace::Gcp, id)
}

fn event(sub: &str, kind: EventKind, effective_at: DateTime<Utc>) -> MarketEvent {
    MarketEvent {
        id: format!("{sub}-{}-{}", kind.name(), effective_at.timestamp()),
        subscription: key(sub),
        customer: Customer::new(CustomerKey::new(Marketplace::Gcp, "acct-1")),
        product: "ci".into(),
        effective_at,
        kind,
    }
}

fn terms(plan: &str, seats: Option<u32>, trial_ends_at: Option<DateTime<Utc>>) -> PlanTerms {
    PlanTerms {
        seats,
        trial_ends_at,
        ..PlanTerms::new(Plan::new(plan))
    }
}

fn apply(current: Option<&Subscription>, e: &MarketEvent) -> Outcome {
    rules::apply(current, e, now())
}

fn next(out: Outcome) -> Subscription {
    out.next.expect("the event applies")
}

/// Subscription `id` purchased a day ago on `plan`.
fn purchased(id: &str, plan: &str, seats: Option<u32>) -> Subscription {
    let kind = EventKind::Purchased {
        terms: terms(plan, seats, None),
        awaiting: None,
    };
    next(apply(None, &event(id, kind, now() - Duration::days(1))))
}

fn then(sub: &Subscription, kind: EventKind) -> Outcome {
    apply(Some(sub), &event(&sub.key.id, kind, now()))
}

// --- rules ---

#[test]
fn a_trial_that_ends_now_or_before_is_over() {
    for end in [now(), now() - Duration::hours(1)] {
        let kind = EventKind::Purchased {
            terms: terms("2", None, Some(end)),
            awaiting: None,
        };
        let sub = next(apply(None, &event("s", kind, now() - Duration::days(14))));
        assert_eq!(sub.status, Status::Active, "trial ending {end}");
    }
    let kind = EventKind::Purchased {
        terms: terms("2", None, Some(now() + Duration::seconds(1))),
        awaiting: None,
    };
    assert_eq!(
        next(apply(None, &event("s", kind, now()))).status,
        Status::Trial
    );
}

#[test]
fn a_cancellation_whose_access_ends_now_ends_it_now() {
    let sub = purchased("s", "2", None);
    let cancel = |until| EventKind::Cancelled {
        plan: None,
        access_until: Some(until),
    };
    let ended = next(then(&sub, cancel(now())));
    assert_eq!(
        (ended.status, ended.access_until),
        (Status::Cancelled, None)
    );
    let later = now() + Duration::days(3);
    let running = next(then(&sub, cancel(later)));
    assert_eq!(
        (running.status, running.access_until),
        (Status::PendingCancellation, Some(later))
    );
}

#[test]
fn purchase_notes_say_what_kind_of_purchase_it_was() {
    // The log is what operators read: a re-purchase, a trial and an order
    // waiting for approval are told apart.
    let trial = EventKind::Purchased {
        terms: terms("2", None, Some(now() + Duration::days(14))),
        awaiting: None,
    };
    let note = apply(None, &event("t", trial, now())).log.note;
    assert!(note.contains("with a trial"), "{note}");

    let waiting = EventKind::Purchased {
        terms: terms("2", None, None),
        awaiting: Some(Awaiting::Approval),
    };
    let note = apply(None, &event("w", waiting, now())).log.note;
    assert!(note.contains("awaiting"), "{note}");

    let sub = purchased("r", "2", None);
    let cancelled = next(then(
        &sub,
        EventKind::Cancelled {
            plan: None,
            access_until: None,
        },
    ));
    let again = EventKind::Purchased {
        terms: terms("2", None, None),
        awaiting: None,
    };
    let out = apply(
        Some(&cancelled),
        &event("r", again, now() + Duration::hours(1)),
    );
    assert!(out.log.note.contains("again"), "{}", out.log.note);
    assert_eq!(out.next.unwrap().status, Status::Active);
}

#[test]
fn only_a_trial_that_becomes_active_is_noted_as_converted() {
    let trial_kind = EventKind::Purchased {
        terms: terms("1", None, Some(now() + Duration::days(10))),
        awaiting: None,
    };
    let trial = next(apply(
        None,
        &event("t", trial_kind, now() - Duration::days(1)),
    ));
    let convert = EventKind::Changed {
        terms: terms("2", None, None),
    };
    let out = then(&trial, convert.clone());
    assert!(out.log.note.contains("trial converted"), "{}", out.log.note);

    let active = purchased("a", "1", None);
    let out = then(&active, convert);
    assert!(!out.log.note.contains("trial"), "{}", out.log.note);

    // Still a trial after the change (the trial goes on): not converted.
    let still = EventKind::Changed {
        terms: terms("2", None, Some(now() + Duration::days(10))),
    };
    let out = then(&trial, still);
    assert!(!out.log.note.contains("converted"), "{}", out.log.note);
}

#[test]
fn cancellation_notes_say_whether_a_trial_ended() {
    let trial_kind = EventKind::Purchased {
        terms: terms("2", None, Some(now() + Duration::days(10))),
        awaiting: None,
    };
    let trial = next(apply(
        None,
        &event("t", trial_kind, now() - Duration::days(1)),
    ));
    let cancel = EventKind::Cancelled {
        plan: None,
        access_until: None,
    };
    let note = then(&trial, cancel.clone()).log.note;
    assert!(note.starts_with("trial cancelled"), "{note}");
    let note = then(&purchased("a", "2", None), cancel).log.note;
    assert!(note.starts_with("cancelled"), "{note}");
}

fn observed(state: ObservedState, plan: &str) -> EventKind {
    EventKind::Observed(Observation {
        state,
        terms: terms(plan, None, None),
        awaiting: None,
        pending_plan: None,
        term_ends_at: None,
    })
}

#[test]
fn an_observation_is_noted_unchanged_only_when_nothing_changed() {
    let sub = next(apply(
        None,
        &event(
            "o",
            observed(ObservedState::Active, "2"),
            now() - Duration::days(1),
        ),
    ));
    let same = then(&sub, observed(ObservedState::Active, "2")).log.note;
    assert!(same.starts_with("observed unchanged"), "{same}");
    for (state, plan) in [
        (ObservedState::Suspended, "2"),
        (ObservedState::Active, "1"),
        (ObservedState::Requested, "2"),
    ] {
        let note = then(&sub, observed(state, plan)).log.note;
        assert!(!note.contains("unchanged"), "{state:?} on {plan}: {note}");
    }
}

#[test]
fn seats_are_over_the_limit_only_when_more_are_used_than_bought() {
    let mut sub = purchased("s", "2", Some(5));
    // The store's count of holders; the rules never change it.
    sub.seats.used = 3;
    let change_to = |seats| EventKind::Changed {
        terms: terms("2", Some(seats), None),
    };
    assert_eq!(then(&sub, change_to(3)).actions, vec![], "full, not over");
    assert_eq!(then(&sub, change_to(4)).actions, vec![]);
    assert_eq!(
        then(&sub, change_to(2)).actions,
        vec![Action::SeatsOverLimit { limit: 2, used: 3 }]
    );
}

// --- entitlement ---

/// `free` counts purchased seats (the default policy), `team` too.
const CONFIG: &str = r#"
    [products.ci]
    cancelled_tier = "free"
    [products.ci.tiers.free]
    features = ["public"]
    [products.ci.tiers.team]
    features = ["public", "private"]
    [products.ci.plans.gcp]
    "1" = "free"
    "2" = "team"
"#;

fn catalog(config: &str) -> Catalog {
    Catalog::parse(config, Path::new("decisions.toml")).unwrap()
}

fn ask_in(c: &Catalog, subs: &[Subscription], user: Option<&str>) -> entitlement::Decision {
    let q = Question {
        product: "ci",
        user,
        ..Question::default()
    };
    entitlement::decide(c, subs, &q, now())
}

fn ask(subs: &[Subscription], user: Option<&str>) -> entitlement::Decision {
    ask_in(&catalog(CONFIG), subs, user)
}

fn with_status(mut sub: Subscription, status: Status) -> Subscription {
    sub.status = status;
    sub
}

#[test]
fn a_decision_names_the_subscription_and_its_status_allowed_or_not() {
    let active = purchased("a", "2", None);
    let d = ask(std::slice::from_ref(&active), None);
    assert!(d.allowed);
    assert_eq!(
        (d.subscription, d.status),
        (Some(key("a")), Some(Status::Active))
    );
    let suspended = with_status(purchased("b", "2", None), Status::Suspended);
    let d = ask(&[suspended], None);
    assert_eq!(d.reason, Reason::Suspended);
    assert_eq!(
        (d.subscription, d.status),
        (Some(key("b")), Some(Status::Suspended))
    );
}

#[test]
fn among_denials_the_liveliest_subscription_explains() {
    // decide(): "among denials, the one of the liveliest subscription
    // explains best" — listed least lively first, so order alone can't win.
    let mut pending = with_status(purchased("p", "2", None), Status::Pending);
    pending.awaiting = Some(Awaiting::Approval);
    let cases = [
        (
            vec![
                with_status(purchased("c", "2", None), Status::Cancelled),
                with_status(purchased("s", "2", None), Status::Suspended),
            ],
            Reason::Suspended,
        ),
        (
            vec![
                with_status(purchased("s", "2", None), Status::Suspended),
                pending,
            ],
            Reason::PendingApproval,
        ),
        (
            vec![
                with_status(purchased("c", "2", None), Status::Cancelled),
                with_status(purchased("u", "999", None), Status::Active),
            ],
            Reason::UnknownPlan,
        ),
    ];
    // Without a fallback tier, so a cancellation is a denial too.
    let no_fallback = catalog(&CONFIG.replace("cancelled_tier = \"free\"", ""));
    for (subs, reason) in cases {
        let d = ask_in(&no_fallback, &subs, None);
        assert_eq!((d.allowed, d.reason), (false, reason), "{subs:?}");
        assert_eq!(d.subscription.as_ref(), Some(&subs[1].key));
    }
}

#[test]
fn a_fallback_tier_after_cancellation_does_not_inherit_purchased_seats() {
    // Bought 3 seats, all held; cancelled, so the product's `free` tier
    // applies — and it counts the seats of a purchase, of which there is
    // none any more: no limit, a new user gets in.
    let mut sub = purchased("s", "2", Some(3));
    sub.seats.used = 3;
    let cancelled = next(then(
        &sub,
        EventKind::Cancelled {
            plan: None,
            access_until: None,
        },
    ));
    let d = ask(std::slice::from_ref(&cancelled), Some("new-user"));
    assert_eq!((d.allowed, d.tier.as_deref()), (true, Some("free")));
    assert_eq!(
        d.seats,
        Some(SeatsView {
            limit: None,
            used: 3
        })
    );
    // While paid for, the same seats are a limit.
    let d = ask(std::slice::from_ref(&sub), Some("new-user"));
    assert_eq!(d.reason, Reason::SeatLimitReached);
}

#[test]
fn a_misspelt_product_or_feature_is_named_as_such_whatever_the_customer_holds() {
    // A question about a name tollgate.toml does not define is the app's
    // mistake: the same answer for a paying customer, a cancelled one and
    // nobody, so it shows up the first time the app asks.
    let c = catalog(CONFIG);
    let active = purchased("a", "2", Some(1));
    let cancelled = with_status(purchased("c", "2", None), Status::Cancelled);
    for subs in [vec![active.clone()], vec![cancelled], vec![]] {
        for (product, feature, reason) in [
            ("ci-typo", None, Reason::UnknownProduct),
            ("ci-typo", Some("public"), Reason::UnknownProduct),
            ("ci", Some("pubic"), Reason::UnknownFeature),
        ] {
            let q = Question {
                product,
                feature,
                user: Some("new-user"),
                ..Question::default()
            };
            let d = entitlement::decide(&c, &subs, &q, now());
            assert_eq!((d.allowed, d.reason), (false, reason), "{q:?} {subs:?}");
            assert_eq!(d.subscription, None, "names no subscription");
            assert!(d.features.is_empty() && d.tier.is_none() && d.seats.is_none());
            assert!(d.reason.is_undefined_name());
            assert_eq!(entitlement::undefined_name(&c, &q), Some(reason));
            assert!(entitlement::seat_lookups(&c, &subs, &q, now()).is_empty());
        }
    }
    // Every defined feature, granted or not by the customer's tier, is a
    // real question.
    for (feature, allowed) in [("public", true), ("private", true)] {
        let q = Question {
            product: "ci",
            feature: Some(feature),
            ..Question::default()
        };
        assert_eq!(entitlement::undefined_name(&c, &q), None);
        let d = entitlement::decide(&c, std::slice::from_ref(&active), &q, now());
        assert_eq!(d.allowed, allowed, "{feature}");
    }
    let free = purchased("f", "1", None);
    let q = Question {
        product: "ci",
        feature: Some("private"),
        ..Question::default()
    };
    let d = entitlement::decide(&c, &[free], &q, now());
    assert_eq!((d.allowed, d.reason), (false, Reason::FeatureNotInPlan));
    assert!(!d.reason.is_undefined_name());
}
