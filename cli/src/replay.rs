//! `tollgate replay [--marketplace github]`: finishes deliveries that were
//! recorded but never processed.
//!
//! GitHub never retries a delivery, so `purchase-webhook` records each
//! verified delivery (raw body included) as pending before processing it. If
//! processing failed or timed out, the delivery is still pending; this
//! command runs each one through the same code the function uses
//! ([`Processor::process`]). No signature check: the body was verified when
//! it was recorded. A delivery processed in the meantime (e.g. redelivered
//! from the listing) is a no-op. Exits non-zero while any still fails.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tollgate::clock::{Clock, SystemClock};
use tollgate::marketplace::github::delivery::Processor;
use tollgate::model::Marketplace;
use tollgate::setup::Deps;
use tollgate::store::Store;

/// Generous: an operator is waiting, not GitHub.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub done: usize,
    pub failed: usize,
}

pub async fn run(args: &[String]) -> Result<(), String> {
    let marketplace: Marketplace = super::flag(args, "--marketplace")
        .unwrap_or("github")
        .parse()
        .map_err(|e| format!("{e}"))?;
    if marketplace != Marketplace::Github {
        return Err(format!(
            "replay covers github deliveries only ({marketplace}: Pub/Sub redelivers gcp messages itself; q2 events are answered synchronously)"
        ));
    }
    let deps = Deps::from_env().await.map_err(|e| e.to_string())?;
    let product = deps
        .catalog
        .product_for(Marketplace::Github, None)
        .ok_or("the config names no GitHub product: add `[marketplaces.github] product = \"...\"`")?
        .to_owned();
    let mut out = String::new();
    let summary = replay(deps.store, &product, &SystemClock, &mut out).await?;
    print!("{out}");
    if summary.failed > 0 {
        return Err(format!(
            "{} deliveries still pending; fix the cause and run `tollgate replay` again",
            summary.failed
        ));
    }
    Ok(())
}

/// Processes every pending GitHub delivery of `store`, oldest first,
/// writing one line per delivery to `out`.
pub async fn replay(
    store: Arc<dyn Store>,
    product: &str,
    clock: &dyn Clock,
    out: &mut String,
) -> Result<Summary, String> {
    let pending = store
        .pending_deliveries(Marketplace::Github, clock.now())
        .await
        .map_err(|e| format!("cannot list pending deliveries: {e}"))?;
    if pending.is_empty() {
        let _ = writeln!(out, "no pending github deliveries");
        return Ok(Summary::default());
    }
    let processor = Processor::new(store, product, PROCESS_TIMEOUT);
    let mut summary = Summary::default();
    for delivery in &pending {
        let head = format!(
            "{} {} ({}, received {})",
            delivery.marketplace,
            delivery.id,
            delivery.kind,
            delivery.received_at.to_rfc3339()
        );
        match processor.process(delivery, clock.now()).await {
            Ok(done) => {
                summary.done += 1;
                let _ = writeln!(
                    out,
                    "{head}: {} {} on {}: {}",
                    done.status(),
                    done.event.kind.name(),
                    done.event.subscription,
                    done.note()
                );
            }
            Err(e) => {
                summary.failed += 1;
                let kind = if e.is_transient() {
                    "retry later"
                } else {
                    "needs a fix"
                };
                let _ = writeln!(out, "{head}: FAILED ({kind}): {e}");
            }
        }
    }
    let _ = writeln!(
        out,
        "replayed {} deliveries: {} done, {} still pending",
        pending.len(),
        summary.done,
        summary.failed
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate::marketplace::github::delivery::pending_delivery;
    use tollgate::store::sqlite::SqliteStore;

    const PURCHASE: &[u8] = br#"{"action":"purchased","effective_date":"2026-03-01T00:00:00+00:00",
        "marketplace_purchase":{"account":{"type":"Organization","id":42,"login":"acme"},
        "billing_cycle":"monthly","unit_count":3,"on_free_trial":false,
        "plan":{"id":435,"name":"Team","price_model":"PER_UNIT"}}}"#;

    #[tokio::test]
    async fn pending_deliveries_are_processed_and_failures_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
        let now = SystemClock.now();
        let good = pending_delivery("d-good", "marketplace_purchase", PURCHASE, now);
        let broken = pending_delivery(
            "d-broken",
            "marketplace_purchase",
            b"{\"action\":\"purchased\"}",
            now,
        );
        store.record_delivery(&good).await.unwrap();
        store.record_delivery(&broken).await.unwrap();

        let mut out = String::new();
        let summary = replay(Arc::clone(&store), "acme-ci", &SystemClock, &mut out)
            .await
            .unwrap();
        assert_eq!(summary, Summary { done: 1, failed: 1 }, "{out}");
        assert!(
            out.contains("d-good") && out.contains("applied purchased on github:42"),
            "{out}"
        );
        assert!(
            out.contains("d-broken") && out.contains("FAILED (needs a fix)"),
            "{out}"
        );

        // The good one is done; only the broken one is left.
        let mut again = String::new();
        let summary = replay(Arc::clone(&store), "acme-ci", &SystemClock, &mut again)
            .await
            .unwrap();
        assert_eq!(summary, Summary { done: 0, failed: 1 }, "{again}");
    }

    #[tokio::test]
    async fn nothing_pending_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
        let mut out = String::new();
        assert_eq!(
            replay(store, "acme-ci", &SystemClock, &mut out).await,
            Ok(Summary::default())
        );
        assert_eq!(out, "no pending github deliveries\n");
    }
}
