//! Reconciliation with the marketplaces: read what each marketplace says
//! every subscription is, compare it with what is stored
//! ([`tollgate_core::reconcile::compare`], pure), and commit the events that
//! fix drift through the same ingest path as a delivery (so the same rules
//! decide, and the log says `reconcile:…` as the event id). Run by
//! `tollgate reconcile` and by purchase-webhook on its schedule.
//!
//! One run, per marketplace:
//!
//! 1. replay the deliveries left pending, for a record-first marketplace
//!    (GitHub): they are real events and go first, so the comparison sees
//!    them; then report how many are still pending and the oldest one's age
//!    (the `pending_deliveries` log metric the alarm reads);
//! 2. walk the marketplace's listing page by page, comparing each entry
//!    with the stored subscription ([`github`], [`gcp`]);
//! 3. when the whole listing was read, walk the stored subscriptions the
//!    listing did not name, and ask the marketplace about each one that is
//!    not cancelled (GitHub `GET /marketplace_listing/accounts/{id}`, Google
//!    `entitlements.get`): only a 404 there counts as gone.
//!
//! Where the marketplace waits for the provider (Google: an order or a plan
//! change awaiting approval, whose push was lost), the run carries out the
//! same follow-up a push would have ([`gcp`]) and reports it.
//!
//! A failing marketplace call is reported and the run goes on with the
//! next plan or marketplace. With `dry_run` nothing is written, replayed or
//! approved: drift is counted as "would fix", follow-ups as "would do".

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tollgate_core::reconcile::{Snapshot, Subject, Verdict, compare};

use crate::clock::Clock;
use crate::ingest::apply::{Ingested, ingest_marked};
use crate::ingest::replay::{ReplayRunError, Replayer, replay_pending};
use crate::model::{Disposition, Marketplace, Status, Subscription, SubscriptionKey};
use crate::store::{Deliveries, EventLedger, Inventory, StoreError};

pub mod gcp;
pub mod github;

pub use tollgate_core::reconcile::{EVENT_ID_PREFIX, LISTING_LAG, day_of, is_reconcile_event};

/// The store roles a run uses: read and commit states, walk the stored
/// keys, list and finish pending deliveries.
#[derive(Clone)]
pub struct Stores {
    pub ledger: Arc<dyn EventLedger>,
    pub inventory: Arc<dyn Inventory>,
    pub deliveries: Arc<dyn Deliveries>,
}

/// A marketplace as reconciliation reads it.
pub enum Source {
    Github(github::GithubSource),
    Gcp(gcp::GcpSource),
}

impl Source {
    pub fn marketplace(&self) -> Marketplace {
        match self {
            Source::Github(_) => Marketplace::Github,
            Source::Gcp(_) => Marketplace::Gcp,
        }
    }
}

/// One marketplace to reconcile: where to read it, and (record-first
/// marketplaces) how to finish its pending deliveries. `source` is an
/// error when the marketplace is configured but cannot be read (missing
/// credentials): reported as the marketplace's failure, never skipped.
pub struct Target {
    pub marketplace: Marketplace,
    pub source: Result<Source, String>,
    pub replayer: Option<Box<dyn Replayer>>,
}

/// What happened to one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    InSync,
    /// Drift fixed: the events were committed.
    Fixed {
        differences: String,
    },
    /// Drift found in a dry run: nothing written.
    WouldFix {
        differences: String,
    },
    /// Drift the snapshot cannot vouch for (newer local state); left alone.
    Held {
        differences: String,
        reason: String,
    },
    /// The comparison or the commit failed.
    Failed {
        message: String,
    },
}

/// What a run reports as it goes, for progress output.
#[derive(Debug)]
pub enum Progress<'a> {
    Subscription {
        key: &'a SubscriptionKey,
        outcome: &'a Outcome,
    },
    /// A marketplace call (or the store) failed; the run goes on.
    Failure {
        marketplace: Marketplace,
        message: &'a str,
    },
    /// A pending delivery was replayed.
    Replayed {
        marketplace: Marketplace,
        delivery: &'a str,
        result: Result<&'a str, &'a str>,
    },
    /// Something the marketplace waited for from the provider was carried
    /// out (or would have been, in a dry run).
    FollowUp {
        key: &'a SubscriptionKey,
        follow_up: &'a FollowUpReport,
    },
}

