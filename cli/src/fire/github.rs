//! `tollgate fire github <action>`: sends a realistic, correctly signed GitHub
//! Marketplace `marketplace_purchase` delivery to a running purchase-webhook
//! (`tollgate dev`), the way GitHub would.
//!
//! The body and headers come from the stand-in's webhook builder
//! (`tollgate_sim::github::webhook`), with the plans of the sim's seed (and of
//! `tollgate.example.toml`): 1001 Free, 1002 Team (per seat, free trial),
//! 1003 Business (flat rate). The body is signed with `github_webhook_secret`
//! from the secrets named by `TOLLGATE_SECRETS` (the file `tollgate dev`
//! fills), and POSTed with a real HTTP client. Prints the status and reply;
//! exits non-zero unless the function answered 2xx.
//!
//! What each action sends (`--plan`/`--units` describe `marketplace_purchase`,
//! `--from-plan`/`--from-units` the `previous_marketplace_purchase`):
//!
//! - `purchased`: a new purchase, effective today (`--trial`: a 14-day trial).
//! - `changed`: the purchase is now `--plan`/`--units`, effective today.
//! - `pending_change`: the purchase will become `--plan`/`--units` at the end
//!   of the cycle (30 days from now); the same plan and units as the previous
//!   purchase is how a pending *cancellation* reads.
//! - `pending_change_cancelled`: the pending change is withdrawn; the
//!   purchase stays `--plan`/`--units`.
//! - `cancelled`: the purchase ends (a trial or free plan at once, a paid
//!   plan on `effective_date`).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use tollgate::marketplace::github::SECRET_NAME as WEBHOOK_SECRET;
use tollgate::setup::Settings;
use tollgate_sim::github::webhook::{Account, Action, Delivery, PurchaseEvent};
use tollgate_sim::github::{Plan, PriceModel, Purchase, User};

use crate::sim;

/// purchase-webhook's GitHub route under `make dev`.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9101/github";

/// GitHub gives up on a delivery after 10 s; wait a little longer so a slow
/// answer is reported as what it is rather than as a timeout.
const TIMEOUT: Duration = Duration::from_secs(15);

/// GitHub's free trials last 14 days.
const TRIAL_DAYS: i64 = 14;
/// A monthly cycle, for the date a pending change applies.
const CYCLE_DAYS: i64 = 30;

// `tollgate fire github <action> [flags]`. Every flag has a default, so a
// bare action fires the demo buyer's event; an unknown flag is refused, so a
// mistyped one never silently fires a different event than the one asked for.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Signs with github_webhook_secret from the secrets named by \
TOLLGATE_SECRETS (the file `tollgate dev` fills).\nPrints the status and reply; exits \
non-zero unless purchase-webhook answered 2xx."
)]
pub struct Args {
    /// The `action` of the delivery
    #[arg(value_enum)]
    pub action: FireAction,
    /// purchase-webhook's GitHub route
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    /// The account's id [default: 2001 (acme), with --user 1 (octocat)]
    #[arg(long)]
    pub account: Option<u64>,
    /// The account's login [default: acme, with --user octocat]
    #[arg(long)]
    pub login: Option<String>,
    /// The account is an organization (the default)
    #[arg(long, conflicts_with = "user")]
    pub org: bool,
    /// The account is a user's personal account
    #[arg(long)]
    pub user: bool,
    /// The listing plan purchased: 1001 Free, 1002 Team (per seat, free trial), 1003 Business
    #[arg(long, default_value_t = sim::DEMO_PLAN_ID)]
    pub plan: u64,
    /// Seats, for a per-seat plan
    #[arg(long, default_value_t = sim::DEMO_UNITS, value_parser = at_least_one)]
    pub units: u64,
    /// The purchase is a 14-day free trial (the plan must offer one)
    #[arg(long)]
    pub trial: bool,
    /// When the event takes effect [default: today; pending_change: end of the 30-day cycle]
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub effective_date: Option<NaiveDate>,
    /// The previous purchase's plan (changed, pending_change, pending_change_cancelled)
    #[arg(long, default_value_t = sim::DEMO_PLAN_ID)]
    pub from_plan: u64,
    /// The previous purchase's seats
    #[arg(long, default_value_t = sim::DEMO_UNITS)]
    pub from_units: u64,
}

/// What happened to the purchase: the delivery's `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum FireAction {
    /// A new purchase, effective today (--trial: a 14-day trial)
    Purchased,
    /// The purchase is now --plan/--units, effective today
    Changed,
    /// The purchase becomes --plan/--units at the end of the cycle (same as --from-plan/--from-units: a pending cancellation)
    PendingChange,
    /// The pending change is withdrawn; the purchase stays --plan/--units
    PendingChangeCancelled,
    /// The purchase ends (a trial or free plan at once, a paid plan on the effective date)
    Cancelled,
}

