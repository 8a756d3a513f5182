//! `tollgate replay [--marketplace github] [--json]`: finishes deliveries
//! that were recorded but never processed.
//!
//! GitHub never retries a delivery, so `purchase-webhook` records each
//! verified delivery (raw body included) as pending before processing it. If
//! processing failed or timed out, the delivery is still pending; this
//! command runs each one through the same pipeline the function uses
//! (`tollgate::functions::replayer`). No signature check: the body was verified when
//! it was recorded. A delivery processed in the meantime (e.g. redelivered
//! from the listing) is a no-op.
//!
//! Prints one line per delivery, then a summary line (with `--json`: the
//! per-delivery lines go to stderr and stdout gets one JSON summary). Exits
//! non-zero while any delivery still fails.

use std::io::Write;
use std::time::Duration;

use tollgate::clock::{Clock, SystemClock};
use tollgate::ingest::replay::{Replayer, replay_pending};
use tollgate::model::Marketplace;
use tollgate::setup::Deps;
use tollgate::store::Deliveries;

use crate::args::{self, Json};

/// Generous: an operator is waiting, not GitHub.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
#[command(
    after_help = "GitHub never retries a delivery: purchase-webhook records each \
verified one before processing it,\nand this runs the ones still pending through the same code. \
Exits non-zero while any still fails.\nReads TOLLGATE_CONFIG, TOLLGATE_STORE and TOLLGATE_SECRETS."
)]
pub struct Args {
    /// Whose deliveries to replay (only github records deliveries to replay)
    #[arg(long, value_enum, default_value_t = args::Marketplace::Github)]
    pub marketplace: args::Marketplace,
    #[command(flatten)]
    pub json: Json,
}

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub done: usize,
    pub failed: usize,
}

impl Summary {
    /// The `--json` form: `{"marketplace":…,"replayed":…,"done":…,"failed":…}`.
    pub fn to_json(&self, marketplace: Marketplace) -> serde_json::Value {
        serde_json::json!({
            "marketplace": marketplace.as_str(),
            "replayed": self.done + self.failed,
            "done": self.done,
            "failed": self.failed,
        })
    }

    /// The command's result: an error (exit 1) while any delivery still fails.
    pub fn outcome(&self) -> Result<(), String> {
        if self.failed > 0 {
            return Err(format!(
                "{} deliveries still pending; fix the cause and run `tollgate replay` again",
                self.failed
            ));
        }
        Ok(())
    }
}

pub async fn run(args: Args) -> Result<(), String> {
    let marketplace = Marketplace::from(args.marketplace);
    if marketplace != Marketplace::Github {
        // Refused before anything is read (no config or store needed).
        let reason = match marketplace {
            Marketplace::Gcp => "Pub/Sub redelivers gcp messages itself",
            _ => "q2 events are answered synchronously",
        };
        return Err(format!(
            "replay covers record-first marketplaces only ({marketplace}: {reason})"
        ));
    }
    let deps = Deps::from_env().await.map_err(|e| e.to_string())?;
    let replayer = tollgate::functions::replayer(marketplace, &deps, PROCESS_TIMEOUT)
        .map_err(|e| e.to_string())?;
    // Progress as it happens: one line per delivery (stderr with --json).
    let summary = if args.json.json {
        replay(
            &*replayer,
            &*deps.store,
            &SystemClock,
            &mut std::io::stderr(),
        )
        .await?
    } else {
        replay(
            &*replayer,
            &*deps.store,
            &SystemClock,
            &mut std::io::stdout(),
        )
        .await?
    };
    if args.json.json {
        println!("{}", summary.to_json(marketplace));
    }
    summary.outcome()
}