/// A follow-up the marketplace waited for (Google: approve an order or a
/// plan change) and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUpReport {
    /// `gcp:<entitlement id>`.
    pub subscription: String,
    /// What it is: `approve the order`, `approve the plan change to …`.
    pub action: String,
    pub result: FollowUpResult,
    /// Why it failed (never a token or a payload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What came of a follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpResult {
    /// The marketplace accepted the call.
    Done,
    /// A dry run: not attempted.
    WouldDo,
    /// The marketplace refused because of the resource's state (already
    /// settled): nothing left to do.
    Settled,
    /// The call failed; the next run tries again.
    Failed,
}

/// Per marketplace: what was checked and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketplaceReport {
    pub marketplace: Marketplace,
    pub checked: usize,
    pub in_sync: usize,
    pub fixed: usize,
    pub would_fix: usize,
    pub held: usize,
    /// Subscriptions whose check or fix failed, plus failed marketplace
    /// calls and replays.
    pub errors: usize,
    /// The failures' messages (never a token or a payload).
    pub failures: Vec<String>,
    pub pending: PendingReport,
    /// Follow-ups carried out at the marketplace (or, in a dry run, that
    /// would have been); a failed one also counts in `errors`.
    pub follow_ups: Vec<FollowUpReport>,
}

impl MarketplaceReport {
    fn follow_ups_with(&self, result: FollowUpResult) -> usize {
        self.follow_ups
            .iter()
            .filter(|f| f.result == result)
            .count()
    }
}

/// Deliveries left pending, after the replay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PendingReport {
    pub replayed: usize,
    /// Replays that failed (still pending).
    pub replay_failed: usize,
    /// Still pending now.
    pub pending: usize,
    /// Seconds since the oldest still-pending delivery was received (0: none).
    pub oldest_age_s: i64,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub started_at: DateTime<Utc>,
    pub dry_run: bool,
    pub marketplaces: Vec<MarketplaceReport>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.marketplaces.iter().map(|m| m.errors).sum()
    }

    pub fn would_fix(&self) -> usize {
        self.marketplaces.iter().map(|m| m.would_fix).sum()
    }

    /// Follow-ups a dry run found waiting (approvals it did not make).
    pub fn would_follow_up(&self) -> usize {
        self.marketplaces
            .iter()
            .map(|m| m.follow_ups_with(FollowUpResult::WouldDo))
            .sum()
    }

    /// One line: `reconciled github, gcp: 12 checked, 10 in sync, 1 fixed,
    /// 0 would fix, 1 held, 0 errors; 0 deliveries pending`, then
    /// `; follow-ups: 1 done, 0 would do` when the run found any.
    pub fn summary(&self) -> String {
        let sum =
            |f: fn(&MarketplaceReport) -> usize| -> usize { self.marketplaces.iter().map(f).sum() };
        let names: Vec<&str> = self
            .marketplaces
            .iter()
            .map(|m| m.marketplace.as_str())
            .collect();
        let follow_ups: usize = sum(|m| m.follow_ups.len());
        let follow_ups = if follow_ups == 0 {
            String::new()
        } else {
            format!(
                "; follow-ups: {} done, {} would do",
                sum(|m| m.follow_ups_with(FollowUpResult::Done)),
                sum(|m| m.follow_ups_with(FollowUpResult::WouldDo)),
            )
        };
        format!(
            "{}reconciled {}: {} checked, {} in sync, {} fixed, {} would fix, {} held, {} errors; {} deliveries pending{follow_ups}",
            if self.dry_run { "dry run: " } else { "" },
            if names.is_empty() {
                "nothing".to_owned()
            } else {
                names.join(", ")
            },
            sum(|m| m.checked),
            sum(|m| m.in_sync),
            sum(|m| m.fixed),
            sum(|m| m.would_fix),
            sum(|m| m.held),
            sum(|m| m.errors),
            sum(|m| m.pending.pending),
        )
    }
}

impl MarketplaceReport {
    fn new(marketplace: Marketplace) -> Self {
        Self {
            marketplace,
            checked: 0,
            in_sync: 0,
            fixed: 0,
            would_fix: 0,
            held: 0,
            errors: 0,
            failures: Vec::new(),
            pending: PendingReport::default(),
            follow_ups: Vec::new(),
        }
    }

    fn count(&mut self, outcome: &Outcome) {
        self.checked += 1;
        match outcome {
            Outcome::InSync => self.in_sync += 1,
            Outcome::Fixed { .. } => self.fixed += 1,
            Outcome::WouldFix { .. } => self.would_fix += 1,
            Outcome::Held { .. } => self.held += 1,
            Outcome::Failed { .. } => self.errors += 1,
        }
    }
}

/// Why a run could not compare one subscription.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// What every check of a run reads: stores, clock, mode. Kept apart from
/// the progress sink, which need not be shareable across threads.
pub(crate) struct Ctx<'a> {
    pub stores: &'a Stores,
    pub clock: &'a dyn Clock,
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
}

