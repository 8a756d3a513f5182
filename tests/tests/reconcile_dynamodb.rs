//! Reconciliation on DynamoDB (moto): the `Inventory` role's `Scan` finds a
//! stored subscription GitHub no longer lists, the drift is committed with
//! a `reconcile:…` log entry, and a second run writes nothing.

use std::sync::Arc;

use chrono::{Duration, Utc};
use tollgate::clock::SystemClock;
use tollgate::ingest::ingest;
use tollgate::marketplace::github::app_jwt::AppJwtSigner;
use tollgate::marketplace::github::client::GithubClient;
use tollgate::model::{
    BillingCycle, Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Plan, PlanTerms,
    PriceModel, Status, SubscriptionKey,
};
use tollgate::reconcile::github::GithubSource;
use tollgate::reconcile::{Source, Stores, Target, is_reconcile_event, reconcile};
use tollgate::secret::Secret;
use tollgate::store::{Inventory, Subscriptions};
use tollgate_sim::github::{GithubSim, Org, Plan as SimPlan, PriceModel as SimPrice, Purchase};

fn purchased(id: u64, days_ago: i64) -> (MarketEvent, chrono::DateTime<Utc>) {
    let at = Utc::now() - Duration::days(days_ago);
    let event = MarketEvent {
        id: format!("delivery-{id}"),
        subscription: SubscriptionKey::new(Marketplace::Github, id.to_string()),
        customer: Customer::new(CustomerKey::new(Marketplace::Github, id.to_string())),
        product: "acme-ci".into(),
        effective_at: tollgate::reconcile::day_of(at),
        kind: EventKind::Purchased {
            terms: PlanTerms {
                seats: Some(3),
                billing_cycle: Some(BillingCycle::Monthly),
                ..PlanTerms::new(Plan {
                    id: "1002".into(),
                    name: None,
                    price_model: Some(PriceModel::PerUnit),
                })
            },
            awaiting: None,
        },
    };
    (event, at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_github_dropped_is_found_by_the_scan_and_cancelled_once() {
    let store = Arc::new(tollgate_tests::moto::fresh_store().await);
    let sim = GithubSim::generate().unwrap();
    sim.add_plan(SimPlan::new(1002, 2, "Team", SimPrice::PerUnit));
    for id in [2001, 2002] {
        sim.add_org(Org::new(id, format!("org{id}")));
        let (event, at) = purchased(id, 5);
        ingest(&*store, &event, at).await.unwrap();
    }
    // 2001 is still listed; 2002 is gone (its cancellation was lost).
    sim.add_purchase(Purchase::new(2001, 1002).with_units(3));
    let running = sim.start().await.unwrap();

    let page = store
        .subscription_keys(Marketplace::Github, None)
        .await
        .unwrap();
    let mut ids: Vec<String> = page.keys.into_iter().map(|k| k.id).collect();
    ids.sort();
    assert_eq!(ids, ["2001", "2002"]);
    assert!(
        store
            .subscription_keys(Marketplace::Gcp, None)
            .await
            .unwrap()
            .keys
            .is_empty()
    );

    let app = sim.app();
    let signer =
        AppJwtSigner::new(app.app_id.to_string(), &Secret::new(app.private_key_pem())).unwrap();
    let client = GithubClient::with_urls(&running.web_url, &running.api_url).unwrap();
    let targets = [Target {
        marketplace: Marketplace::Github,
        source: Ok(Source::Github(GithubSource::new(client, signer, "acme-ci"))),
        replayer: None,
    }];
    let stores = Stores {
        ledger: store.clone(),
        inventory: store.clone(),
        deliveries: store.clone(),
    };
    let report = reconcile(&targets, &stores, &SystemClock, false, |_| {}).await;
    let github = &report.marketplaces[0];
    assert_eq!(
        (github.checked, github.in_sync, github.fixed, github.errors),
        (2, 1, 1, 0),
        "{report:?}"
    );
    let gone = SubscriptionKey::new(Marketplace::Github, "2002");
    assert_eq!(
        store.get(&gone).await.unwrap().unwrap().status,
        Status::Cancelled
    );
    let log = store.log(&gone).await.unwrap();
    assert!(is_reconcile_event(&log.last().unwrap().event_id));

    let again = reconcile(&targets, &stores, &SystemClock, false, |_| {}).await;
    assert_eq!(again.marketplaces[0].fixed, 0, "{again:?}");
    assert_eq!(store.log(&gone).await.unwrap().len(), log.len());
}
