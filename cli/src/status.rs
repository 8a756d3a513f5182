//! `tollgate status [--marketplace github|gcp|q2] [CUSTOMER] [--events N]
//! [--json]`: what the store says, for an operator or a cron job.
//!
//! With a CUSTOMER (the marketplace's customer id: a GitHub account id, a
//! Google procurement account id, a Q2 `<fi>:<user>`), every subscription
//! of that customer with its most recent log entries (those a
//! reconciliation wrote marked `(reconcile)`, `"source": "reconcile"` in
//! JSON, so an operator sees which changes no delivery announced). Always:
//! the deliveries recorded but never processed, per marketplace (only
//! `--marketplace`'s when given).
//!
//! Also per marketplace: the content replays refused (a body already
//! delivered, re-sent under a new delivery id: logged, nothing applied),
//! which an operator should look into (a misbehaving relay, or an attack).
//!
//! Text by default, one JSON object with `--json`; either ends with a
//! one-line summary. Exits 1 while any delivery is pending, so a cron job
//! can alert; reads nothing but the store (through `Deps::from_env`, like
//! `replay`) and writes nothing.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use tollgate::clock::{Clock, SystemClock};
use tollgate::ingest::pipeline::REPLAYS_LOG;
use tollgate::model::{
    CustomerKey, LogEntry, Marketplace, PendingChange, Plan, Subscription, SubscriptionKey,
};
use tollgate::reconcile::is_reconcile_event;
use tollgate::setup::Deps;
use tollgate::store::{Deliveries, Delivery, StoreError, Subscriptions};

use crate::args::{self, Json};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exits 0 when no delivery is pending, 1 when some are (or the store \
cannot be read),\n2 on a usage error. Reads TOLLGATE_CONFIG, TOLLGATE_STORE and TOLLGATE_SECRETS."
)]
pub struct Args {
    /// Only this marketplace (required with CUSTOMER)
    #[arg(long, value_enum)]
    pub marketplace: Option<args::Marketplace>,
    /// The marketplace's customer id (GitHub account id, Google procurement
    /// account id, Q2 `<fi>:<user>`): show its subscriptions and events
    #[arg(value_name = "CUSTOMER", requires = "marketplace")]
    pub customer: Option<String>,
    /// How many of each subscription's most recent events to show
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub events: usize,
    #[command(flatten)]
    pub json: Json,
}

/// A customer's subscriptions, each with its log (all of it, oldest first,
/// and how much of it to show).
#[derive(Debug)]
pub struct CustomerStatus {
    pub key: CustomerKey,
    pub subscriptions: Vec<(Subscription, Vec<LogEntry>)>,
}

/// What `status` found.
#[derive(Debug)]
pub struct Report {
    pub now: DateTime<Utc>,
    pub customer: Option<CustomerStatus>,
    /// Recent events shown per subscription.
    pub events: usize,
    /// Pending deliveries, oldest first, for each marketplace looked at.
    pub pending: Vec<(Marketplace, Vec<Delivery>)>,
    /// Content replays (the marketplace's `_replays` log), oldest first,
    /// for each marketplace looked at.
    pub replays: Vec<(Marketplace, Vec<LogEntry>)>,
}

pub async fn run(args: Args) -> Result<(), String> {
    let marketplaces = match args.marketplace {
        Some(m) => vec![Marketplace::from(m)],
        None => Marketplace::ALL.to_vec(),
    };
    let customer = args
        .customer
        .zip(args.marketplace)
        .map(|(id, m)| CustomerKey::new(m.into(), id));
    let deps = Deps::from_env().await.map_err(|e| e.to_string())?;
    let report = gather(
        &*deps.store,
        &*deps.store,
        customer,
        &marketplaces,
        args.events,
        SystemClock.now(),
    )
    .await
    .map_err(|e| e.to_string())?;
    if args.json.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    report.outcome()
}

/// Reads what the report shows.
pub async fn gather(
    subscriptions: &dyn Subscriptions,
    deliveries: &dyn Deliveries,
    customer: Option<CustomerKey>,
    marketplaces: &[Marketplace],
    events: usize,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    let customer = match customer {
        None => None,
        Some(key) => {
            let mut subs = Vec::new();
            for sub in subscriptions.customer_subscriptions(&key).await? {
                let log = subscriptions.log(&sub.key).await?;
                subs.push((sub, log));
            }
            Some(CustomerStatus {
                key,
                subscriptions: subs,
            })
        }
    };
    let mut pending = Vec::new();
    let mut replays = Vec::new();
    for &m in marketplaces {
        pending.push((m, deliveries.pending_deliveries(m, now).await?));
        let log = SubscriptionKey::new(m, REPLAYS_LOG);
        replays.push((m, subscriptions.log(&log).await?));
    }
    Ok(Report {
        now,
        customer,
        events,
        pending,
        replays,
    })
}

