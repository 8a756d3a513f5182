//! `tollgate reconcile --marketplace gcp` end to end, through the library
//! entry point with the CLI's own wiring (`functions::reconcile_targets`,
//! `reconcile_stores`, `reconcile::reconcile`), against the Google stand-in
//! (`tollgate_sim::gcp`) on both stores. The state is first built the way
//! production builds it — the stand-in pushes to the real pubsub-push
//! function and the customer signs up on oauth-callback — then the
//! stand-in's deliveries are held and dropped, so Tollgate never hears of
//! a change, and reconciliation has to find it.
//!
//! Pushed states are committed with the real clock; a snapshot of a
//! subscription changed less than `LISTING_LAG` (an hour) earlier is held,
//! so the runs that must fix drift read the listing on a clock two hours
//! ahead (what a run the next morning sees). Google's own ordering
//! (`updateTime`) is real time throughout.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tollgate::clock::{Clock, FixedClock, SystemClock};
use tollgate::ingest::ingest;
use tollgate::model::{
    Awaiting, Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Observation,
    ObservedState, Plan, PlanTerms, Status, Subscription, SubscriptionKey,
};
use tollgate::reconcile::{
    FollowUpResult, MarketplaceReport, Outcome, Progress, Report, is_reconcile_event, reconcile,
};
use tollgate::store::Store;
use tollgate::store::sqlite::SqliteStore;
use tollgate::testing::TestApp;
use tollgate_sim::gcp::{EntitlementState, GcpSim, PushConfig, Pushed, Running};
use tollgate_tests::serve::{Served, serve_function};

const AUDIENCE: &str = "https://tollgate.example/pubsub";

struct World {
    sim: GcpSim,
    _google: Running,
    app: TestApp,
    store: Arc<dyn Store>,
    _pubsub: Served,
    oauth: Served,
    http: reqwest::Client,
    _guard: Box<dyn Send + Sync>,
}

impl World {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tollgate.db")).unwrap();
        Self::start(Arc::new(store), Box::new(dir)).await
    }

    async fn dynamodb() -> Self {
        Self::start(
            Arc::new(tollgate_tests::moto::fresh_store().await),
            Box::new(()),
        )
        .await
    }

    async fn start(store: Arc<dyn Store>, guard: Box<dyn Send + Sync>) -> Self {
        let sim = GcpSim::generate().expect("stand-in keys");
        let google = sim.start().await.expect("stand-in starts");
        let app = TestApp::new()
            .store(Arc::clone(&store))
            .system_clock()
            .settings(sim.tollgate_settings(&google, AUDIENCE))
            .secret(
                "gcp_service_account_key",
                &sim.service_account_key().to_json(),
            );
        let pubsub = serve_function(app.pubsub_push().expect("pubsub-push builds")).await;
        let oauth = serve_function(app.oauth_callback().expect("oauth-callback builds")).await;
        sim.set_push(PushConfig::new(pubsub.url("/")).with_audience(AUDIENCE));
        World {
            sim,
            _google: google,
            app,
            store,
            _pubsub: pubsub,
            oauth,
            http: reqwest::Client::new(),
            _guard: guard,
        }
    }

    /// `tollgate reconcile --marketplace gcp [--dry-run]`, reading the
    /// listing at `clock`'s time; the report and every progress line.
    async fn reconcile(&self, clock: &dyn Clock, dry_run: bool) -> (Report, Vec<String>) {
        let deps = self.app.deps();
        // Credentials mint their assertions on the real clock (Google's
        // token endpoint checks them against it), whatever the run's clock.
        let targets = tollgate::functions::reconcile_targets(
            &deps,
            Some(Marketplace::Gcp),
            Arc::new(SystemClock),
            Duration::from_secs(30),
        )
        .expect("gcp is configured");
        let stores = tollgate::functions::reconcile_stores(&deps);
        let mut lines = Vec::new();
        let report = reconcile(&targets, &stores, clock, dry_run, |p| {
            lines.push(line(p));
        })
        .await;
        (report, lines)
    }

    /// A later run: the listing read `hours` from now. A run's own fixes
    /// are committed at its clock's time, so a run that must fix what an
    /// earlier one committed reads later still.
    async fn reconcile_later(&self, hours: i64, dry_run: bool) -> (Report, Vec<String>) {
        let later = FixedClock::new(Utc::now() + chrono::Duration::hours(hours));
        self.reconcile(&later, dry_run).await
    }

    async fn sign_up(&self, account: &str) {
        let res = self
            .http
            .post(self.oauth.url("/gcp/signup"))
            .form(&[("x-gcp-marketplace-token", self.sim.signup_token(account))])
            .send()
            .await
            .expect("oauth-callback answers");
        assert_eq!(
            res.status(),
            200,
            "{}",
            res.text().await.unwrap_or_default()
        );
    }

    /// An active `team-monthly` entitlement of `account`, signed up, every
    /// push delivered.
    async fn active(&self, account: &str) -> String {
        let order = self.sim.order(account, "team-monthly").await.unwrap();
        all_acked(&order.pushed);
        self.sign_up(account).await;
        all_acked(&self.sim.deliver_queued().await);
        let id = order.entitlement_id;
        assert_eq!(self.state(&id).await.unwrap().status, Status::Active);
        id
    }

    /// From now on every message Google publishes is lost.
    fn lose_pushes(&self) {
        self.sim.hold_deliveries(true);
    }

    /// Drops whatever Google queued: Tollgate never hears of it.
    fn drop_queued(&self) -> usize {
        self.sim.take_queued().len()
    }

    async fn state(&self, entitlement: &str) -> Option<Subscription> {
        self.store.get(&key(entitlement)).await.unwrap()
    }

    async fn log_len(&self, entitlement: &str) -> usize {
        self.store.log(&key(entitlement)).await.unwrap().len()
    }

    /// Every entitlement's state and log length, to prove nothing moved.
    async fn snapshot(&self, ids: &[&String]) -> Vec<(Option<Subscription>, usize)> {
        let mut out = Vec::new();
        for id in ids {
            out.push((self.state(id).await, self.log_len(id).await));
        }
        out
    }

    /// Approvals and rejections Tollgate asked Google for (whatever came of them).
    fn decisions(&self) -> Vec<String> {
        self.sim
            .seen()
            .into_iter()
            .filter(|s| s.method == "POST" && s.path.contains("/entitlements/"))
            .filter_map(|s| s.path.rsplit_once('/').map(|(_, tail)| tail.to_owned()))
            .collect()
    }

    /// `entitlements.list` requests that followed a `pageToken`.
    fn next_pages_read(&self) -> usize {
        self.sim
            .seen()
            .into_iter()
            .filter(|s| s.method == "GET" && s.path.ends_with("/entitlements"))
            .filter(|s| s.query.as_deref().is_some_and(|q| q.contains("pageToken=")))
            .count()
    }
}

