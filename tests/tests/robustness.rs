//! Robustness: every parser and verifier fed arbitrary bytes and mutated
//! valid payloads (bit flips, truncation, deleted fields, swapped types,
//! huge numbers, extreme dates): no panic, a clear error, nothing stored
//! that should not be. Through the parsers' stable paths and through the
//! real functions (`TestApp`): GitHub's webhook, Q2's events, Google's
//! push envelope and notification, and the check API.
//!
//! Case counts: `TOLLGATE_PROPTEST_CASES` (or `PROPTEST_CASES`) overrides
//! the defaults (README "Testing").

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use http::StatusCode;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tollgate::api::auth::Authenticator;
use tollgate::clock::FixedClock;
use tollgate::marketplace::gcp::notification::{Envelope, Notification, delivery_id};
use tollgate::marketplace::github::webhook::{self, DeliveryInfo};
use tollgate::marketplace::q2::event as q2_event;
use tollgate::model::{CustomerKey, Marketplace, SubscriptionKey};
use tollgate::store::Store;
use tollgate::store::sqlite::SqliteStore;
use tollgate::testing::TestApp;
use tollgate_tests::deliver::{
    Answer, GITHUB_CONFIG, GithubPlan, check_request, github_body, github_request, proptest_cases,
    q2_body, q2_request, send,
};

fn runner(default_cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: proptest_cases(default_cases),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    })
}