impl From<FireAction> for Action {
    fn from(a: FireAction) -> Self {
        match a {
            FireAction::Purchased => Action::Purchased,
            FireAction::Changed => Action::Changed,
            FireAction::PendingChange => Action::PendingChange,
            FireAction::PendingChangeCancelled => Action::PendingChangeCancelled,
            FireAction::Cancelled => Action::Cancelled,
        }
    }
}

fn at_least_one(v: &str) -> Result<u64, String> {
    match v.parse() {
        Ok(0) => Err("at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("a whole number, not `{v}`")),
    }
}

fn parse_date(v: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| format!("YYYY-MM-DD, not `{v}`"))
}

/// The event to fire: the command line with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub action: Action,
    pub url: String,
    pub account: u64,
    pub login: String,
    pub user_account: bool,
    pub plan: u64,
    pub units: u64,
    pub trial: bool,
    pub effective_date: Option<NaiveDate>,
    pub from_plan: u64,
    pub from_units: u64,
}

pub async fn run(args: Args) -> Result<(), String> {
    let opts = Options::from(args);
    let event = build(&opts, Utc::now())?;
    let delivery = event.delivery().map_err(|e| e.to_string())?;
    let secret = webhook_secret().await?;
    send(&opts.url, &delivery, secret.as_bytes(), &event).await
}

impl From<Args> for Options {
    fn from(args: Args) -> Self {
        // A personal account defaults to the demo user, an organization to acme.
        let (default_id, default_login) = if args.user {
            (sim::DEMO_USER_ID, sim::DEMO_USER_LOGIN)
        } else {
            (sim::DEMO_ORG_ID, sim::DEMO_ORG_LOGIN)
        };
        Self {
            action: args.action.into(),
            url: args.url,
            account: args.account.unwrap_or(default_id),
            login: args.login.unwrap_or_else(|| default_login.to_owned()),
            user_account: args.user,
            plan: args.plan,
            units: args.units,
            trial: args.trial,
            effective_date: args.effective_date,
            from_plan: args.from_plan,
            from_units: args.from_units,
        }
    }
}

/// The listing plan `id`: one of the seed's, or a stand-in for a plan the
/// config does not know (entitlement checks then say `unknown_plan`).
fn plan(id: u64) -> Plan {
    sim::demo_plans()
        .into_iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| Plan::new(id, 0, format!("Plan {id}"), PriceModel::FlatRate))
}

/// `account`'s purchase of `plan`, as the webhook describes it.
fn purchase(
    account: u64,
    plan: &Plan,
    units: u64,
    trial_ends: Option<DateTime<Utc>>,
    today: DateTime<Utc>,
) -> Purchase {
    let mut p = Purchase::new(account, plan.id)
        .with_next_billing_date(today + chrono::Duration::days(CYCLE_DAYS));
    match plan.price_model {
        PriceModel::PerUnit => p = p.with_units(units),
        // A free plan has no billing cycle and no next billing date.
        PriceModel::Free => p = p.unbilled(),
        PriceModel::FlatRate => {}
    }
    if let Some(ends) = trial_ends {
        p = p.on_trial_until(ends);
    }
    p
}

/// The event `opts` describe, as of `now`.
pub fn build(opts: &Options, now: DateTime<Utc>) -> Result<PurchaseEvent, String> {
    let today = Utc.from_utc_datetime(&now.date_naive().and_time(NaiveTime::MIN));
    let effective = opts
        .effective_date
        .map(|d| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)));
    let current_plan = plan(opts.plan);
    if opts.trial && !current_plan.has_free_trial {
        return Err(format!(
            "--trial: plan {} ({}) has no free trial on the listing",
            current_plan.id, current_plan.name
        ));
    }
    // A trial runs 14 days from the purchase.
    let trial_ends = opts
        .trial
        .then(|| effective.unwrap_or(today) + chrono::Duration::days(TRIAL_DAYS));
    let (sender, account) = if opts.user_account {
        let user = User::new(opts.account, &opts.login);
        (user.clone(), Account::User(user))
    } else {
        // The demo user acts for the organization (a member, as in the seed).
        (
            sim::demo_user(),
            Account::Org(sim::demo_org(opts.account, &opts.login)),
        )
    };
    let current = purchase(opts.account, &current_plan, opts.units, trial_ends, today);
    let next_billing = current.next_billing_date;
    let mut event = PurchaseEvent::new(opts.action, sender, account, current_plan, current)
        .map_err(|e| e.to_string())?;
    if opts.action.has_previous() {
        let from_plan = plan(opts.from_plan);
        let previous = purchase(opts.account, &from_plan, opts.from_units, None, today);
        event = event
            .with_previous(from_plan, previous)
            .map_err(|e| e.to_string())?;
    }
    // A pending change applies at the end of the cycle; everything else today.
    let default_effective = match opts.action {
        Action::PendingChange => next_billing.unwrap_or(today),
        _ => today,
    };
    Ok(event.effective_on(effective.unwrap_or(default_effective)))
}

