//! What we deploy is what we test: the four functions' release `bootstrap`
//! binaries, built with the workspace's release profile (the profile
//! `make build` ships; here for the host's architecture, since arm64 cannot
//! run on the build machine), each run as its own process under a local
//! Lambda Runtime API ([`tollgate_tests::runtime_api`]) with the environment
//! Lambda gives it, receiving function-URL events (payload format 2.0, text
//! and base64 bodies) and storing state in DynamoDB (moto).
//!
//! The binaries are built by this test (`cargo build --release -p …` for
//! the four functions alone, so cargo resolves their features exactly as
//! `make build` does: no embedded SQLite store). `make test` builds them
//! first, so here that build is a no-op; run alone, `cargo test` rebuilds
//! whatever changed rather than testing a stale binary.
//!
//! Each function's peak resident memory (`VmHWM`) is read before it is
//! stopped, printed next to the budget, and must stay under Lambda's 128 MB.

use chrono::Utc;
use serde_json::{Value, json};
use tollgate::ingest::ingest;
use tollgate::marketplace::github::webhook::subscription_key;
use tollgate::model::{
    BillingCycle, Customer, CustomerKey, Disposition, EventKind, MarketEvent, Marketplace,
    PendingChange, Plan as ModelPlan, PlanTerms, PriceModel as ModelPriceModel, Status,
};
use tollgate::store::{Deliveries, DeliveryStatus, SeatClaims, Subscriptions};
use tollgate_sim::github::webhook::{Account, Action, Delivery, PurchaseEvent};
use tollgate_sim::github::{Org, Plan, PriceModel, Purchase, User};
use tollgate_tests::lambda::{Deployment, FUNCTIONS, UrlRequest, call, say, workspace_root};
use tollgate_tests::runtime_api::{FunctionProcess, Outcome};

/// Lambda's hard limit at the configured memory size.
const LAMBDA_MEMORY_MB: u32 = 128;
/// The issue's budget for peak RSS per function.
const BUDGET_MB: f64 = 48.0;

/// A GitHub delivery as a function-URL request, headers and body as GitHub
/// sends them.
fn github(delivery: &Delivery, secret: &str) -> UrlRequest {
    UrlRequest::post(
        "/github",
        delivery.headers(secret.as_bytes()),
        delivery.body.clone(),
    )
}

