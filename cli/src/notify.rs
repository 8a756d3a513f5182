//! `tollgate notify`: change notifications from the command line.
//!
//! - `tollgate notify replay [--json]`: sends every dead letter again (same
//!   `webhook-id` and body, a fresh timestamp and signature); a delivered
//!   one is removed. Progress on stderr as it goes, then a one-line
//!   summary. Exit 0: all delivered (or none to send), 1: some still fail.
//! - `tollgate notify run [--interval 5]`: drains the outbox every few
//!   seconds until Ctrl-C, what purchase-webhook's stream and schedule do
//!   in AWS (use it beside `tollgate dev`).
//!
//! Reads TOLLGATE_CONFIG (`[notifications]`), TOLLGATE_STORE and
//! TOLLGATE_SECRETS (the endpoints' `whsec_` secrets).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tollgate::clock::SystemClock;
use tollgate::notify::{HttpTransport, ReplayReport, Sender};
use tollgate::setup::{Deps, open_outbox};

use crate::args::Json;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Send the dead letters again (exit 1 while any still fails)
    #[command(
        after_help = "A notification an endpoint refused (4xx) or never accepted within its \
attempts is kept as a dead letter;\nthis sends each again with its original webhook-id. \
Reads TOLLGATE_CONFIG, TOLLGATE_STORE and TOLLGATE_SECRETS."
    )]
    Replay(ReplayArgs),
    /// Drain the notification outbox every few seconds until interrupted
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub json: Json,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Seconds between passes
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
}

pub async fn run(command: Command) -> Result<(), String> {
    let deps = Deps::from_env().await.map_err(|e| e.to_string())?;
    let outbox = open_outbox(&deps.settings.store)
        .await
        .map_err(|e| e.to_string())?;
    let transport = HttpTransport::new().map_err(|e| e.to_string())?;
    let sender = Sender::new(
        outbox,
        Arc::clone(&deps.catalog),
        &deps.secrets,
        Arc::new(transport),
        Arc::new(SystemClock),
    )
    .map_err(|e| e.to_string())?;
    match command {
        Command::Replay(args) => {
            let report = replay(&sender, &mut std::io::stderr()).await?;
            if args.json.json {
                println!("{}", to_json(&report));
            } else {
                println!("{}", summary(&report));
            }
            outcome(&report)
        }
        Command::Run(args) => {
            eprintln!(
                "draining notifications to {} endpoint(s) every {} s; Ctrl-C stops",
                sender.targets().len(),
                args.interval
            );
            sender
                .run(Duration::from_secs(args.interval), async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await;
            Ok(())
        }
    }
}

/// Replays the dead letters, a progress line per letter to `progress`.
pub async fn replay(sender: &Sender, progress: &mut dyn Write) -> Result<ReplayReport, String> {
    let report = sender
        .replay(|done, total| {
            let _ = writeln!(progress, "[{done}/{total}] sent");
        })
        .await
        .map_err(|e| e.to_string())?;
    for (id, endpoint, why) in &report.failed {
        let _ = writeln!(progress, "{id} to {endpoint}: FAILED ({why})");
    }
    Ok(report)
}

/// The one-line summary.
pub fn summary(r: &ReplayReport) -> String {
    format!(
        "{} dead letter(s): {} delivered, {} still failing",
        r.total,
        r.delivered,
        r.failed.len()
    )
}

/// The `--json` summary: `{"dead_letters":…,"delivered":…,"failed":…}`.
pub fn to_json(r: &ReplayReport) -> serde_json::Value {
    serde_json::json!({
        "dead_letters": r.total,
        "delivered": r.delivered,
        "failed": r.failed.len(),
    })
}

/// Exit 1 while any letter still fails.
pub fn outcome(r: &ReplayReport) -> Result<(), String> {
    if r.failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} notification(s) still undelivered; fix the endpoint and run `tollgate notify replay` again",
            r.failed.len()
        ))
    }
}
