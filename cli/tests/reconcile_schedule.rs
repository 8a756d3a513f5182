//! purchase-webhook's Lambda handler on the events it can receive
//! (`tollgate::functions::scheduled::handle`, what `functions::run` serves):
//! EventBridge's scheduled event runs reconciliation — whatever the event
//! says — and a function-URL request is still served as HTTP, even when its
//! body looks like a scheduled event.

use std::sync::Arc;

use chrono::{Duration, Utc};
use lambda_http::{Context, LambdaEvent};
use serde_json::{Value, json};
use tollgate::functions::scheduled::{EventKind as LambdaEventKind, handle, kind_of};
use tollgate::ingest::ingest;
use tollgate::marketplace::github::SECRET_NAME;
use tollgate::model::{
    BillingCycle, Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Plan, PlanTerms,
    PriceModel, Status, SubscriptionKey,
};
use tollgate::store::Store;
use tollgate::store::sqlite::SqliteStore;
use tollgate::testing::TestApp;
use tollgate_sim::github::{GithubSim, Org, Plan as SimPlan, PriceModel as SimPrice};

fn scheduled_event(detail: Value) -> Value {
    json!({
        "version": "0", "id": "9bd8c1a4-7a3e-4f0e-9c0a-0d3f1e2a7b11",
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-03-01T06:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/tollgate-reconcile"],
        "detail": detail
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_event_runs_reconcile_and_a_url_request_stays_http() {
    let sim = GithubSim::generate().unwrap();
    sim.add_plan(SimPlan::new(1002, 2, "Team", SimPrice::PerUnit));
    sim.add_org(Org::new(2001, "acme"));
    let running = sim.start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
    // Active on Team at Tollgate, gone from GitHub: the cancellation was lost.
    let key = SubscriptionKey::new(Marketplace::Github, "2001");
    let at = Utc::now() - Duration::days(3);
    let purchase = MarketEvent {
        id: "delivery-1".into(),
        subscription: key.clone(),
        customer: Customer::new(CustomerKey::new(Marketplace::Github, "2001")),
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
    ingest(&*store, &purchase, at).await.unwrap();

    let app = sim.app();
    let function = TestApp::new()
        .config_file(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tollgate.example.toml"
        )))
        .secret(SECRET_NAME, "webhook-secret")
        .secret("github_app_private_key", app.private_key_pem())
        .secret("github_app_id", &app.app_id.to_string())
        .setting("TOLLGATE_GITHUB_API_URL", &running.api_url)
        .setting("TOLLGATE_GITHUB_URL", &running.web_url)
        .store(Arc::clone(&store))
        .system_clock()
        .purchase_webhook()
        .unwrap();
    let function = Arc::new(function);

    // A hand-written event's detail is ignored: it only means "run".
    let event = scheduled_event(json!({"dry_run": true, "marketplace": "q2"}));
    assert_eq!(kind_of(&event), LambdaEventKind::Scheduled);
    let answer = handle(
        Arc::clone(&function),
        LambdaEvent::new(event, Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(answer["dry_run"], false, "{answer}");
    assert_eq!(answer["marketplaces"][0]["fixed"], 1, "{answer}");
    assert_eq!(
        store.get(&key).await.unwrap().unwrap().status,
        Status::Cancelled
    );

    // A function-URL request whose body is a scheduled event is HTTP: the
    // webhook route refuses it for its missing signature.
    let url_event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/github", "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "x.lambda-url.us-east-1.on.aws"},
        "requestContext": {
            "accountId": "anonymous", "apiId": "x", "domainName": "x.lambda-url.us-east-1.on.aws",
            "domainPrefix": "x", "requestId": "r-1", "routeKey": "$default", "stage": "$default",
            "time": "01/Mar/2026:06:00:00 +0000", "timeEpoch": 1772344800000u64,
            "http": {"method": "POST", "path": "/github", "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.1", "userAgent": "curl"}
        },
        "body": scheduled_event(json!({})).to_string(),
        "isBase64Encoded": false
    });
    assert_eq!(kind_of(&url_event), LambdaEventKind::Http);
    let answer = handle(
        Arc::clone(&function),
        LambdaEvent::new(url_event, Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(answer["statusCode"], 401, "{answer}");

    // Anything else is refused, never guessed at.
    let refused = handle(
        function,
        LambdaEvent::new(json!({"reconcile": true}), Context::default()),
    )
    .await;
    assert!(refused.is_err());
}
