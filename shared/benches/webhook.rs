//! GitHub webhook CPU budgets (README "Budgets, measured"), on GitHub's public example payloads
//! (`tests/fixtures/github/octokit-*.json`, from `@octokit/webhooks-examples`):
//!
//! - `webhook/verify_parse/*`: HMAC-SHA256 signature check over the raw body
//!   plus the typed parse, as purchase-webhook does it: with the secret's
//!   key prepared once at cold start (`HmacKey`).
//! - `webhook/verify_parse_rules/*`: the same plus normalization and
//!   `rules::apply` against a current state — budget ≤ 10 µs per event.
//! - `webhook/verify/*`, `webhook/parse/*`: the two halves on their own.
//! - The bare references (a bare HMAC plus a typed `serde_json` parse of
//!   the same fields) are measured by `make bench` itself, interleaved with
//!   Tollgate's verify + parse (`tests/benches/functions.rs`), so the ratio
//!   does not depend on drift between benchmarks run minutes apart.

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

fn bench(c: &mut Criterion) {
    let received = Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0).unwrap();
    let now = received;
    let key = HmacKey::new(SECRET);
    let verify = |body: &[u8], header: &str| verify_any([&key], body, Some(header));
    for (name, body) in fixtures() {
        let header = sign(SECRET, &body);
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