fn run<S: Strategy>(
    default_cases: u32,
    strategy: S,
    case: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    if let Err(e) = runner(default_cases).run(&strategy, case) {
        panic!("{e}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

// ----------------------------------------------------------- mutations --

/// Values that break naive code: huge and negative numbers, numbers that
/// overflow every integer type, extreme and malformed dates, wrong types.
fn nasty_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(0),
        json!(u64::MAX),
        json!(i64::MIN),
        serde_json::from_str("18446744073709551616").unwrap(),
        serde_json::from_str("-1e308").unwrap(),
        json!(1.5),
        json!(""),
        json!("x"),
        json!("+262143-12-31"),
        json!("-262144-01-01"),
        json!("+262143-12-31T23:59:59Z"),
        json!("9999-12-31T23:59:59+00:00"),
        json!("9999-12-31T23:59:59-23:59"),
        json!("0000-01-01T00:00:00+23:59"),
        json!("1970-01-01"),
        json!("2025-02-30"),
        json!("\u{0}\u{202e}"),
        json!([]),
        json!({}),
        json!([1, [2, [3]]]),
        json!("a".repeat(5000)),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Flip bit `bit` of byte `at` of the serialized document.
    BitFlip(proptest::sample::Index, u8),
    /// Keep only the first bytes.
    Truncate(proptest::sample::Index),
    /// Remove one field (or array element).
    Delete(proptest::sample::Index),
    /// Replace one field's value with a nasty one.
    Swap(proptest::sample::Index, proptest::sample::Index),
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        (any::<proptest::sample::Index>(), 0u8..8).prop_map(|(i, b)| Mutation::BitFlip(i, b)),
        any::<proptest::sample::Index>().prop_map(Mutation::Truncate),
        any::<proptest::sample::Index>().prop_map(Mutation::Delete),
        (
            any::<proptest::sample::Index>(),
            any::<proptest::sample::Index>()
        )
            .prop_map(|(p, v)| Mutation::Swap(p, v)),
        (
            any::<proptest::sample::Index>(),
            any::<proptest::sample::Index>()
        )
            .prop_map(|(p, v)| Mutation::Swap(p, v)),
    ];
    proptest::collection::vec(one, 1..=3)
}

/// Every path (object key / array index) in `v`, depth first.
fn paths(v: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                prefix.push(Value::String(k.clone()));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(json!(i));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// The parent of `path` and the last step.
fn parent_mut<'a>(v: &'a mut Value, path: &[Value]) -> Option<(&'a mut Value, Value)> {
    let (last, init) = path.split_last()?;
    let mut cur = v;
    for step in init {
        cur = match step {
            Value::String(k) => cur.get_mut(k.as_str())?,
            Value::Number(n) => cur.get_mut(usize::try_from(n.as_u64()?).ok()?)?,
            _ => return None,
        };
    }
    Some((cur, last.clone()))
}

/// Applies `ms` to `doc`: a JSON document changed in its structure, then
/// serialized and changed in its bytes.
fn mutate(doc: &Value, ms: &[Mutation]) -> Vec<u8> {
    let mut v = doc.clone();
    let mut bytes_mutations = Vec::new();
    for m in ms {
        let mut all = Vec::new();
        paths(&v, &mut Vec::new(), &mut all);
        match m {
            Mutation::Delete(p) if !all.is_empty() => {
                let path = all[p.index(all.len())].clone();
                if let Some((parent, last)) = parent_mut(&mut v, &path) {
                    match (parent, last) {
                        (Value::Object(map), Value::String(k)) => {
                            map.remove(&k);
                        }
                        (Value::Array(items), Value::Number(n)) => {
                            let i = usize::try_from(n.as_u64().unwrap_or(0)).unwrap_or(0);
                            if i < items.len() {
                                items.remove(i);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Mutation::Swap(p, value) if !all.is_empty() => {
                let path = all[p.index(all.len())].clone();
                let nasty = nasty_values();
                let new = nasty[value.index(nasty.len())].clone();
                if let Some((parent, last)) = parent_mut(&mut v, &path) {
                    match (parent, last) {
                        (Value::Object(map), Value::String(k)) => {
                            map.insert(k, new);
                        }
                        (Value::Array(items), Value::Number(n)) => {
                            let i = usize::try_from(n.as_u64().unwrap_or(0)).unwrap_or(0);
                            if let Some(slot) = items.get_mut(i) {
                                *slot = new;
                            }
                        }
                        _ => {}
                    }
                }
            }
            other => bytes_mutations.push(other.clone()),
        }
    }
    let mut bytes = serde_json::to_vec(&v).unwrap();
    for m in bytes_mutations {
        match m {
            Mutation::BitFlip(at, bit) if !bytes.is_empty() => {
                let i = at.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            Mutation::Truncate(at) => {
                let len = at.index(bytes.len() + 1);
                bytes.truncate(len);
            }
            _ => {}
        }
    }
    bytes
}

/// A body, shown as text when a case fails.
#[derive(Clone, PartialEq, Eq)]
struct Bytes(Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl std::ops::Deref for Bytes {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

/// Arbitrary bytes, or a mutation of `doc`.
fn inputs(doc: Value) -> impl Strategy<Value = Bytes> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512).prop_map(Bytes),
        4 => mutations().prop_map(move |ms| Bytes(mutate(&doc, &ms))),
    ]
}

/// An error answer is JSON with a code and a message that does not run on.
fn assert_clear_error(a: &Answer) -> Result<(), TestCaseError> {
    let code = a.error_code();
    let message = a.json["error"]["message"].as_str().unwrap_or_default();
    prop_assert!(
        !code.is_empty() && !message.is_empty() && message.len() < 1000,
        "unclear error: {} {}",
        a.status,
        a.json
    );
    Ok(())
}

// ------------------------------------------------------------- parsers --

fn valid_github() -> Value {
    let mut v = github_body(
        "purchased",
        42,
        GithubPlan::TEAM,
        5,
        Utc.with_ymd_and_hms(2025, 1, 10, 0, 0, 0).unwrap(),
    );
    v["marketplace_purchase"]["on_free_trial"] = json!(true);
    v["previous_marketplace_purchase"] = v["marketplace_purchase"].clone();
    v
}

fn valid_q2() -> Value {
    q2_body("order", "sub-1", "CU", "7", "bh-id", Some("PREMIUM"))
}

fn valid_push() -> Value {
    use base64::Engine;
    let data = json!({"eventId": "evt-1", "eventType": "ENTITLEMENT_CREATION_REQUESTED",
                      "entitlement": {"id": "ent-1", "updateTime": "2025-01-10T00:00:00Z"}});
    json!({"message": {"data": base64::engine::general_purpose::STANDARD.encode(data.to_string()),
                       "messageId": "m-1", "publishTime": "2025-01-10T00:00:00Z"},
           "subscription": "projects/p/subscriptions/s"})
}

#[test]
fn github_payload_parser_never_panics_and_names_what_is_wrong() {
    let received = Utc.with_ymd_and_hms(2025, 1, 11, 0, 0, 0).unwrap();
    run(2048, inputs(valid_github()), |body| {
        match webhook::parse(&body) {
            Ok(event) => {
                let e = webhook::normalize(
                    &event,
                    DeliveryInfo {
                        id: "d",
                        received_at: received,
                    },
                    "acme-ci",
                );
                prop_assert!(e.effective_at <= received);
            }
            Err(e) => {
                let m = e.to_string();
                prop_assert!(!m.is_empty() && m.len() < 300, "{}", m);
            }
        }
        Ok(())
    });
}

#[test]
fn q2_event_parser_never_panics_and_names_what_is_wrong() {
    run(2048, inputs(valid_q2()), |body| {
        match q2_event::parse(&body) {
            Ok(event) => {
                let id = q2_event::delivery_id(&event, &body);
                prop_assert!(!id.is_empty());
            }
            Err(e) => {
                let m = e.to_string();
                prop_assert!(!m.is_empty() && m.len() < 300, "{}", m);
            }
        }
        Ok(())
    });
}

#[test]
fn google_envelope_and_notification_parsers_never_panic() {
    run(2048, inputs(valid_push()), |body| {
        if let Ok(envelope) = Envelope::parse(&body) {
            if let Some(id) = delivery_id(&envelope) {
                prop_assert!(id.len() <= 200 && id.bytes().all(|b| b.is_ascii_graphic()));
            }
            if let Err(e) = Notification::parse(&envelope.data) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
        Ok(())
    });
}

// ----------------------------------------------------------- endpoints --

struct Webhook {
    store: Arc<dyn Store>,
    function: tollgate::functions::purchase_webhook::PurchaseWebhook,
}

const GH_SECRET: &str = "robustness-github";
const Q2_SECRET: &str = "robustness-q2";

/// GitHub's and Q2's routes on a fresh store (GitHub's only when `config`
/// sells on GitHub).
fn webhook(config: &str) -> Webhook {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().expect("store"));
    let app = if config.contains("[marketplaces.github]") {
        TestApp::new().secret(tollgate::marketplace::github::SECRET_NAME, GH_SECRET)
    } else {
        TestApp::new()
    };
    let function = app
        .config(config)
        .secret(tollgate::marketplace::q2::SECRET_NAME, Q2_SECRET)
        .store(Arc::clone(&store))
        .clock(Arc::new(FixedClock::new(
            Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0).unwrap(),
        )))
        .purchase_webhook()
        .expect("function");
    Webhook { store, function }
}

#[test]
fn github_webhook_answers_every_signed_mutation_with_a_decision_or_a_clear_4xx() {
    let rt = runtime();
    run(256, inputs(valid_github()), |body| {
        rt.block_on(async {
            let w = webhook(GITHUB_CONFIG);
            let a = send(
                &w.function,
                github_request(GH_SECRET, "marketplace_purchase", "d-1", &body),
            )
            .await;
            let now = Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0).unwrap();
            let recorded = w
                .store
                .delivery(Marketplace::Github, "d-1", now)
                .await
                .expect("read");
            match a.status {
                StatusCode::OK => {
                    let status = a.json["status"].as_str().unwrap_or_default();
                    prop_assert!(
                        ["applied", "stale", "ignored"].contains(&status),
                        "{}",
                        a.json
                    );
                }
                // Authentic but unreadable: kept pending for replay, by design.
                StatusCode::UNPROCESSABLE_ENTITY => {
                    assert_clear_error(&a)?;
                    prop_assert_eq!(a.error_code(), "unprocessable_payload");
                    prop_assert!(recorded.is_some_and(|d| d.body.as_deref() == Some(&body[..])));
                }
                // Not JSON: refused before anything is stored.
                StatusCode::BAD_REQUEST => {
                    assert_clear_error(&a)?;
                    prop_assert!(recorded.is_none(), "{:?}", recorded);
                }
                other => prop_assert!(false, "{}: {}", other, a.json),
            }
            Ok(())
        })
    });
}

#[test]
fn github_webhook_refuses_every_unsigned_or_missigned_body_and_stores_nothing() {
    let rt = runtime();
    run(
        128,
        (inputs(valid_github()), any::<bool>()),
        |(body, sign_other)| {
            rt.block_on(async {
                let w = webhook(GITHUB_CONFIG);
                let signed = serde_json::to_vec(&valid_github()).unwrap();
                // A signature of another body, or one with another secret.
                let mut req = if sign_other {
                    github_request(GH_SECRET, "marketplace_purchase", "d-1", &signed)
                } else {
                    github_request("not the secret", "marketplace_purchase", "d-1", &body)
                };
                *req.body_mut() = tollgate::web::Body::Binary(body.to_vec());
                if sign_other && *body == signed {
                    return Ok(());
                }
                let a = send(&w.function, req).await;
                prop_assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.json);
                assert_clear_error(&a)?;
                let now = Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0).unwrap();
                let pending = w
                    .store
                    .pending_deliveries(Marketplace::Github, now)
                    .await
                    .unwrap();
                prop_assert!(pending.is_empty());
                prop_assert!(
                    w.store
                        .get(&SubscriptionKey::new(Marketplace::Github, "42"))
                        .await
                        .unwrap()
                        .is_none()
                );
                Ok(())
            })
        },
    );
}

const Q2_CONFIG: &str = r#"
[products.bh]
[products.bh.tiers.standard]
features = ["BudgetHelper"]
[products.bh.tiers.premium]
features = ["BudgetHelper", "BudgetHelperReports"]
[products.bh.plans.q2]
STANDARD = "standard"
PREMIUM = "premium"
[products.bh.q2]
product_identifier = "bh-id"
extensions = ["BudgetHelper"]
max_users_per_institution = 2
"#;

/// Q2's error codes a mutated event may be answered with: never
/// `UNKNOWN_ERROR`, which is a failure of Tollgate's own.
const Q2_CODES: [&str; 7] = [
    "INVALID_RESPONSE",
    "CONFIGURATION_ERROR",
    "USER_ALREADY_EXISTS",
    "MAX_USERS_REACHED",
    "USER_NOT_FOUND",
    "ACCOUNT_NOT_FOUND",
    "DO_NOT_CANCEL",
];

#[test]
fn q2_route_answers_every_signed_mutation_with_success_or_a_q2_error_code() {
    let rt = runtime();
    let t = Utc
        .with_ymd_and_hms(2025, 1, 15, 12, 0, 0)
        .unwrap()
        .timestamp();
    run(256, inputs(valid_q2()), |body| {
        rt.block_on(async {
            let w = webhook(Q2_CONFIG);
            let a = send(&w.function, q2_request(Q2_SECRET, t, &body)).await;
            if a.status != StatusCode::OK {
                // The HTTP layer's refusals only (e.g. a body Q2 cannot send).
                prop_assert!(a.status.is_client_error(), "{}: {}", a.status, a.json);
                return assert_clear_error(&a);
            }
            if a.json["success"] == json!(true) {
                return Ok(());
            }
            let code = a.json["errorCode"].as_str().unwrap_or_default();
            prop_assert!(Q2_CODES.contains(&code), "{}", a.json);
            prop_assert!(!a.json["message"].as_str().unwrap_or_default().is_empty());
            if code == "INVALID_RESPONSE" {
                // Unreadable: answered from the bytes alone, nothing stored.
                let customer = CustomerKey::new(Marketplace::Q2, "CU:7");
                prop_assert!(
                    w.store
                        .customer_subscriptions(&customer)
                        .await
                        .unwrap()
                        .is_empty()
                );
                let key = SubscriptionKey::new(Marketplace::Q2, "sub-1");
                prop_assert!(w.store.log(&key).await.unwrap().is_empty());
            }
            Ok(())
        })
    });
}

/// A valid check request with everything optional filled in.
fn valid_check() -> Value {
    json!({"marketplace": "github", "customer_id": "42", "product": "acme-ci",
           "feature": "sso", "user": "u-1"})
}

#[test]
fn check_api_answers_every_mutated_request_with_a_decision_or_a_clear_4xx() {
    let rt = runtime();
    let w = webhook(GITHUB_CONFIG);
    // One subscription to decide on, so mutations reach the decision.
    rt.block_on(async {
        let body = serde_json::to_vec(&github_body(
            "purchased",
            42,
            GithubPlan::TEAM,
            2,
            Utc.with_ymd_and_hms(2025, 1, 10, 0, 0, 0).unwrap(),
        ))
        .unwrap();
        let a = send(
            &w.function,
            github_request(GH_SECRET, "marketplace_purchase", "p", &body),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    });
    let check = TestApp::new()
        .config(GITHUB_CONFIG)
        .store(Arc::clone(&w.store))
        .entitlement_check(Authenticator::new(vec![], true));
    run(512, inputs(valid_check()), |body| {
        rt.block_on(async {
            let mut req = check_request(&Value::Null);
            *req.body_mut() = tollgate::web::Body::Binary(body.to_vec());
            let a = send(&check, req).await;
            match a.status {
                StatusCode::OK => {
                    prop_assert!(a.json["allowed"].is_boolean(), "{}", a.json);
                    prop_assert!(a.json["reason"].is_string(), "{}", a.json);
                }
                s if s.is_client_error() => assert_clear_error(&a)?,
                s => prop_assert!(false, "{}: {}", s, a.json),
            }
            Ok(())
        })
    });
}

// ---------------------------------------------------------- arithmetic --

/// Extreme dates and unit counts in a signed GitHub payload: decided or
/// refused with a clear 4xx, never a panic or a 5xx, and the subscription
/// (if any) still readable.
#[test]
fn extreme_dates_and_unit_counts_in_github_payloads_are_handled() {
    let rt = runtime();
    let dates = [
        "+262143-12-31",
        "+262143-12-31T23:59:59Z",
        "-262144-01-01",
        "-262144-01-01T00:00:00Z",
        "9999-12-31T23:59:59+00:00",
        "9999-12-31T23:59:59-23:59",
        "0000-01-01T00:00:00+23:59",
        "0001-01-01",
        "1970-01-01T00:00:00Z",
    ];
    let units = [
        json!(0),
        json!(-1),
        json!(u32::MAX),
        json!(u64::MAX),
        json!(i64::MIN),
        serde_json::from_str::<Value>("1e300").unwrap(),
    ];
    rt.block_on(async {
        let mut n = 0;
        for (i, date) in dates.iter().enumerate() {
            for (j, unit) in units.iter().enumerate() {
                for field in ["effective_date", "free_trial_ends_on", "next_billing_date"] {
                    n += 1;
                    let w = webhook(GITHUB_CONFIG);
                    let mut v = valid_github();
                    v["marketplace_purchase"]["unit_count"] = unit.clone();
                    match field {
                        "effective_date" => v["effective_date"] = json!(date),
                        f => v["marketplace_purchase"][f] = json!(date),
                    }
                    if i % 2 == 1 {
                        v["marketplace_purchase"]["free_trial_ends_on"] = Value::Null;
                    }
                    let body = serde_json::to_vec(&v).unwrap();
                    let id = format!("x-{n}");
                    let a = send(
                        &w.function,
                        github_request(GH_SECRET, "marketplace_purchase", &id, &body),
                    )
                    .await;
                    assert!(
                        a.status == StatusCode::OK || a.status.is_client_error(),
                        "{date} units {unit} in {field} ({i},{j}): {} {}",
                        a.status,
                        a.json
                    );
                    if !a.status.is_success() {
                        assert!(!a.error_code().is_empty(), "{}", a.json);
                    }
                    w.store
                        .get(&SubscriptionKey::new(Marketplace::Github, "42"))
                        .await
                        .expect("the stored state is readable");
                }
            }
        }
    });
}