/// Peak RSS of `f` once it is idle again (it has answered everything and
/// polls for more), printed next to the budget and checked against
/// Lambda's limit; then the process is stopped. Its log must hold none of
/// `secrets`; it is removed once everything passed.
async fn finish(mut f: FunctionProcess, secrets: &[&str]) -> f64 {
    f.until_idle().await;
    let (hwm, rss) = f.memory_kib();
    let name = f.config.name.clone();
    let log_path = f.log.clone();
    let log = f.log_text();
    let invocations = f.invocations();
    f.stop().await;
    let peak_mb = hwm as f64 / 1024.0;
    say(&format!(
        "{name}: peak RSS {peak_mb:.1} MB (VmHWM; {:.1} MB resident when idle) — budget {BUDGET_MB:.0} MB ({}), Lambda limit {LAMBDA_MEMORY_MB} MB",
        rss as f64 / 1024.0,
        if peak_mb <= BUDGET_MB {
            "within"
        } else {
            "OVER"
        },
    ));
    assert!(
        peak_mb < f64::from(LAMBDA_MEMORY_MB),
        "{name}: peak RSS {peak_mb:.1} MB reaches Lambda's {LAMBDA_MEMORY_MB} MB"
    );
    // Every request is logged once (JSON lines, as CloudWatch gets them).
    let logged = log
        .lines()
        .filter(|l| l.contains(r#""message":"request""#))
        .count();
    assert_eq!(
        logged as u64,
        invocations,
        "{name}: one request line per invocation ({})",
        log_path.display()
    );
    for secret in secrets {
        assert!(
            !log.contains(secret),
            "{name}: the log contains a secret ({})",
            log_path.display()
        );
    }
    let _ = std::fs::remove_file(log_path);
    peak_mb
}

// ------------------------------------------------------- GitHub events --

const ORG_ID: u64 = 2001;

fn team() -> Plan {
    Plan::new(1002, 2, "Team", PriceModel::PerUnit)
        .with_free_trial()
        .with_prices(400, 4000)
}

fn business() -> Plan {
    Plan::new(1003, 3, "Business", PriceModel::FlatRate).with_prices(9900, 99000)
}

fn event(action: Action, plan: Plan, purchase: Purchase) -> PurchaseEvent {
    let sender = User::new(1, "octocat");
    let org = Org::new(ORG_ID, "acme")
        .with_billing_email("billing@acme.example")
        .with_member(1);
    PurchaseEvent::new(action, sender, Account::Org(org), plan, purchase)
        .expect("a consistent event")
}

fn team_seats(units: u64) -> Purchase {
    Purchase::new(ORG_ID, 1002).with_units(units)
}

fn business_purchase() -> Purchase {
    Purchase::new(ORG_ID, 1003)
}

// ---------------------------------------------------------------- tests --

/// One GitHub Marketplace lifecycle through purchase-webhook, with
/// entitlement checks and seat claims through entitlement-check in between,
/// both release binaries on one DynamoDB table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_lifecycle_and_entitlement_checks_through_the_release_binaries() {
    let d = Deployment::new().await;
    let mut webhook = d.start("purchase-webhook").await;
    let mut check = d.start("entitlement-check").await;
    let secret = d.webhook_secret.clone();
    let bearer = format!("Bearer {}", d.api_key);
    let key = subscription_key(ORG_ID);
    let customer_check = |feature: &str, extra: Value| {
        let mut q = json!({
            "marketplace": "github",
            "customer_id": ORG_ID.to_string(),
            "product": "acme-ci",
            "feature": feature,
        });
        if let (Some(q), Some(extra)) = (q.as_object_mut(), extra.as_object()) {
            q.extend(extra.clone());
        }
        q
    };

    // Both functions answer their health check.
    for f in [&mut webhook, &mut check] {
        let r = call(f, UrlRequest::get("/healthz")).await;
        assert_eq!((r.status, r.json()["status"].clone()), (200, json!("ok")));
        assert_eq!(r.json()["function"], json!(f.config.name));
    }

    // Before any purchase: no subscription.
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &customer_check("private-repos", json!({})))
            .header("authorization", &bearer),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(
        (r.json()["allowed"].clone(), r.json()["reason"].clone()),
        (json!(false), json!("no_subscription"))
    );

    // purchased: Team, 3 seats (body base64-encoded by the function URL).
    let purchased = event(Action::Purchased, team(), team_seats(3))
        .delivery()
        .unwrap();
    let r = call(&mut webhook, github(&purchased, &secret).base64()).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["status"], "applied", "{}", r.json());
    assert_eq!(r.json()["delivery"], json!(purchased.id));
    assert_eq!(r.json()["subscription"], json!(key.to_string()));
    let s = d.store.get(&key).await.unwrap().expect("the subscription");
    assert_eq!(
        (s.status, s.plan.id.as_str(), s.seats.limit, s.version),
        (Status::Active, "1002", Some(3), 1)
    );

    // An entitlement check with the API key: Team grants private repos.
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &customer_check("private-repos", json!({})))
            .header("authorization", &bearer),
    )
    .await;
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(
        (&v["allowed"], &v["reason"], &v["tier"], &v["status"]),
        (&json!(true), &json!("ok"), &json!("team"), &json!("active")),
        "{v}"
    );

    // The same check from an IAM-authenticated caller, body base64.
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &customer_check("private-repos", json!({})))
            .base64()
            .iam(),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["allowed"].clone()),
        (200, json!(true)),
        "{}",
        r.json()
    );

    // A wrong key is refused.
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &customer_check("private-repos", json!({})))
            .header("authorization", "Bearer tgk_not-a-key"),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.json());

    // A seat claim (base64 body), then the same claim again (idempotent).
    let claim =
        json!({"marketplace": "github", "subscription_id": ORG_ID.to_string(), "user": "alice"});
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/seats/claim", &claim)
            .header("x-api-key", &d.api_key)
            .base64(),
    )
    .await;
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(
        (&v["already_held"], &v["seats"]),
        (&json!(false), &json!({"limit": 3, "used": 1})),
        "{v}"
    );
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/seats/claim", &claim).header("x-api-key", &d.api_key),
    )
    .await;
    assert_eq!(r.json()["already_held"], json!(true), "{}", r.json());

    // A check that claims a seat for bob in the same call.
    let r = call(
        &mut check,
        UrlRequest::post_json(
            "/v1/check",
            &customer_check("private-repos", json!({"user": "bob", "claim_seat": true})),
        )
        .header("authorization", &bearer),
    )
    .await;
    let v = r.json();
    assert_eq!(
        (&v["allowed"], &v["seats"]),
        (&json!(true), &json!({"limit": 3, "used": 2})),
        "{v}"
    );
    assert_eq!(
        d.store.seat_holders(&key).await.unwrap(),
        ["alice", "bob"],
        "seat holders in DynamoDB"
    );

    // changed: Team x3 -> Business (flat rate, 50 seats by config).
    let changed = event(Action::Changed, business(), business_purchase())
        .with_previous(team(), team_seats(3))
        .unwrap()
        .delivery()
        .unwrap();
    let r = call(&mut webhook, github(&changed, &secret)).await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("applied")),
        "{}",
        r.json()
    );
    let s = d.store.get(&key).await.unwrap().unwrap();
    assert_eq!((s.status, s.plan.id.as_str()), (Status::Active, "1003"));
    assert_eq!(s.seats.used, 2, "a plan change keeps the seat holders");

    // pending_change: down to Team x2 at the end of the cycle.
    let at = Utc::now() + chrono::Duration::days(30);
    let pending = event(Action::PendingChange, team(), team_seats(2))
        .with_previous(business(), business_purchase())
        .unwrap()
        .effective_on(at)
        .delivery()
        .unwrap();
    let r = call(&mut webhook, github(&pending, &secret).base64()).await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("applied")),
        "{}",
        r.json()
    );
    let s = d.store.get(&key).await.unwrap().unwrap();
    assert_eq!(s.plan.id, "1003", "a pending change keeps today's plan");
    match &s.pending_change {
        Some(PendingChange::Plan { plan, seats, .. }) => {
            assert_eq!((plan.id.as_str(), *seats), ("1002", Some(2)));
        }
        other => panic!("expected a pending plan change, got {other:?}"),
    }
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &customer_check("sso", json!({})))
            .header("authorization", &bearer),
    )
    .await;
    assert_eq!(
        (r.json()["allowed"].clone(), r.json()["tier"].clone()),
        (json!(true), json!("business")),
        "{}",
        r.json()
    );

    // A delivery with a bad signature is refused, and nothing is stored.
    let forged = event(Action::Cancelled, business(), business_purchase())
        .delivery()
        .unwrap();
    let r = call(
        &mut webhook,
        github(&forged, &secret).header(
            "x-hub-signature-256",
            &tollgate_sim::github::webhook::sign(b"not the secret", &forged.body),
        ),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.json());
    assert_eq!(
        r.json()["error"]["code"],
        "signature_mismatch",
        "{}",
        r.json()
    );
    assert_eq!(
        d.store
            .delivery(Marketplace::Github, &forged.id, Utc::now())
            .await
            .unwrap(),
        None,
        "a refused delivery is not recorded"
    );

    // cancelled: access ends today; the config's cancelled tier (free) stays.
    let cancelled = event(Action::Cancelled, business(), business_purchase())
        .delivery()
        .unwrap();
    let r = call(&mut webhook, github(&cancelled, &secret).base64()).await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("applied")),
        "{}",
        r.json()
    );

    // GitHub redelivers the purchase: answered duplicate, nothing applied.
    let r = call(&mut webhook, github(&purchased, &secret).base64()).await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("duplicate")),
        "{}",
        r.json()
    );

    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &customer_check("private-repos", json!({})))
            .header("authorization", &bearer),
    )
    .await;
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(v["allowed"], json!(false), "{v}");
    say(&format!(
        "entitlement-check after the cancellation: private-repos -> {}",
        v["reason"]
    ));

    // What landed in DynamoDB.
    let s = d.store.get(&key).await.unwrap().unwrap();
    assert_eq!((s.status, s.version), (Status::Cancelled, 4), "{s:?}");
    let log = d.store.log(&key).await.unwrap();
    let events: Vec<(&str, Disposition)> = log
        .iter()
        .map(|e| (e.event_id.as_str(), e.disposition))
        .collect();
    assert_eq!(
        events,
        [
            (purchased.id.as_str(), Disposition::Applied),
            (changed.id.as_str(), Disposition::Applied),
            (pending.id.as_str(), Disposition::Applied),
            (cancelled.id.as_str(), Disposition::Applied),
        ],
        "the event log"
    );
    for delivery in [&purchased, &changed, &pending, &cancelled] {
        let recorded = d
            .store
            .delivery(Marketplace::Github, &delivery.id, Utc::now())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("delivery {} recorded", delivery.id));
        assert_eq!(recorded.status, DeliveryStatus::Done);
    }

    let secrets = [d.webhook_secret.as_str(), d.api_key.as_str()];
    let peaks = [
        finish(webhook, &secrets).await,
        finish(check, &secrets).await,
    ];
    assert!(peaks.iter().all(|p| *p > 1.0), "{peaks:?}");
}