fn key(entitlement: &str) -> SubscriptionKey {
    SubscriptionKey::new(Marketplace::Gcp, entitlement)
}

fn all_acked(pushed: &[Pushed]) {
    for p in pushed {
        assert!(
            p.acked(),
            "{} was not acknowledged: {:?} {}",
            p.event_type(),
            p.status,
            p.reply
        );
    }
}

/// A progress event as a line, for assertions and failure messages.
fn line(p: &Progress<'_>) -> String {
    match p {
        Progress::Subscription { key, outcome } => match outcome {
            Outcome::InSync => format!("{key}: in sync"),
            Outcome::Fixed { differences } => format!("{key}: fixed: {differences}"),
            Outcome::WouldFix { differences } => format!("{key}: would fix: {differences}"),
            Outcome::Held {
                differences,
                reason,
            } => format!("{key}: held ({reason}): {differences}"),
            Outcome::Failed { message } => format!("{key}: FAILED: {message}"),
        },
        Progress::Failure {
            marketplace,
            message,
        } => format!("{marketplace}: FAILED: {message}"),
        Progress::Replayed { delivery, .. } => format!("replayed {delivery}"),
        Progress::FollowUp { key, follow_up } => {
            format!("{key}: {:?}: {}", follow_up.result, follow_up.action)
        }
    }
}

fn gcp(report: &Report) -> &MarketplaceReport {
    assert_eq!(report.marketplaces.len(), 1, "{report:?}");
    let m = &report.marketplaces[0];
    assert_eq!(m.marketplace, Marketplace::Gcp);
    m
}

/// (checked, in sync, fixed, would fix, held, errors)
fn counts(m: &MarketplaceReport) -> (usize, usize, usize, usize, usize, usize) {
    (m.checked, m.in_sync, m.fixed, m.would_fix, m.held, m.errors)
}

fn has(lines: &[String], wanted: &str) -> bool {
    lines.iter().any(|l| l.contains(wanted))
}