/// One marketplace's run: its context, the progress sink, its report.
pub(crate) struct Run<'a> {
    pub ctx: Ctx<'a>,
    pub progress: &'a mut (dyn FnMut(&Progress<'_>) + Send),
    pub report: MarketplaceReport,
}

impl Run<'_> {
    /// Compares one subscription with `snapshot` and fixes the drift;
    /// returns what came of it.
    pub async fn check(
        &mut self,
        key: &SubscriptionKey,
        product: &str,
        snapshot: &Snapshot,
    ) -> Outcome {
        let outcome = match self.ctx.check_one(key, product, snapshot).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed {
                message: e.to_string(),
            },
        };
        if let Outcome::Failed { message } = &outcome {
            self.report.failures.push(format!("{key}: {message}"));
        }
        self.report.count(&outcome);
        (self.progress)(&Progress::Subscription {
            key,
            outcome: &outcome,
        });
        outcome
    }

    /// Carries out a follow-up the marketplace waits for, unless this is a
    /// dry run (then `execute` is dropped unpolled: nothing is called), and
    /// reports it.
    pub async fn follow_up(
        &mut self,
        key: &SubscriptionKey,
        action: String,
        execute: impl Future<Output = Result<FollowUpResult, String>>,
    ) {
        let (result, message) = if self.ctx.dry_run {
            (FollowUpResult::WouldDo, None)
        } else {
            match execute.await {
                Ok(result) => (result, None),
                Err(message) => (FollowUpResult::Failed, Some(message)),
            }
        };
        if let Some(message) = &message {
            self.report.errors += 1;
            self.report
                .failures
                .push(format!("{key}: {action}: {message}"));
        }
        let follow_up = FollowUpReport {
            subscription: key.to_string(),
            action,
            result,
            message,
        };
        tracing::info!(
            source = "reconcile",
            subscription = %key,
            action = %follow_up.action,
            result = ?follow_up.result,
            "reconcile follow-up"
        );
        (self.progress)(&Progress::FollowUp {
            key,
            follow_up: &follow_up,
        });
        self.report.follow_ups.push(follow_up);
    }

    pub fn fail(&mut self, message: String) {
        (self.progress)(&Progress::Failure {
            marketplace: self.report.marketplace,
            message: &message,
        });
        self.report.errors += 1;
        self.report.failures.push(message);
    }

    /// The stored subscriptions of the marketplace the listing did not
    /// name, not cancelled: the ones to ask about one by one.
    pub async fn unlisted(
        &mut self,
        marketplace: Marketplace,
        listed: &HashSet<String>,
        max_pages: usize,
    ) -> Vec<Subscription> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..max_pages.max(1) {
            let page = match self
                .ctx
                .stores
                .inventory
                .subscription_keys(marketplace, cursor.as_deref())
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    self.fail(format!("listing stored {marketplace} subscriptions: {e}"));
                    return out;
                }
            };
            for key in page.keys {
                // `_…` ids are logs of things that are not subscriptions
                // (GitHub's unrouted deliveries, Google's accounts).
                if key.id.starts_with('_') || listed.contains(&key.id) {
                    continue;
                }
                match self.ctx.stores.ledger.get(&key).await {
                    Ok(Some(sub)) if sub.status != Status::Cancelled => out.push(sub),
                    Ok(_) => {}
                    Err(e) => self.fail(format!("{key}: store: {e}")),
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return out,
            }
        }
        self.fail(format!(
            "stored {marketplace} subscriptions: more than {max_pages} pages; stopped"
        ));
        out
    }
}

impl Ctx<'_> {
    async fn check_one(
        &self,
        key: &SubscriptionKey,
        product: &str,
        snapshot: &Snapshot,
    ) -> Result<Outcome, CheckError> {
        let stored = self.stores.ledger.get(key).await?;
        let taken_at = self.clock.now();
        let subject = Subject {
            key,
            product,
            stored: stored.as_ref(),
        };
        let (events, differences) = match compare(subject, snapshot, taken_at, self.started_at) {
            Verdict::InSync => return Ok(Outcome::InSync),
            Verdict::Held {
                differences,
                reason,
            } => {
                return Ok(Outcome::Held {
                    differences,
                    reason,
                });
            }
            Verdict::Drift {
                events,
                differences,
            } => (events, differences),
        };
        if self.dry_run {
            return Ok(Outcome::WouldFix { differences });
        }
        // No delivery mark: there is no delivery; the rules (and the
        // version check of each commit) decide again on the fresh state.
        let mut applied = false;
        let mut note = String::new();
        for event in &events {
            if let Ingested::Committed(outcome) =
                ingest_marked(&*self.stores.ledger, event, None, self.clock.now()).await?
            {
                applied |= outcome.disposition() == Disposition::Applied;
                note = outcome.log.note;
            }
        }
        tracing::info!(
            source = "reconcile",
            subscription = %key,
            differences = %differences,
            applied,
            "reconcile drift"
        );
        Ok(if applied {
            Outcome::Fixed { differences }
        } else {
            // Something newer was committed between the read and the write.
            Outcome::Held {
                differences,
                reason: note,
            }
        })
    }
}