impl Report {
    pub fn pending_total(&self) -> usize {
        self.pending.iter().map(|(_, d)| d.len()).sum()
    }

    pub fn replays_total(&self) -> usize {
        self.replays.iter().map(|(_, r)| r.len()).sum()
    }

    /// The command's result: an error (exit 1) while any delivery is pending.
    pub fn outcome(&self) -> Result<(), String> {
        match self.pending_total() {
            0 => Ok(()),
            n => Err(format!("{n} deliveries pending")),
        }
    }

    fn recent<'a>(&self, log: &'a [LogEntry]) -> &'a [LogEntry] {
        &log[log.len().saturating_sub(self.events)..]
    }

    /// The last line of either form.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = &self.customer {
            let subs = &c.subscriptions;
            parts.push(match subs.len() {
                0 => format!("{}: no subscriptions", c.key),
                n => {
                    let statuses: Vec<&str> = subs.iter().map(|(s, _)| s.status.as_str()).collect();
                    let noun = if n == 1 {
                        "subscription"
                    } else {
                        "subscriptions"
                    };
                    format!("{}: {n} {noun} ({})", c.key, statuses.join(", "))
                }
            });
        }
        let total = self.pending_total();
        if total == 0 {
            parts.push("no pending deliveries".to_owned());
        } else {
            let per: Vec<String> = self
                .pending
                .iter()
                .filter(|(_, d)| !d.is_empty())
                .map(|(m, d)| format!("{m} {}", d.len()))
                .collect();
            let oldest = self
                .pending
                .iter()
                .filter_map(|(_, d)| d.first())
                .map(|d| d.received_at)
                .min()
                .map_or_else(String::new, |t| format!(", oldest {}", age(self.now - t)));
            parts.push(format!(
                "{total} deliveries pending ({}{oldest})",
                per.join(", ")
            ));
        }
        match self.replays_total() {
            0 => {}
            1 => parts.push("1 content replay".to_owned()),
            n => parts.push(format!("{n} content replays")),
        }
        parts.join("; ")
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        if let Some(c) = &self.customer {
            line(format!("customer {}", c.key));
            if c.subscriptions.is_empty() {
                line("  no subscriptions".to_owned());
            }
            for (sub, log) in &c.subscriptions {
                let mut head = format!(
                    "  subscription {} ({}): {}",
                    sub.key,
                    sub.product,
                    sub.status.as_str()
                );
                if let Some(a) = sub.awaiting {
                    head.push_str(&format!(" (awaiting {})", json_name(&a)));
                }
                line(head);
                line(format!("    plan {}", plan_text(&sub.plan)));
                line(format!(
                    "    seats {}",
                    match sub.seats.limit {
                        Some(limit) => format!("{}/{limit}", sub.seats.used),
                        None => format!("{} used, not counted", sub.seats.used),
                    }
                ));
                if let Some(t) = sub.access_until {
                    line(format!("    access until {}", time(t)));
                }
                line(format!(
                    "    pending change: {}",
                    sub.pending_change
                        .as_ref()
                        .map_or_else(|| "none".to_owned(), change_text)
                ));
                let recent = self.recent(log);
                line(format!(
                    "    events (last {} of {}):",
                    recent.len(),
                    log.len()
                ));
                for e in recent {
                    line(format!(
                        "      {}  {}{}  {}  {}",
                        time(e.recorded_at),
                        e.event,
                        if is_reconcile_event(&e.event_id) {
                            " (reconcile)"
                        } else {
                            ""
                        },
                        json_name(&e.disposition),
                        e.note
                    ));
                }
            }
        }
        for (m, deliveries) in &self.pending {
            if deliveries.is_empty() {
                line(format!("{m}: no pending deliveries"));
                continue;
            }
            line(format!(
                "{m}: {} pending, oldest {} ago; {}",
                deliveries.len(),
                age(self.now - deliveries[0].received_at),
                hint(*m)
            ));
            for d in deliveries {
                line(format!(
                    "  {}  {}  received {} ({} ago)",
                    d.id,
                    d.kind,
                    time(d.received_at),
                    age(self.now - d.received_at)
                ));
            }
        }
        for (m, replays) in &self.replays {
            let Some(last) = replays.last() else { continue };
            line(format!(
                "{m}: {} content replays (a body already delivered, sent again under a new id; nothing applied), last {} ago",
                replays.len(),
                age(self.now - last.recorded_at)
            ));
            for r in self.recent(replays) {
                line(format!("  {}  {}  replay", r.event_id, time(r.recorded_at)));
            }
        }
        line(self.summary());
        out
    }

    pub fn to_json(&self) -> Value {
        let customer = self.customer.as_ref().map(|c| {
            let subs: Vec<Value> = c
                .subscriptions
                .iter()
                .map(|(sub, log)| {
                    let events: Vec<Value> = self
                        .recent(log)
                        .iter()
                        .map(|e| {
                            json!({
                                "time": time(e.recorded_at),
                                "effective_at": time(e.effective_at),
                                "event_id": e.event_id,
                                "source": source(e),
                                "event": e.event,
                                "disposition": e.disposition,
                                "note": e.note,
                            })
                        })
                        .collect();
                    json!({
                        "subscription": sub.key.to_string(),
                        "product": sub.product,
                        "status": sub.status,
                        "awaiting": sub.awaiting,
                        "plan": sub.plan,
                        "seats": {"limit": sub.seats.limit, "used": sub.seats.used},
                        "access_until": sub.access_until.map(time),
                        "pending_change": sub.pending_change,
                        "events_total": log.len(),
                        "events": events,
                    })
                })
                .collect();
            json!({
                "marketplace": c.key.marketplace,
                "id": c.key.id,
                "subscriptions": subs,
            })
        });
        let pending: Vec<Value> = self
            .pending
            .iter()
            .map(|(m, deliveries)| {
                let list: Vec<Value> = deliveries
                    .iter()
                    .map(|d| {
                        json!({
                            "id": d.id,
                            "kind": d.kind,
                            "received_at": time(d.received_at),
                            "age_seconds": (self.now - d.received_at).num_seconds(),
                        })
                    })
                    .collect();
                json!({
                    "marketplace": m,
                    "count": deliveries.len(),
                    "oldest_age_seconds": deliveries
                        .first()
                        .map(|d| (self.now - d.received_at).num_seconds()),
                    "hint": (!deliveries.is_empty()).then(|| hint(*m)),
                    "deliveries": list,
                })
            })
            .collect();
        let replays: Vec<Value> = self
            .replays
            .iter()
            .map(|(m, replays)| {
                let recent: Vec<Value> = self
                    .recent(replays)
                    .iter()
                    .map(|r| json!({"delivery": r.event_id, "time": time(r.recorded_at)}))
                    .collect();
                json!({"marketplace": m, "count": replays.len(), "recent": recent})
            })
            .collect();
        json!({
            "now": time(self.now),
            "customer": customer,
            "pending": pending,
            "pending_total": self.pending_total(),
            "replays": replays,
            "replays_total": self.replays_total(),
            "summary": self.summary(),
        })
    }
}