tollgate_tests::on_both_stores!(World;
    lost_changes_and_an_unseen_order_are_fixed_once_across_pages_and_a_dry_run_writes_nothing,
    orders_and_plan_changes_waiting_for_approval_are_settled_once_and_not_in_a_dry_run,
    newer_local_state_is_held_not_regressed,
);

async fn lost_changes_and_an_unseen_order_are_fixed_once_across_pages_and_a_dry_run_writes_nothing(
    w: World,
) {
    // Two entitlements a page: the five listed ones span three pages.
    w.sim.set_max_page_size(Some(2));
    let cancelled = w.active("acct-cancel").await;
    let changed = w.active("acct-change").await;
    let deleted = w.active("acct-delete").await;
    let steady: Vec<String> = vec![
        w.active("acct-steady-1").await,
        w.active("acct-steady-2").await,
    ];

    // The plan change's request reaches Tollgate, which approves it; the
    // resulting ENTITLEMENT_PLAN_CHANGED is lost.
    w.lose_pushes();
    w.sim
        .request_plan_change(&changed, "business-yearly")
        .await
        .unwrap();
    for request in w.sim.take_queued() {
        assert!(w.sim.deliver(&request).await.acked());
    }
    assert_eq!(w.drop_queued(), 1, "ENTITLEMENT_PLAN_CHANGED");
    let s = w.state(&changed).await.unwrap();
    assert_eq!(s.plan.id, "team-monthly");
    assert!(s.pending_change.is_some(), "{s:?}");
    // A cancellation, and a cancellation then deletion, never heard of.
    w.sim
        .cancel_now(&cancelled, "billing-disabled")
        .await
        .unwrap();
    w.sim.cancel_now(&deleted, "account-closed").await.unwrap();
    w.sim.delete_entitlement(&deleted).await.unwrap();
    // An order Tollgate never saw (its account has not signed up yet).
    let unseen = w
        .sim
        .order("acct-unseen", "team-monthly")
        .await
        .unwrap()
        .entitlement_id;
    assert_eq!(w.drop_queued(), 5);
    assert!(w.sim.entitlement(&deleted).is_none(), "deleted at Google");

    let all = [
        &cancelled, &changed, &deleted, &unseen, &steady[0], &steady[1],
    ];
    let before = w.snapshot(&all).await;

    // Dry run: every drift reported, nothing written.
    let pages = w.next_pages_read();
    let (report, lines) = w.reconcile_later(2, true).await;
    let m = gcp(&report);
    assert_eq!(counts(m), (6, 2, 0, 4, 0, 0), "{lines:#?}");
    assert!(
        has(
            &lines,
            &format!("gcp:{cancelled}: would fix: status active → cancelled")
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            &lines,
            &format!("gcp:{changed}: would fix: plan team-monthly → business-yearly")
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            &lines,
            &format!("gcp:{deleted}: would fix: status active → cancelled")
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            &lines,
            &format!("gcp:{unseen}: would fix: not stored; pending on plan team-monthly")
        ),
        "{lines:#?}"
    );
    assert!(
        m.follow_ups.is_empty(),
        "nothing awaits approval: {lines:#?}"
    );
    assert_eq!(w.snapshot(&all).await, before, "a dry run writes nothing");
    // The listing was read page by page (three pages: two next-page reads).
    assert_eq!(w.next_pages_read() - pages, 2);

    // The real run fixes all four through the rules.
    let (report, lines) = w.reconcile_later(2, false).await;
    assert_eq!(counts(gcp(&report)), (6, 2, 4, 0, 0, 0), "{lines:#?}");
    assert_eq!(w.next_pages_read() - pages, 4);
    let s = w.state(&cancelled).await.unwrap();
    assert_eq!(s.status, Status::Cancelled);
    let s = w.state(&changed).await.unwrap();
    assert_eq!(
        (s.status, s.plan.id.as_str(), s.pending_change.is_none()),
        (Status::Active, "business-yearly", true)
    );
    assert_eq!(w.state(&deleted).await.unwrap().status, Status::Cancelled);
    let s = w.state(&unseen).await.unwrap();
    assert_eq!(
        (s.status, s.awaiting, s.plan.id.as_str(), s.product.as_str()),
        (
            Status::Pending,
            Some(Awaiting::Signup),
            "team-monthly",
            "acme-ci"
        )
    );
    for id in [&cancelled, &changed, &deleted, &unseen] {
        let last = w.store.log(&key(id)).await.unwrap().pop().unwrap();
        assert!(
            is_reconcile_event(&last.event_id),
            "{id}: {}",
            last.event_id
        );
    }
    for (i, id) in steady.iter().enumerate() {
        assert_eq!(
            w.log_len(id).await,
            before[4 + i].1,
            "in sync: no log entry"
        );
    }

    // Twice: nothing left to fix, nothing written. The deleted entitlement
    // is now cancelled, so it is not asked about again.
    let after = w.snapshot(&all).await;
    let (report, lines) = w.reconcile_later(4, false).await;
    assert_eq!(counts(gcp(&report)), (5, 5, 0, 0, 0, 0), "{lines:#?}");
    assert_eq!(w.snapshot(&all).await, after);
    assert!(
        report
            .summary()
            .starts_with("reconciled gcp: 5 checked, 5 in sync, 0 fixed"),
        "{}",
        report.summary()
    );
}

