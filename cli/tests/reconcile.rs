//! `tollgate reconcile` through the binary, against the GitHub stand-in
//! (`tollgate_sim::github`) and an embedded store seeded as deliveries
//! would have left it: drift fixed through the rules (log entries
//! `reconcile:…`), nothing written by `--dry-run` (exit 3), nothing written
//! by a second run, newer local state held, listings read across pages, a
//! failing call reported (exit 1) while the rest is still reconciled, and
//! pending deliveries replayed by the same run. Google's side through the
//! binary too (orders never heard of recorded, one awaiting approval
//! approved once); the rest of Google's cases, on both stores, are in
//! `tests/tests/reconcile_gcp.rs`.

use std::path::PathBuf;
use std::process::{Command, Output};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tollgate::ingest::{ingest, pending_delivery};
use tollgate::model::{
    BillingCycle, Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Plan, PlanTerms,
    PriceModel, Status, Subscription, SubscriptionKey,
};
use tollgate::reconcile::is_reconcile_event;
use tollgate::store::sqlite::SqliteStore;
use tollgate::store::{Deliveries, Subscriptions};
use tollgate_sim::github::{
    GithubSim, Org, Plan as SimPlan, PriceModel as SimPrice, Purchase, Running,
};

/// The GitHub plans of `tollgate.example.toml`.
const FREE: u64 = 1001;
const TEAM: u64 = 1002;
const BUSINESS: u64 = 1003;

struct Env {
    dir: tempfile::TempDir,
    sim: GithubSim,
    running: Running,
}

impl Env {
    async fn start() -> Env {
        let sim = GithubSim::generate().unwrap();
        sim.add_plan(SimPlan::new(FREE, 1, "Free", SimPrice::Free));
        sim.add_plan(SimPlan::new(TEAM, 2, "Team", SimPrice::PerUnit));
        sim.add_plan(SimPlan::new(BUSINESS, 3, "Business", SimPrice::FlatRate));
        for id in 2001..=2006 {
            sim.add_org(Org::new(id, format!("org{id}")));
        }
        let running = sim.start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let app = sim.app();
        let secrets = json!({
            "github_app_private_key": app.private_key_pem(),
            "github_app_id": app.app_id.to_string(),
        });
        std::fs::write(dir.path().join("secrets.json"), secrets.to_string()).unwrap();
        Env { dir, sim, running }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("t.db")
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.db()).unwrap()
    }

    /// `tollgate reconcile <args>` on this store, secrets and stand-in.
    async fn reconcile(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.arg("reconcile")
            .args(args)
            .env("TOLLGATE_CONFIG", config_path())
            .env("TOLLGATE_STORE", format!("sqlite:{}", self.db().display()))
            .env(
                "TOLLGATE_SECRETS",
                format!("file:{}", self.dir.path().join("secrets.json").display()),
            )
            .env("TOLLGATE_GITHUB_URL", &self.running.web_url)
            .env("TOLLGATE_GITHUB_API_URL", &self.running.api_url)
            .env_remove("TOLLGATE_GCP_PROVIDER_ID")
            .env("RUST_LOG", "warn");
        // The stand-in serves on this runtime's other threads meanwhile.
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// Stores account `id` on `plan` as a purchase delivered `days_ago`.
    async fn bought(&self, id: u64, plan: u64, seats: Option<u32>, days_ago: i64) -> Subscription {
        let at = Utc::now() - Duration::days(days_ago);
        let event = MarketEvent {
            id: format!("delivery-{id}"),
            subscription: key(id),
            customer: Customer::new(CustomerKey::new(Marketplace::Github, id.to_string())),
            product: "acme-ci".into(),
            effective_at: day(at),
            kind: EventKind::Purchased {
                terms: PlanTerms {
                    seats,
                    billing_cycle: Some(BillingCycle::Monthly),
                    ..PlanTerms::new(plan_of(plan))
                },
                awaiting: None,
            },
        };
        ingest(&self.store(), &event, at).await.unwrap();
        self.state(id).await.unwrap()
    }

    async fn state(&self, id: u64) -> Option<Subscription> {
        self.store().get(&key(id)).await.unwrap()
    }

    async fn log_len(&self, id: u64) -> usize {
        self.store().log(&key(id)).await.unwrap().len()
    }
}