/// What to do about a marketplace's pending deliveries.
fn hint(m: Marketplace) -> &'static str {
    match m {
        Marketplace::Github => "GitHub never retries: run `tollgate replay`",
        Marketplace::Gcp => "Pub/Sub redelivers these itself",
        Marketplace::Q2 => "Q2 was answered synchronously; nothing to replay",
    }
}

/// Who wrote a log entry: a reconciliation (its event ids say so) or a
/// marketplace's delivery.
fn source(e: &LogEntry) -> &'static str {
    if is_reconcile_event(&e.event_id) {
        "reconcile"
    } else {
        "delivery"
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `45s`, `12m30s`, `3h05m`, `2d04h`.
fn age(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// A serde unit-variant name (`applied`, `signup`, ...).
fn json_name(v: &impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

fn plan_text(p: &Plan) -> String {
    match &p.name {
        Some(name) => format!("{name} ({})", p.id),
        None => p.id.clone(),
    }
}

fn change_text(c: &PendingChange) -> String {
    match c {
        PendingChange::Plan {
            plan,
            seats,
            effective_at,
        } => {
            let seats = seats.map_or_else(String::new, |n| format!(", {n} seats"));
            format!("plan {}{seats} on {}", plan_text(plan), time(*effective_at))
        }
        PendingChange::Cancellation { effective_at } => {
            format!("cancellation on {}", time(*effective_at))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_at_a_glance() {
        let age = |s| age(chrono::TimeDelta::seconds(s));
        assert_eq!(age(-5), "0s");
        assert_eq!(age(45), "45s");
        assert_eq!(age(750), "12m30s");
        assert_eq!(age(3 * 3600 + 300), "3h05m");
        assert_eq!(age(2 * 86400 + 4 * 3600 + 59), "2d04h");
    }
}