async fn orders_and_plan_changes_waiting_for_approval_are_settled_once_and_not_in_a_dry_run(
    w: World,
) {
    let first = w.active("acct-g").await;
    let upgrading = w.active("acct-h").await;
    let decided_before = w.decisions();

    // Pushes lost from here: a second order of a signed-up account (waits
    // for the provider's approval), an order of a plan the product does not
    // offer, and a plan change the customer asked for.
    w.lose_pushes();
    let order = w
        .sim
        .order("acct-g", "business-yearly")
        .await
        .unwrap()
        .entitlement_id;
    let unoffered = w
        .sim
        .order("acct-g", "enterprise-custom")
        .await
        .unwrap()
        .entitlement_id;
    w.sim
        .request_plan_change(&upgrading, "business-yearly")
        .await
        .unwrap();
    assert_eq!(w.drop_queued(), 3);
    let all = [&first, &upgrading, &order, &unoffered];
    let before = w.snapshot(&all).await;

    // Dry run: the drift and the three decisions are reported, none made.
    let (report, lines) = w.reconcile_later(2, true).await;
    let m = gcp(&report);
    assert_eq!(counts(m), (4, 1, 0, 3, 0, 0), "{lines:#?}");
    let mut follow_ups: Vec<(String, String, FollowUpResult)> = m
        .follow_ups
        .iter()
        .map(|f| (f.subscription.clone(), f.action.clone(), f.result))
        .collect();
    follow_ups.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut expected = vec![
        (
            format!("gcp:{order}"),
            "approve the order".to_owned(),
            FollowUpResult::WouldDo,
        ),
        (
            format!("gcp:{unoffered}"),
            "reject the order (plan enterprise-custom is not offered by this product)".to_owned(),
            FollowUpResult::WouldDo,
        ),
        (
            format!("gcp:{upgrading}"),
            "approve the plan change to business-yearly".to_owned(),
            FollowUpResult::WouldDo,
        ),
    ];
    expected.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(follow_ups, expected, "{lines:#?}");
    assert_eq!(report.would_follow_up(), 3);
    assert_eq!(w.decisions(), decided_before, "a dry run approves nothing");
    assert_eq!(w.snapshot(&all).await, before, "a dry run writes nothing");
    assert_eq!(
        w.sim.entitlement(&order).unwrap().state,
        EntitlementState::ActivationRequested
    );

    // The real run records what Google says, then decides as a push would.
    let (report, lines) = w.reconcile_later(2, false).await;
    let m = gcp(&report);
    assert_eq!(counts(m), (4, 1, 3, 0, 0, 0), "{lines:#?}");
    assert!(
        m.follow_ups
            .iter()
            .all(|f| f.result == FollowUpResult::Done),
        "{lines:#?}"
    );
    assert_eq!(m.follow_ups.len(), 3, "{lines:#?}");
    assert!(
        report
            .summary()
            .ends_with("; follow-ups: 3 done, 0 would do"),
        "{}",
        report.summary()
    );
    let s = w.state(&order).await.unwrap();
    assert_eq!(
        (s.status, s.awaiting, s.plan.id.as_str()),
        (Status::Pending, Some(Awaiting::Approval), "business-yearly")
    );
    let s = w.state(&upgrading).await.unwrap();
    assert!(s.pending_change.is_some(), "{s:?}");
    // Google acted on each decision exactly once.
    let mut decided = w.decisions()[decided_before.len()..].to_vec();
    decided.sort();
    let mut wanted = vec![
        format!("{order}:approve"),
        format!("{unoffered}:reject"),
        format!("{upgrading}:approvePlanChange"),
    ];
    wanted.sort();
    assert_eq!(decided, wanted);
    assert_eq!(
        w.sim.entitlement(&order).unwrap().state,
        EntitlementState::Active
    );
    assert_eq!(
        w.sim.entitlement(&unoffered).unwrap().state,
        EntitlementState::Cancelled
    );
    let up = w.sim.entitlement(&upgrading).unwrap();
    assert_eq!(
        (up.state, up.plan.as_str()),
        (EntitlementState::Active, "business-yearly")
    );

    // Google's answers (ENTITLEMENT_ACTIVE, _CANCELLED, _PLAN_CHANGED) are
    // lost too: the next run reads them, and decides nothing again.
    assert_eq!(w.drop_queued(), 3);
    let decided_now = w.decisions().len();
    let (report, lines) = w.reconcile_later(4, false).await;
    let m = gcp(&report);
    assert_eq!(counts(m), (4, 1, 3, 0, 0, 0), "{lines:#?}");
    assert!(m.follow_ups.is_empty(), "{lines:#?}");
    assert_eq!(w.decisions().len(), decided_now, "nothing approved twice");
    let s = w.state(&order).await.unwrap();
    assert_eq!((s.status, s.awaiting), (Status::Active, None));
    assert_eq!(w.state(&unoffered).await.unwrap().status, Status::Cancelled);
    assert_eq!(
        w.state(&upgrading).await.unwrap().plan.id,
        "business-yearly"
    );

    // And once more: in sync, nothing asked of Google.
    let (report, lines) = w.reconcile_later(6, false).await;
    assert_eq!(counts(gcp(&report)), (4, 4, 0, 0, 0, 0), "{lines:#?}");
    assert_eq!(w.decisions().len(), decided_now);
}