fn config_path() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../tollgate.example.toml").to_owned()
}

fn key(id: u64) -> SubscriptionKey {
    SubscriptionKey::new(Marketplace::Github, id.to_string())
}

fn day(t: DateTime<Utc>) -> DateTime<Utc> {
    tollgate::reconcile::day_of(t)
}

fn plan_of(id: u64) -> Plan {
    let (name, model) = match id {
        FREE => ("Free", PriceModel::Free),
        TEAM => ("Team", PriceModel::PerUnit),
        _ => ("Business", PriceModel::FlatRate),
    };
    Plan {
        id: id.to_string(),
        name: Some(name.into()),
        price_model: Some(model),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn summary(out: &Output) -> String {
    text(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_fixed_once_a_dry_run_writes_nothing_and_a_second_run_changes_nothing() {
    let env = Env::start().await;
    // One account a page, so every plan's accounts span pages.
    env.sim.set_max_per_page(1);
    // 2001: a plan change GitHub made whose delivery was lost.
    env.bought(2001, TEAM, Some(5), 10).await;
    env.sim.add_purchase(Purchase::new(2001, BUSINESS));
    // 2002: cancelled at GitHub, cancellation lost: gone from the listing.
    env.bought(2002, TEAM, Some(3), 10).await;
    // 2003: on the free plan, never seen by Tollgate.
    env.sim.add_purchase(Purchase::new(2003, FREE).unbilled());
    // 2004, 2005: in sync on Team, so the Team plan has two pages.
    for id in [2004, 2005] {
        env.bought(id, TEAM, Some(3), 10).await;
        env.sim.add_purchase(Purchase::new(id, TEAM).with_units(3));
    }
    let logs_before: Vec<usize> = futures_lengths(&env, &[2001, 2002, 2004, 2005]).await;

    // Dry run: drift reported, exit 3, nothing written.
    let out = env.reconcile(&["--dry-run"]).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("github:2001: would fix: plan 1002 → 1003"),
        "{stdout}"
    );
    assert!(
        stdout.contains("github:2002: would fix: status active → cancelled"),
        "{stdout}"
    );
    assert!(
        stdout.contains("github:2003: would fix: not stored"),
        "{stdout}"
    );
    assert_eq!(
        summary(&out),
        "dry run: reconciled github: 5 checked, 2 in sync, 0 fixed, 3 would fix, 0 held, 0 errors; 0 deliveries pending"
    );
    assert_eq!(
        futures_lengths(&env, &[2001, 2002, 2004, 2005]).await,
        logs_before
    );
    assert_eq!(env.state(2003).await, None);
    assert_eq!(env.state(2001).await.unwrap().plan.id, "1002");

    // The listing was read page by page, following GitHub's Link header.
    let team_pages: Vec<String> = env
        .sim
        .seen()
        .into_iter()
        .filter(|s| s.path == format!("/marketplace_listing/plans/{TEAM}/accounts"))
        .filter_map(|s| s.query)
        .collect();
    assert!(
        team_pages.iter().any(|q| q.contains("page=2")),
        "{team_pages:?}"
    );

    // The real run fixes all three through the rules.
    let out = env.reconcile(&[]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        summary(&out),
        "reconciled github: 5 checked, 2 in sync, 3 fixed, 0 would fix, 0 held, 0 errors; 0 deliveries pending"
    );
    let s2001 = env.state(2001).await.unwrap();
    assert_eq!((s2001.plan.id.as_str(), s2001.seats.limit), ("1003", None));
    assert_eq!(env.state(2002).await.unwrap().status, Status::Cancelled);
    let s2003 = env.state(2003).await.unwrap();
    assert_eq!(
        (s2003.status, s2003.plan.id.as_str()),
        (Status::Active, "1001")
    );
    // The log says where the change came from.
    let last = env.store().log(&key(2001)).await.unwrap().pop().unwrap();
    assert!(is_reconcile_event(&last.event_id), "{}", last.event_id);
    assert_eq!(last.event, "changed");

    // Twice changes nothing the second time.
    let logs_after = futures_lengths(&env, &[2001, 2002, 2003, 2004, 2005]).await;
    let out = env.reconcile(&["--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["dry_run"], false);
    let github = &report["marketplaces"][0];
    assert_eq!(
        (
            &github["marketplace"],
            &github["checked"],
            &github["in_sync"],
            &github["fixed"]
        ),
        (&json!("github"), &json!(4), &json!(4), &json!(0)),
        "{report}"
    );
    assert_eq!(
        futures_lengths(&env, &[2001, 2002, 2003, 2004, 2005]).await,
        logs_after
    );
}

async fn futures_lengths(env: &Env, ids: &[u64]) -> Vec<usize> {
    let mut out = Vec::new();
    for id in ids {
        out.push(env.log_len(*id).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_recorded_a_moment_ago_is_not_regressed_by_a_lagging_listing() {
    let env = Env::start().await;
    // Stored on Business just now (the upgrade's delivery); the listing
    // still shows Team.
    env.bought(2001, BUSINESS, None, 0).await;
    env.sim
        .add_purchase(Purchase::new(2001, TEAM).with_units(5));
    let before = env.log_len(2001).await;

    let out = env.reconcile(&[]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("github:2001: held (stored state changed at"),
        "{}",
        text(&out.stdout)
    );
    assert!(summary(&out).contains("1 held"), "{}", summary(&out));
    assert_eq!(env.state(2001).await.unwrap().plan.id, "1003");
    assert_eq!(env.log_len(2001).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_call_is_reported_with_exit_1_while_the_rest_is_reconciled_and_pending_deliveries_replayed()
 {
    let env = Env::start().await;
    env.bought(2001, TEAM, Some(5), 10).await;
    env.sim.add_purchase(Purchase::new(2001, BUSINESS));
    // Team's accounts cannot be read: nothing on Team is judged, and no
    // account is taken as gone (2002 is not on any readable page).
    env.bought(2002, TEAM, Some(3), 10).await;
    env.sim
        .add_purchase(Purchase::new(2002, TEAM).with_units(3));
    env.sim
        .fail_path(format!("/marketplace_listing/plans/{TEAM}/accounts"));
    // A delivery left pending by a failed webhook: the run replays it.
    let body = br#"{"action":"purchased","effective_date":"2026-03-01T00:00:00+00:00",
        "marketplace_purchase":{"account":{"type":"Organization","id":2006,"login":"org2006"},
        "billing_cycle":"monthly","unit_count":2,"on_free_trial":false,
        "plan":{"id":1002,"name":"Team","price_model":"PER_UNIT"}}}"#;
    let received = Utc::now() - Duration::minutes(30);
    env.store()
        .record_delivery(&pending_delivery(
            Marketplace::Github,
            "d-pending",
            "marketplace_purchase",
            body,
            received,
        ))
        .await
        .unwrap();
    env.sim
        .add_purchase(Purchase::new(2006, TEAM).with_units(2));

    let out = env.reconcile(&[]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("github delivery d-pending: replayed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("github: FAILED: github plan 1002: GitHub answered 502"),
        "{stdout}"
    );
    assert!(
        stdout.contains("github:2001: fixed: plan 1002 → 1003"),
        "{stdout}"
    );
    assert_eq!(env.state(2001).await.unwrap().plan.id, "1003");
    assert_eq!(env.state(2002).await.unwrap().status, Status::Active);
    assert_eq!(env.state(2006).await.unwrap().seats.limit, Some(2));
    assert!(
        env.store()
            .pending_deliveries(Marketplace::Github, Utc::now())
            .await
            .unwrap()
            .is_empty()
    );

    // Healed: the next run finds nothing left to fix and exits 0.
    env.sim.heal();
    let out = env.reconcile(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        summary(&out).contains(" 0 fixed, 0 would fix, 0 held, 0 errors"),
        "{}",
        summary(&out)
    );
}

#[test]
fn q2_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["reconcile", "--marketplace", "q2"])
        .env(
            "TOLLGATE_STORE",
            format!("sqlite:{}/t.db", dir.path().display()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("q2 cannot be reconciled"),
        "{}",
        text(&out.stderr)
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

/// `tollgate reconcile --marketplace gcp` through the binary against the
/// Google stand-in, whose pushes go nowhere (Tollgate hears nothing): an
/// order Tollgate never saw is recorded, and an order whose account has
/// signed up — waiting for the provider's approval — is approved, once;
/// `--dry-run` records and approves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_orders_never_heard_of_are_recorded_and_approved_once() {
    use tollgate_sim::gcp::{EntitlementState, GcpSim};

    let sim = GcpSim::generate().unwrap();
    let google = sim.start().await.unwrap();
    let waiting = sim
        .order("acct-1", "team-monthly")
        .await
        .unwrap()
        .entitlement_id;
    // Signed up at Google (the sign-up's own messages lost too).
    sim.approve_signup("acct-1").unwrap();
    let unsigned = sim
        .order("acct-2", "team-monthly")
        .await
        .unwrap()
        .entitlement_id;
    let dir = tempfile::tempdir().unwrap();
    let secrets = json!({"gcp_service_account_key": sim.service_account_key().to_json()});
    std::fs::write(dir.path().join("secrets.json"), secrets.to_string()).unwrap();
    let db = dir.path().join("t.db");
    let reconcile = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args(["reconcile", "--marketplace", "gcp"])
            .args(args)
            .env("TOLLGATE_CONFIG", config_path())
            .env("TOLLGATE_STORE", format!("sqlite:{}", db.display()))
            .env(
                "TOLLGATE_SECRETS",
                format!("file:{}", dir.path().join("secrets.json").display()),
            )
            .env("TOLLGATE_GCP_PROVIDER_ID", sim.listing().provider_id)
            .env("TOLLGATE_PROCUREMENT_URL", &google.procurement_url)
            .env("TOLLGATE_GOOGLE_TOKEN_URL", &google.token_url)
            .env("RUST_LOG", "warn");
        async move {
            tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap()
        }
    };
    let approvals = || {
        sim.seen()
            .into_iter()
            .filter(|s| s.method == "POST" && s.path.ends_with(":approve"))
            .filter(|s| s.path.contains("/entitlements/"))
            .count()
    };
    let key = |id: &str| SubscriptionKey::new(Marketplace::Gcp, id);

    let out = reconcile(&["--dry-run"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", text(&out.stderr));
    for id in [&waiting, &unsigned] {
        assert!(
            stdout.contains(&format!(
                "gcp:{id}: would fix: not stored; pending on plan team-monthly"
            )),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains(&format!("gcp:{waiting}: would approve the order")),
        "{stdout}"
    );
    assert_eq!(
        summary(&out),
        "dry run: reconciled gcp: 2 checked, 0 in sync, 0 fixed, 2 would fix, 0 held, 0 errors; 0 deliveries pending; follow-ups: 0 done, 1 would do"
    );
    assert_eq!(approvals(), 0);
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(store.get(&key(&waiting)).await.unwrap(), None);

    let out = reconcile(&[]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("gcp:{waiting}: done: approve the order")),
        "{stdout}"
    );
    assert!(
        summary(&out).ends_with("2 fixed, 0 would fix, 0 held, 0 errors; 0 deliveries pending; follow-ups: 1 done, 0 would do"),
        "{stdout}"
    );
    assert_eq!(approvals(), 1);
    assert_eq!(
        sim.entitlement(&waiting).unwrap().state,
        EntitlementState::Active
    );
    assert_eq!(
        sim.entitlement(&unsigned).unwrap().state,
        EntitlementState::ActivationRequested,
        "never approved before sign-up"
    );
    let s = store.get(&key(&waiting)).await.unwrap().unwrap();
    assert_eq!(s.status, Status::Pending);
    assert_eq!(
        store.get(&key(&unsigned)).await.unwrap().unwrap().status,
        Status::Pending
    );

    // Right after: Google now says "active", but Tollgate recorded the
    // order a moment ago, so the change waits for a later run (held: the
    // listing may lag); nothing is approved twice.
    let out = reconcile(&["--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let gcp = &report["marketplaces"][0];
    assert_eq!(
        (
            &gcp["marketplace"],
            &gcp["in_sync"],
            &gcp["held"],
            &gcp["follow_ups"]
        ),
        (&json!("gcp"), &json!(1), &json!(1), &json!([])),
        "{report}"
    );
    assert_eq!(approvals(), 1);
}
