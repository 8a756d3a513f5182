//! `tollgate reconcile [--marketplace github|gcp] [--dry-run] [--json]`:
//! compares every subscription with what its marketplace says now, fixes
//! drift through the same rules as a delivery (log entries with event ids
//! `reconcile:…`), and replays GitHub's pending deliveries first
//! (`tollgate::reconcile`). purchase-webhook runs the same on its schedule.
//!
//! Prints a line per subscription that was not in sync (fixed, would fix,
//! held, failed), per failed marketplace call and per replayed delivery as
//! it goes, then one summary line. With `--json` those lines go to stderr
//! and stdout gets the report as one JSON object.
//!
//! Google entitlements waiting for the provider's approval (their push was
//! lost) are approved as a push would have had them approved, one line
//! each (`gcp:<id>: done: approve the order`); `--dry-run` approves
//! nothing (`would approve the order`).
//!
//! Exit codes: 0 in sync or every drift fixed; 1 an error (a marketplace
//! call, a commit, a replay or an approval failed, or the setup is
//! incomplete) — the rest of the run still happened; 2 usage; 3
//! `--dry-run` found drift or an approval waiting.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tollgate::clock::{Clock, SystemClock};
use tollgate::model::Marketplace;
use tollgate::reconcile::{FollowUpResult, Outcome, Progress, Report, Stores, Target, reconcile};
use tollgate::setup::Deps;

use crate::args::{self, Json};

/// Exit code of a dry run that found drift.
pub const EXIT_DRIFT: u8 = 3;
/// Per pending delivery replayed: an operator waits, not GitHub.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);
/// A progress line every this many subscriptions checked.
const PROGRESS_EVERY: usize = 100;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Without --marketplace: every marketplace this deployment sells through \
(GitHub when the config names a GitHub product, Google when TOLLGATE_GCP_PROVIDER_ID is set).\n\
Exit codes: 0 in sync or all drift fixed; 1 errors (the rest of the run still happened); \
2 usage; 3 --dry-run found drift (or a Google approval waiting).\n\
Reads TOLLGATE_CONFIG, TOLLGATE_STORE, TOLLGATE_SECRETS (github_app_private_key, github_app_id; \
Google credentials) and the marketplace URLs."
)]
pub struct Args {
    /// Only this marketplace (github or gcp; q2 has no listing to compare with)
    #[arg(long, value_enum)]
    pub marketplace: Option<args::Marketplace>,
    /// Report drift without fixing it or replaying anything
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub json: Json,
}

pub async fn run(args: Args) -> ExitCode {
    let only = args.marketplace.map(Marketplace::from);
    if only == Some(Marketplace::Q2) {
        eprintln!("tollgate: q2 cannot be reconciled: Q2 offers no listing of subscriptions");
        return ExitCode::FAILURE;
    }
    let deps = match Deps::from_env().await {
        Ok(deps) => deps,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let targets = match tollgate::functions::reconcile_targets(
        &deps,
        only,
        Arc::clone(&clock),
        PROCESS_TIMEOUT,
    ) {
        Ok(targets) => targets,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stores = tollgate::functions::reconcile_stores(&deps);
    let report = if args.json.json {
        let report = run_with(
            &targets,
            &stores,
            &*clock,
            args.dry_run,
            &mut std::io::stderr(),
        )
        .await;
        println!("{}", to_json(&report));
        report
    } else {
        run_with(
            &targets,
            &stores,
            &*clock,
            args.dry_run,
            &mut std::io::stdout(),
        )
        .await
    };
    ExitCode::from(exit_code(&report))
}

/// Runs the reconciliation, writing progress and the summary line to `out`.
pub async fn run_with(
    targets: &[Target],
    stores: &Stores,
    clock: &dyn Clock,
    dry_run: bool,
    out: &mut (dyn Write + Send),
) -> Report {
    if targets.is_empty() {
        let _ = writeln!(
            out,
            "nothing to reconcile: the config sells through no GitHub product and TOLLGATE_GCP_PROVIDER_ID is not set"
        );
    }
    let mut checked = 0usize;
    let report = reconcile(targets, stores, clock, dry_run, |p| {
        let _ = match p {
            Progress::Subscription { key, outcome } => {
                checked += 1;
                let line = match outcome {
                    Outcome::InSync => None,
                    Outcome::Fixed { differences } => Some(format!("{key}: fixed: {differences}")),
                    Outcome::WouldFix { differences } => {
                        Some(format!("{key}: would fix: {differences}"))
                    }
                    Outcome::Held {
                        differences,
                        reason,
                    } => Some(format!("{key}: held ({reason}): {differences}")),
                    Outcome::Failed { message } => Some(format!("{key}: FAILED: {message}")),
                };
                let counter = checked
                    .is_multiple_of(PROGRESS_EVERY)
                    .then(|| format!("… {checked} subscriptions checked"));
                line.into_iter()
                    .chain(counter)
                    .try_for_each(|l| writeln!(out, "{l}"))
            }
            Progress::Failure {
                marketplace,
                message,
            } => writeln!(out, "{marketplace}: FAILED: {message}"),
            Progress::Replayed {
                marketplace,
                delivery,
                result,
            } => match result {
                Ok(note) => writeln!(out, "{marketplace} delivery {delivery}: replayed: {note}"),
                Err(e) => writeln!(out, "{marketplace} delivery {delivery}: replay FAILED: {e}"),
            },
            Progress::FollowUp { key, follow_up } => {
                let action = &follow_up.action;
                match (follow_up.result, &follow_up.message) {
                    (FollowUpResult::Done, _) => writeln!(out, "{key}: done: {action}"),
                    (FollowUpResult::WouldDo, _) => writeln!(out, "{key}: would {action}"),
                    (FollowUpResult::Settled, _) => {
                        writeln!(out, "{key}: already settled at the marketplace: {action}")
                    }
                    (FollowUpResult::Failed, message) => writeln!(
                        out,
                        "{key}: FAILED to {action}: {}",
                        message.as_deref().unwrap_or("")
                    ),
                }
            }
        };
    })
    .await;
    let _ = writeln!(out, "{}", report.summary());
    report
}

/// The `--json` form: the report plus the exit code it leads to.
pub fn to_json(report: &Report) -> serde_json::Value {
    let mut v = serde_json::to_value(report).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("exit_code".into(), exit_code(report).into());
    }
    v
}

/// 1 on any error, else 3 when a dry run found drift (or an approval
/// waiting), else 0.
pub fn exit_code(report: &Report) -> u8 {
    if report.errors() > 0 {
        1
    } else if report.dry_run && (report.would_fix() > 0 || report.would_follow_up() > 0) {
        EXIT_DRIFT
    } else {
        0
    }
}