async fn newer_local_state_is_held_not_regressed(w: World) {
    // A cancellation Tollgate recorded a moment ago that Google's listing
    // does not show yet: here a lost one, read with the real clock — the
    // stored state changed within the hour, so it is held.
    let recent = w.active("acct-recent").await;
    w.lose_pushes();
    w.sim.cancel_now(&recent, "billing-disabled").await.unwrap();
    assert_eq!(w.drop_queued(), 1);
    let before = (w.state(&recent).await, w.log_len(&recent).await);
    let (report, lines) = w.reconcile(&SystemClock, false).await;
    assert_eq!(counts(gcp(&report)), (1, 0, 0, 0, 1, 0), "{lines:#?}");
    assert!(
        has(
            &lines,
            &format!("gcp:{recent}: held (stored state changed at")
        ),
        "{lines:#?}"
    );
    assert_eq!((w.state(&recent).await, w.log_len(&recent).await), before);

    // A state applied from an event Google ordered after its listing's
    // `updateTime` (the listing lags what a push already told Tollgate):
    // the snapshot is stale and never rolls it back, however late the run.
    let ahead = w.active("acct-ahead").await;
    let stored = w.state(&ahead).await.unwrap();
    let google_time: DateTime<Utc> = w.sim.entitlement(&ahead).unwrap().updated;
    let ends = google_time + chrono::Duration::days(20);
    let newer = MarketEvent {
        id: "push-from-the-future".into(),
        subscription: key(&ahead),
        customer: Customer::new(CustomerKey::new(Marketplace::Gcp, "acct-ahead")),
        product: stored.product.clone(),
        effective_at: google_time + chrono::Duration::minutes(10),
        kind: EventKind::Observed(Observation {
            state: ObservedState::PendingCancellation,
            terms: PlanTerms::new(Plan::new("team-monthly")),
            awaiting: None,
            pending_plan: None,
            term_ends_at: Some(ends),
        }),
    };
    ingest(&*w.store, &newer, Utc::now() - chrono::Duration::hours(3))
        .await
        .unwrap();
    let before = (w.state(&ahead).await, w.log_len(&ahead).await);
    assert_eq!(
        before.0.as_ref().unwrap().status,
        Status::PendingCancellation
    );

    let (report, lines) = w.reconcile_later(2, false).await;
    let m = gcp(&report);
    assert_eq!((m.fixed, m.errors), (1, 0), "{lines:#?}");
    assert!(has(&lines, &format!("gcp:{ahead}: held (")), "{lines:#?}");
    assert_eq!((w.state(&ahead).await, w.log_len(&ahead).await), before);
    // The lost cancellation, an hour older now, is fixed by the same run.
    assert_eq!(w.state(&recent).await.unwrap().status, Status::Cancelled);
}
