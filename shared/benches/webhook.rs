//! GitHub webhook CPU budgets (README "Budgets, measured"), on GitHub's public example payloads
//! (`tests/fixtures/github/octokit-*.json`, from `@octokit/webhooks-examples`):
//!
//! - `webhook/verify_parse/*`: HMAC-SHA256 signature check over the raw body
//!   plus the typed parse, as purchase-webhook does it: with the secret's
//!   key prepared once at cold start (`HmacKey`).
//! - `webhook/verify_parse_rules/*`: the same plus normalization and
//!   `rules::apply` against a current state — budget ≤ 10 µs per event.
//! - `webhook/verify/*`, `webhook/parse/*`: the two halves on their own.
//! - `webhook/baseline_*_hmac_serde/*`: the references — a bare HMAC check
//!   (RustCrypto `hmac`, or aws-lc-rs) plus a typed `serde_json` parse of the
//!   same fields into owned strings — so results read relative to this
//!   machine. `baseline_awslc_prepared_hmac_serde` prepares its key once,
//!   as the function does; `make bench` holds verify + parse to the fastest.

use std::hint::black_box;
use std::path::Path;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use tollgate::marketplace::github::signature::{sign, verify_any};
use tollgate::marketplace::github::webhook::{DeliveryInfo, normalize, parse};
use tollgate::marketplace::signing::HmacKey;
use tollgate::model::{EventKind, MarketEvent, Plan, PlanTerms, PriceModel};
use tollgate::rules;

const SECRET: &[u8] = b"bench-secret-of-a-realistic-length-0123456789";

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/github");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("octokit-") && n.ends_with(".json"))
        })
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("fixture"))
        })
        .collect();
    out.sort();
    assert!(
        !out.is_empty(),
        "no octokit fixtures found in {}",
        dir.display()
    );
    out
}

/// The reference: just enough typed fields to act on, owned strings.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct BarePayload {
    action: String,
    effective_date: String,
    marketplace_purchase: BarePurchase,
    previous_marketplace_purchase: Option<BarePurchase>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct BarePurchase {
    account: BareAccount,
    billing_cycle: Option<String>,
    unit_count: Option<u64>,
    on_free_trial: Option<bool>,
    free_trial_ends_on: Option<String>,
    next_billing_date: Option<String>,
    plan: BarePlan,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct BareAccount {
    #[serde(rename = "type")]
    kind: String,
    id: u64,
    login: String,
    organization_billing_email: Option<String>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct BarePlan {
    id: u64,
    name: String,
    price_model: String,
}

fn bare_hmac_serde(body: &[u8], header: &str) -> BarePayload {
    use hmac::{KeyInit, Mac};
    let expected = hex::decode(header.strip_prefix("sha256=").unwrap()).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(body);
    mac.verify_slice(&expected).unwrap();
    serde_json::from_slice(body).unwrap()
}

/// The same reference with aws-lc-rs's HMAC, the other backend linked into
/// the functions (rustls, jsonwebtoken): the faster of the two on this
/// machine is the reference `make bench` holds the budget to.
fn bare_awslc_hmac_serde(body: &[u8], header: &str) -> BarePayload {
    use aws_lc_rs::hmac;
    let expected = hex::decode(header.strip_prefix("sha256=").unwrap()).unwrap();
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
    hmac::verify(&key, body, &expected).unwrap();
    serde_json::from_slice(body).unwrap()
}

/// The aws-lc-rs reference with its key prepared once, outside the loop.
fn bare_awslc_prepared_hmac_serde(
    key: &aws_lc_rs::hmac::Key,
    body: &[u8],
    header: &str,
) -> BarePayload {
    let expected = hex::decode(header.strip_prefix("sha256=").unwrap()).unwrap();
    aws_lc_rs::hmac::verify(key, body, &expected).unwrap();
    serde_json::from_slice(body).unwrap()
}

fn bench(c: &mut Criterion) {
    let received = Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0).unwrap();
    let now = received;
    let bare_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let key = HmacKey::new(SECRET);
    let verify = |body: &[u8], header: &str| verify_any([&key], body, Some(header));
    for (name, body) in fixtures() {
        let header = sign(SECRET, &body);
        c.bench_function(&format!("webhook/baseline_bare_hmac_serde/{name}"), |b| {
            b.iter(|| black_box(bare_hmac_serde(black_box(&body), black_box(&header))))
        });
        c.bench_function(&format!("webhook/baseline_awslc_hmac_serde/{name}"), |b| {
            b.iter(|| black_box(bare_awslc_hmac_serde(black_box(&body), black_box(&header))))
        });
        c.bench_function(
            &format!("webhook/baseline_awslc_prepared_hmac_serde/{name}"),
            |b| {
                b.iter(|| {
                    black_box(bare_awslc_prepared_hmac_serde(
                        &bare_key,
                        black_box(&body),
                        black_box(&header),
                    ))
                })
            },
        );
        c.bench_function(&format!("webhook/verify/{name}"), |b| {
            b.iter(|| verify(black_box(&body), black_box(&header)).unwrap())
        });
        c.bench_function(&format!("webhook/parse/{name}"), |b| {
            b.iter(|| black_box(parse(black_box(&body)).unwrap()))
        });
        c.bench_function(&format!("webhook/verify_parse/{name}"), |b| {
            b.iter(|| {
                verify(black_box(&body), black_box(&header)).unwrap();
                black_box(parse(black_box(&body)).unwrap());
            })
        });

        // A realistic current state: the account already holds a subscription
        // bought the day before the example's effective date.
        let parsed = parse(&body).unwrap();
        let first = normalize(
            &parsed,
            DeliveryInfo {
                id: "d0",
                received_at: received,
            },
            "acme-ci",
        );
        let purchase = MarketEvent {
            id: "earlier".into(),
            effective_at: first.effective_at - chrono::Duration::days(1),
            kind: EventKind::Purchased {
                terms: PlanTerms {
                    seats: Some(1),
                    ..PlanTerms::new(Plan {
                        id: "1".into(),
                        name: None,
                        price_model: Some(PriceModel::PerUnit),
                    })
                },
                awaiting: None,
            },
            ..first
        };
        let current = rules::apply(None, &purchase, now)
            .next
            .expect("purchase applies");
        c.bench_function(&format!("webhook/verify_parse_rules/{name}"), |b| {
            b.iter(|| {
                verify(black_box(&body), black_box(&header)).unwrap();
                let event = parse(black_box(&body)).unwrap();
                let delivery = DeliveryInfo {
                    id: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                    received_at: received,
                };
                let normalized = normalize(&event, delivery, "acme-ci");
                black_box(rules::apply(Some(black_box(&current)), &normalized, now));
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