/// How many pages of stored keys a run walks at most (500 keys a page on
/// SQLite, up to 1 MB read a page on DynamoDB).
const MAX_INVENTORY_PAGES: usize = 10_000;

/// Reconciles every target in turn and reports. `progress` sees each
/// subscription, failure and replay as it happens.
pub async fn reconcile(
    targets: &[Target],
    stores: &Stores,
    clock: &dyn Clock,
    dry_run: bool,
    mut progress: impl FnMut(&Progress<'_>) + Send,
) -> Report {
    let started_at = clock.now();
    let mut reports = Vec::new();
    for target in targets {
        let mut run = Run {
            ctx: Ctx {
                stores,
                clock,
                dry_run,
                started_at,
            },
            progress: &mut progress,
            report: MarketplaceReport::new(target.marketplace),
        };
        if let Some(replayer) = &target.replayer {
            replay(&mut run, &**replayer).await;
        }
        match &target.source {
            Ok(Source::Github(source)) => source.reconcile(&mut run).await,
            Ok(Source::Gcp(source)) => source.reconcile(&mut run).await,
            Err(why) => run.fail(format!("{}: {why}", target.marketplace)),
        }
        pending(&mut run, target.marketplace).await;
        let report = run.report;
        tracing::info!(
            metric = "reconcile",
            source = "reconcile",
            marketplace = target.marketplace.as_str(),
            dry_run,
            checked = report.checked,
            in_sync = report.in_sync,
            fixed = report.fixed,
            would_fix = report.would_fix,
            held = report.held,
            errors = report.errors,
            "reconcile run"
        );
        reports.push(report);
    }
    Report {
        started_at,
        dry_run,
        marketplaces: reports,
    }
}

/// Step 1: finishes the marketplace's pending deliveries (not in a dry run).
async fn replay(run: &mut Run<'_>, replayer: &dyn Replayer) {
    if run.ctx.dry_run {
        return;
    }
    let marketplace = replayer.marketplace();
    let mut lines = Vec::new();
    let result = replay_pending(replayer, &*run.ctx.stores.deliveries, run.ctx.clock, |r| {
        let result = match &r.result {
            Ok(done) => Ok(done.note().to_owned()),
            Err(e) => Err(e.to_string()),
        };
        lines.push((r.delivery.id.clone(), result));
    })
    .await;
    for (id, result) in &lines {
        (run.progress)(&Progress::Replayed {
            marketplace,
            delivery: id,
            result: result.as_deref().map_err(String::as_str),
        });
        if let Err(e) = result {
            run.report.failures.push(format!("replay of {id}: {e}"));
        }
    }
    match result {
        Ok(summary) => {
            run.report.pending.replayed = summary.done + summary.failed;
            run.report.pending.replay_failed = summary.failed;
            run.report.errors += summary.failed;
        }
        Err(ReplayRunError::NotReplayable { .. }) => {}
        Err(e @ ReplayRunError::List(_)) => run.fail(format!("replay: {e}")),
    }
}

/// After the run: how many deliveries are still pending and since when,
/// logged as the `pending_deliveries` metric the alarms read.
async fn pending(run: &mut Run<'_>, marketplace: Marketplace) {
    let now = run.ctx.clock.now();
    match run
        .ctx
        .stores
        .deliveries
        .pending_deliveries(marketplace, now)
        .await
    {
        Ok(pending) => {
            let oldest_age_s = pending
                .iter()
                .map(|d| (now - d.received_at).num_seconds().max(0))
                .max()
                .unwrap_or(0);
            run.report.pending.pending = pending.len();
            run.report.pending.oldest_age_s = oldest_age_s;
            tracing::info!(
                metric = "pending_deliveries",
                marketplace = marketplace.as_str(),
                pending = pending.len(),
                oldest_age_s,
                "pending deliveries"
            );
        }
        Err(e) => run.fail(format!("listing pending {marketplace} deliveries: {e}")),
    }
}