async fn webhook_secret() -> Result<String, String> {
    let spec = Settings::from_env().secrets;
    let secrets = tollgate::setup::load_secrets(&spec)
        .await
        .map_err(|e| e.to_string())?;
    let secret = secrets.get(WEBHOOK_SECRET).ok_or_else(|| {
        format!(
            "no `{WEBHOOK_SECRET}` in the secrets `{spec}` (TOLLGATE_SECRETS): `tollgate dev` adds one to its secrets file"
        )
    })?;
    Ok(secret.expose().to_owned())
}

async fn send(
    url: &str,
    delivery: &Delivery,
    secret: &[u8],
    event: &PurchaseEvent,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        // GitHub does not follow redirects when delivering.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.post(url).body(delivery.body.clone());
    for (name, value) in delivery.headers(secret) {
        req = req.header(name, value);
    }
    let mp = &event.purchase;
    println!(
        "POST {url}\n  {}.{} delivery {}\n  account {} ({}), plan {} {}{}{}",
        delivery.event,
        event.action,
        delivery.id,
        event.account.id(),
        event.account.login(),
        event.plan.id,
        event.plan.name,
        mp.unit_count
            .map(|n| format!(", {n} units"))
            .unwrap_or_default(),
        if mp.on_free_trial {
            ", on a free trial"
        } else {
            ""
        },
    );
    let res = req.send().await.map_err(|e| {
        if e.is_connect() {
            format!("cannot reach {url}: is `make dev` (tollgate dev) running? ({e})")
        } else {
            format!("POST {url}: {e}")
        }
    })?;
    let status = res.status();
    let text = res
        .text()
        .await
        .map_err(|e| format!("reading the reply: {e}"))?;
    println!("{status}");
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(json) => println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_else(|_| text.clone())
        ),
        Err(_) if text.is_empty() => {}
        Err(_) => println!("{text}"),
    }
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("purchase-webhook answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command, fire};

    /// Parses `tollgate fire <line>` as the binary does.
    fn parse(line: &str) -> Result<Options, clap::Error> {
        let argv = ["tollgate", "fire"]
            .into_iter()
            .chain(line.split_whitespace());
        match Cli::try_parse_from(argv)?.command {
            Command::Fire(fire::Marketplace::Github(args)) => Ok(args.into()),
            other => panic!("{other:?}"),
        }
    }

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
    }

    #[test]
    fn defaults_are_the_demo_org_on_team_with_five_seats() {
        let o = parse("github purchased --trial").unwrap();
        assert_eq!(
            (o.account, o.login.as_str(), o.plan, o.units, o.trial),
            (2001, "acme", 1002, 5, true)
        );
        assert_eq!(o.url, DEFAULT_URL);
        let u = parse("github purchased --user --plan 1001").unwrap();
        assert_eq!((u.account, u.login.as_str()), (1, "octocat"));
    }

    #[test]
    fn every_action_keeps_its_webhook_name() {
        for action in Action::ALL {
            let o = parse(&format!("github {action}")).unwrap();
            assert_eq!(o.action, action);
        }
    }

    #[test]
    fn unknown_flags_actions_and_marketplaces_are_refused() {
        for line in [
            "github purchased --tiral",
            "github renewed",
            "github pending-change",
            "gcp purchased",
            "github",
            "github purchased --units",
            "github purchased --units five",
            "github purchased --units 0",
            "github purchased --org --user",
            "github purchased --effective-date 10/03/2026",
        ] {
            assert!(parse(line).is_err(), "{line}");
        }
    }

    #[test]
    fn a_trial_needs_a_plan_with_one() {
        let o = parse("github purchased --trial --plan 1003").unwrap();
        let err = build(&o, noon()).unwrap_err();
        assert!(err.contains("no free trial"), "{err}");
    }

    #[test]
    fn the_built_event_reads_as_the_flags_say() {
        let o = parse("github purchased --trial --units 7").unwrap();
        let body = build(&o, noon()).unwrap().body().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mp = &v["marketplace_purchase"];
        assert_eq!(v["effective_date"], "2026-03-10T00:00:00+00:00");
        assert_eq!(mp["free_trial_ends_on"], "2026-03-24T00:00:00+00:00");
        assert_eq!(mp["unit_count"], 7);
        assert_eq!(mp["plan"]["name"], "Team");
        assert_eq!(mp["account"]["login"], "acme");
        assert_eq!(v["sender"]["login"], "octocat");

        let o = parse("github pending_change --plan 1002 --units 2").unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&build(&o, noon()).unwrap().body().unwrap()).unwrap();
        assert_eq!(v["effective_date"], "2026-04-09T00:00:00+00:00");
        assert_eq!(v["previous_marketplace_purchase"]["unit_count"], 5);

        let o = parse("github cancelled --plan 42 --effective-date 2026-01-02").unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&build(&o, noon()).unwrap().body().unwrap()).unwrap();
        assert_eq!(v["effective_date"], "2026-01-02T00:00:00+00:00");
        assert_eq!(v["marketplace_purchase"]["plan"]["name"], "Plan 42");
    }
}