/// pubsub-push and oauth-callback start on the same environment and answer
/// their health checks through the Runtime API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_push_and_oauth_callback_answer_health_checks() {
    let d = Deployment::new().await;
    for name in ["pubsub-push", "oauth-callback"] {
        let mut f = d.start(name).await;
        for path in ["/healthz", "/healthz?probe=1"] {
            let r = call(&mut f, UrlRequest::get(path)).await;
            assert_eq!(r.status, 200, "{name} {path}");
            assert_eq!(
                r.json(),
                json!({"status": "ok", "function": name}),
                "{name} {path}"
            );
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
        let r = call(&mut f, UrlRequest::get("/no-such-route")).await;
        assert_eq!(r.status, 404, "{name}: {}", r.json());
        finish(f, &[d.webhook_secret.as_str(), d.api_key.as_str()]).await;
    }
}

/// purchase-webhook's EventBridge schedule through its release binary: a
/// `Scheduled Event` from the Runtime API runs reconciliation against the
/// GitHub stand-in with the deployment's secrets and DynamoDB table, fixes
/// the drift (a lost plan change, a lost cancellation found by the
/// `Inventory` scan), and answers the Runtime API with the report as the
/// invocation's success; the next scheduled run finds nothing to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_event_runs_reconcile_through_the_release_binary() {
    let d = Deployment::new().await;
    let sim = tollgate_sim::github::GithubSim::generate().unwrap();
    sim.add_plan(team());
    sim.add_plan(business());
    let gone = ORG_ID + 1;
    sim.add_org(Org::new(ORG_ID, "acme"));
    sim.add_org(Org::new(gone, "globex"));
    // At GitHub: ORG_ID moved to Business, `gone` cancelled (no longer
    // listed). Both deliveries were lost.
    sim.add_purchase(business_purchase());
    let github = sim.start().await.unwrap();
    let app = sim.app();
    d.add_secrets(&json!({
        "github_app_private_key": app.private_key_pem(),
        "github_app_id": app.app_id.to_string(),
    }));
    // Tollgate's store: both on Team x3 since three days ago.
    let at = Utc::now() - chrono::Duration::days(3);
    for id in [ORG_ID, gone] {
        let purchase = MarketEvent {
            id: format!("delivery-{id}"),
            subscription: subscription_key(id),
            customer: Customer::new(CustomerKey::new(Marketplace::Github, id.to_string())),
            product: "acme-ci".into(),
            effective_at: tollgate::reconcile::day_of(at),
            kind: EventKind::Purchased {
                terms: PlanTerms {
                    seats: Some(3),
                    billing_cycle: Some(BillingCycle::Monthly),
                    ..PlanTerms::new(ModelPlan {
                        id: "1002".into(),
                        name: Some("Team".into()),
                        price_model: Some(ModelPriceModel::PerUnit),
                    })
                },
                awaiting: None,
            },
        };
        ingest(&d.store, &purchase, at).await.unwrap();
    }

    let mut webhook = d
        .start_with(
            "purchase-webhook",
            &[
                ("TOLLGATE_GITHUB_API_URL", github.api_url.as_str()),
                ("TOLLGATE_GITHUB_URL", github.web_url.as_str()),
            ],
        )
        .await;
    let scheduled = json!({
        "version": "0", "id": tollgate_tests::runtime_api::uuid_v4(),
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/tollgate-reconcile"],
        "detail": {}
    });
    let report = |f: &mut FunctionProcess, outcome: Outcome| -> Value {
        match outcome {
            Outcome::Response { body, .. } => serde_json::from_slice(&body).unwrap_or_else(|e| {
                f.fail(&format!(
                    "the scheduled run's answer is not JSON ({e}): {}",
                    String::from_utf8_lossy(&body)
                ))
            }),
            Outcome::Error {
                error_type, body, ..
            } => f.fail(&format!(
                "the scheduled run failed: {error_type:?} {}",
                String::from_utf8_lossy(&body)
            )),
        }
    };

    let outcome = webhook.invoke(&scheduled).await;
    let first = report(&mut webhook, outcome);
    assert_eq!(first["dry_run"], json!(false), "{first}");
    let github_report = &first["marketplaces"][0];
    assert_eq!(
        (
            &github_report["marketplace"],
            &github_report["checked"],
            &github_report["fixed"],
            &github_report["errors"]
        ),
        (&json!("github"), &json!(2), &json!(2), &json!(0)),
        "{first}"
    );
    let moved = d
        .store
        .get(&subscription_key(ORG_ID))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (moved.status, moved.plan.id.as_str()),
        (Status::Active, "1003")
    );
    let cancelled = d.store.get(&subscription_key(gone)).await.unwrap().unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    let log = d.store.log(&subscription_key(gone)).await.unwrap();
    assert!(
        tollgate::reconcile::is_reconcile_event(&log.last().unwrap().event_id),
        "{log:?}"
    );

    // The next scheduled run: everything in sync, nothing written.
    let log_len = log.len();
    let outcome = webhook.invoke(&scheduled).await;
    let second = report(&mut webhook, outcome);
    assert_eq!(
        (
            &second["marketplaces"][0]["in_sync"],
            &second["marketplaces"][0]["fixed"]
        ),
        (&json!(1), &json!(0)),
        "{second}"
    );
    assert_eq!(
        d.store.log(&subscription_key(gone)).await.unwrap().len(),
        log_len
    );

    webhook.until_idle().await;
    let text = webhook.log_text();
    let log_path = webhook.log.clone();
    webhook.stop().await;
    assert!(
        text.contains("reconcile run") && text.contains("scheduled run"),
        "the runs are logged ({})",
        log_path.display()
    );
    for secret in [app.private_key_pem(), d.webhook_secret.as_str()] {
        assert!(
            !text.contains(secret),
            "the log contains a secret ({})",
            log_path.display()
        );
    }
    let _ = std::fs::remove_file(log_path);
}