/// Finishes every pending delivery of `replayer`'s marketplace, oldest
/// first, writing one line per delivery to `out` as it goes, then a summary.
pub async fn replay(
    replayer: &dyn Replayer,
    deliveries: &dyn Deliveries,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<Summary, String> {
    let marketplace = replayer.marketplace();
    let mut seen = 0usize;
    let summary = replay_pending(replayer, deliveries, clock, |r| {
        seen += 1;
        let d = r.delivery;
        let head = format!(
            "{} {} ({}, received {})",
            d.marketplace,
            d.id,
            d.kind,
            d.received_at.to_rfc3339()
        );
        let _ = match &r.result {
            Ok(done) => writeln!(
                out,
                "{head}: {} {} on {}: {}",
                done.status().as_str(),
                done.event.kind.name(),
                done.event.subscription,
                done.note()
            ),
            Err(e) => {
                let kind = if e.transient {
                    "retry later"
                } else {
                    "needs a fix"
                };
                writeln!(out, "{head}: FAILED ({kind}): {e}")
            }
        };
    })
    .await
    .map_err(|e| e.to_string())?;
    let _ = if seen == 0 {
        writeln!(out, "no pending {marketplace} deliveries")
    } else {
        writeln!(
            out,
            "replayed {seen} deliveries: {} done, {} still pending",
            summary.done, summary.failed
        )
    };
    Ok(Summary {
        done: summary.done,
        failed: summary.failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tollgate::ingest::pending_delivery;
    use tollgate::marketplace::github::SECRET_NAME;
    use tollgate::store::Store;
    use tollgate::store::sqlite::SqliteStore;
    use tollgate::testing::TestApp;

    const CONFIG: &str =
        "[products.acme-ci.tiers.team]\n[marketplaces.github]\nproduct = \"acme-ci\"\n";

    fn github(store: &Arc<dyn Store>) -> Box<dyn Replayer> {
        let deps = TestApp::new()
            .config(CONFIG)
            .secret(SECRET_NAME, "s")
            .store(Arc::clone(store))
            .deps();
        tollgate::functions::replayer(Marketplace::Github, &deps, PROCESS_TIMEOUT).unwrap()
    }

    async fn run_replay(store: &Arc<dyn Store>) -> (Summary, String) {
        let mut out = Vec::new();
        let summary = replay(&*github(store), &**store, &SystemClock, &mut out)
            .await
            .unwrap();
        (summary, String::from_utf8(out).unwrap())
    }

    const PURCHASE: &[u8] = br#"{"action":"purchased","effective_date":"2026-03-01T00:00:00+00:00",
        "marketplace_purchase":{"account":{"type":"Organization","id":42,"login":"acme"},
        "billing_cycle":"monthly","unit_count":3,"on_free_trial":false,
        "plan":{"id":435,"name":"Team","price_model":"PER_UNIT"}}}"#;

    #[tokio::test]
    async fn pending_deliveries_are_processed_and_failures_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
        let now = SystemClock.now();
        let good = pending_delivery(
            Marketplace::Github,
            "d-good",
            "marketplace_purchase",
            PURCHASE,
            now,
        );
        let broken = pending_delivery(
            Marketplace::Github,
            "d-broken",
            "marketplace_purchase",
            b"{\"action\":\"purchased\"}",
            now,
        );
        store.record_delivery(&good).await.unwrap();
        store.record_delivery(&broken).await.unwrap();

        let (summary, out) = run_replay(&store).await;
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
        let (summary, again) = run_replay(&store).await;
        assert_eq!(summary, Summary { done: 0, failed: 1 }, "{again}");
        assert!(
            again
                .lines()
                .last()
                .is_some_and(|l| l == "replayed 1 deliveries: 0 done, 1 still pending"),
            "{again}"
        );
        assert!(
            summary
                .outcome()
                .unwrap_err()
                .contains("1 deliveries still pending")
        );
        assert_eq!(
            summary.to_json(Marketplace::Github),
            serde_json::json!({"marketplace": "github", "replayed": 1, "done": 0, "failed": 1})
        );
    }

    #[tokio::test]
    async fn nothing_pending_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
        let (summary, out) = run_replay(&store).await;
        assert_eq!(summary, Summary::default());
        assert_eq!(out, "no pending github deliveries\n");
        assert_eq!(Summary::default().outcome(), Ok(()));
    }
}
