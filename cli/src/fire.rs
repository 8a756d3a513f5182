//! `tollgate fire github <action>`: sends a realistic, correctly signed GitHub
//! Marketplace `marketplace_purchase` delivery to a running purchase-webhook
//! (`tollgate dev`), the way GitHub would — the local counterpart of Q2's
//! `q2 marketplace invoke_subscribe / invoke_cancel / invoke_update`.
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
use tollgate::marketplace::github::delivery::SECRET_NAME as WEBHOOK_SECRET;
use tollgate::setup::Settings;
use tollgate_sim::github::webhook::{Account, Action, Delivery, PurchaseEvent};
use tollgate_sim::github::{Plan, PriceModel, Purchase, User};

use crate::flag;
use crate::sim;

pub const USAGE: &str = "tollgate fire github <purchased|changed|pending_change|pending_change_cancelled|cancelled>\n         \
     [--url http://127.0.0.1:9101/github] [--account 2001] [--login acme] [--org|--user]\n         \
     [--plan 1002] [--units 5] [--trial] [--effective-date YYYY-MM-DD]\n         \
     [--from-plan 1002] [--from-units 5]";

/// purchase-webhook's GitHub route under `make dev`.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9101/github";

/// GitHub gives up on a delivery after 10 s; wait a little longer so a slow
/// answer is reported as what it is rather than as a timeout.
const TIMEOUT: Duration = Duration::from_secs(15);

/// GitHub's free trials last 14 days.
const TRIAL_DAYS: i64 = 14;
/// A monthly cycle, for the date a pending change applies.
const CYCLE_DAYS: i64 = 30;

const VALUE_FLAGS: [&str; 8] = [
    "--url",
    "--account",
    "--login",
    "--plan",
    "--units",
    "--effective-date",
    "--from-plan",
    "--from-units",
];
const SWITCHES: [&str; 3] = ["--org", "--user", "--trial"];

/// The command line, checked.
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

pub async fn run(args: &[String]) -> Result<(), String> {
    let opts = Options::parse(args)?;
    let event = build(&opts, Utc::now())?;
    let delivery = event.delivery().map_err(|e| e.to_string())?;
    let secret = webhook_secret().await?;
    send(&opts.url, &delivery, secret.as_bytes(), &event).await
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let usage = |e: String| format!("{e}\nusage: {USAGE}");
        match args.first().map(String::as_str) {
            Some("github") => {}
            Some(other) => {
                return Err(usage(format!(
                    "`{other}`: only GitHub events can be fired so far"
                )));
            }
            None => return Err(usage("name the marketplace: github".into())),
        }
        let action: Action = args
            .get(1)
            .ok_or_else(|| usage("name the action".into()))?
            .parse()
            .map_err(|e: tollgate_sim::github::webhook::EventError| usage(e.to_string()))?;
        // Refuse anything unknown: a mistyped flag must not silently fire a
        // different event than the one asked for.
        let mut rest = args[2..].iter();
        while let Some(arg) = rest.next() {
            if VALUE_FLAGS.contains(&arg.as_str()) {
                if rest.next().is_none() {
                    return Err(usage(format!("{arg} needs a value")));
                }
            } else if !SWITCHES.contains(&arg.as_str()) {
                return Err(usage(format!("unexpected `{arg}`")));
            }
        }
        let has = |name: &str| args.iter().any(|a| a == name);
        if has("--org") && has("--user") {
            return Err(usage("--org or --user, not both".into()));
        }
        let number = |name: &str, default: u64| -> Result<u64, String> {
            flag(args, name).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| usage(format!("{name}: a whole number, not `{v}`")))
            })
        };
        let user_account = has("--user");
        // A personal account defaults to the demo user, an organization to acme.
        let (default_id, default_login) = if user_account {
            (sim::DEMO_USER_ID, sim::DEMO_USER_LOGIN)
        } else {
            (sim::DEMO_ORG_ID, sim::DEMO_ORG_LOGIN)
        };
        let effective_date = flag(args, "--effective-date")
            .map(|v| {
                NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .map_err(|_| usage(format!("--effective-date: YYYY-MM-DD, not `{v}`")))
            })
            .transpose()?;
        let units = number("--units", sim::DEMO_UNITS)?;
        if units == 0 {
            return Err(usage("--units: at least 1".into()));
        }
        Ok(Self {
            action,
            url: flag(args, "--url").unwrap_or(DEFAULT_URL).to_owned(),
            account: number("--account", default_id)?,
            login: flag(args, "--login").unwrap_or(default_login).to_owned(),
            user_account,
            plan: number("--plan", sim::DEMO_PLAN_ID)?,
            units,
            trial: has("--trial"),
            effective_date,
            from_plan: number("--from-plan", sim::DEMO_PLAN_ID)?,
            from_units: number("--from-units", sim::DEMO_UNITS)?,
        })
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
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
    }

    #[test]
    fn defaults_are_the_demo_org_on_team_with_five_seats() {
        let o = Options::parse(&args("github purchased --trial")).unwrap();
        assert_eq!(
            (o.account, o.login.as_str(), o.plan, o.units, o.trial),
            (2001, "acme", 1002, 5, true)
        );
        assert_eq!(o.url, DEFAULT_URL);
        let u = Options::parse(&args("github purchased --user --plan 1001")).unwrap();
        assert_eq!((u.account, u.login.as_str()), (1, "octocat"));
    }

    #[test]
    fn unknown_flags_actions_and_marketplaces_are_refused() {
        for line in [
            "github purchased --tiral",
            "github renewed",
            "gcp purchased",
            "github",
            "github purchased --units",
            "github purchased --units five",
            "github purchased --units 0",
            "github purchased --org --user",
            "github purchased --effective-date 10/03/2026",
        ] {
            assert!(Options::parse(&args(line)).is_err(), "{line}");
        }
    }

    #[test]
    fn a_trial_needs_a_plan_with_one() {
        let o = Options::parse(&args("github purchased --trial --plan 1003")).unwrap();
        let err = build(&o, noon()).unwrap_err();
        assert!(err.contains("no free trial"), "{err}");
    }

    #[test]
    fn the_built_event_reads_as_the_flags_say() {
        let o = Options::parse(&args("github purchased --trial --units 7")).unwrap();
        let body = build(&o, noon()).unwrap().body().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mp = &v["marketplace_purchase"];
        assert_eq!(v["effective_date"], "2026-03-10T00:00:00+00:00");
        assert_eq!(mp["free_trial_ends_on"], "2026-03-24T00:00:00+00:00");
        assert_eq!(mp["unit_count"], 7);
        assert_eq!(mp["plan"]["name"], "Team");
        assert_eq!(mp["account"]["login"], "acme");
        assert_eq!(v["sender"]["login"], "octocat");

        let o = Options::parse(&args("github pending_change --plan 1002 --units 2")).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&build(&o, noon()).unwrap().body().unwrap()).unwrap();
        assert_eq!(v["effective_date"], "2026-04-09T00:00:00+00:00");
        assert_eq!(v["previous_marketplace_purchase"]["unit_count"], 5);

        let o = Options::parse(&args(
            "github cancelled --plan 42 --effective-date 2026-01-02",
        ))
        .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&build(&o, noon()).unwrap().body().unwrap()).unwrap();
        assert_eq!(v["effective_date"], "2026-01-02T00:00:00+00:00");
        assert_eq!(v["marketplace_purchase"]["plan"]["name"], "Plan 42");
    }
}