/// entitlement-check deployed behind an `AWS_IAM` URL with an allow-list,
/// through its release binary: a hand-written event invoked directly — no
/// IAM caller, an API key instead — is refused as not a function URL
/// request; a listed IAM caller gets its scopes only; an event without
/// `requestContext.http` is an invocation error, never a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_invoke_is_not_trusted_as_an_iam_function_url_request() {
    let d = Deployment::new().await;
    let principals = json!({"arn:aws:iam::123456789012:role/acme-ci-app": "check"}).to_string();
    let mut check = d
        .start_with(
            "entitlement-check",
            &[
                ("TOLLGATE_CHECK_AUTH", "aws_iam"),
                ("TOLLGATE_IAM_PRINCIPALS", principals.as_str()),
            ],
        )
        .await;
    let ask = json!({"marketplace": "github", "customer_id": "1", "product": "acme-ci"});

    // The emulated URL's IAM caller (a session of role acme-ci-app): `check`.
    let r = call(&mut check, UrlRequest::post_json("/v1/check", &ask).iam()).await;
    assert_eq!(
        (r.status, r.json()["reason"].clone()),
        (200, json!("no_subscription")),
        "{}",
        r.json()
    );
    let r = call(&mut check, UrlRequest::get("/v1/seats/github/1").iam()).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (403, json!("insufficient_scope"))
    );

    // A hand-written event with a valid API key and no IAM caller: an
    // AWS_IAM URL never delivers that, so it was invoked directly.
    let bearer = format!("Bearer {}", d.api_key);
    let r = call(
        &mut check,
        UrlRequest::post_json("/v1/check", &ask).header("authorization", &bearer),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (401, json!("untrusted_event")),
        "{}",
        r.json()
    );

    // Not a function URL event at all: refused as an invocation error.
    let mut event = UrlRequest::post_json("/v1/check", &ask)
        .iam()
        .event("entitlementcheck01234567");
    event["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("http");
    match check.invoke(&event).await {
        Outcome::Error { .. } => {}
        Outcome::Response { body, .. } => check.fail(&format!(
            "an event without requestContext.http was answered: {}",
            String::from_utf8_lossy(&body)
        )),
    }
    check.stop().await;
}

#[test]
fn the_functions_list_matches_the_makefile() {
    let makefile = std::fs::read_to_string(workspace_root().join("Makefile")).unwrap();
    let line = makefile
        .lines()
        .find_map(|l| l.strip_prefix("FUNCTIONS := "))
        .expect("FUNCTIONS in the Makefile");
    assert_eq!(line.split_whitespace().collect::<Vec<_>>(), FUNCTIONS);
}
