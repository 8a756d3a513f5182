//! `tollgate fire github <action>`: plays GitHub Marketplace against a
//! running `tollgate dev`. The GitHub stand-in (`--sim-url`) holds the
//! account's purchase — the one GitHub's API reports to the sign-in page
//! and to reconciliation — and this command asks it to buy, change or
//! cancel; the stand-in changes its record and delivers the
//! `marketplace_purchase` webhook to purchase-webhook, signed with the
//! listing's `github_webhook_secret` (`X-Hub-Signature-256`), as GitHub
//! does ([`tollgate_sim::github::control`]).
//!
//! Each action starts from the purchase as the stand-in holds it and
//! changes only what the flags name:
//!
//! - `purchased`: a new purchase (`--plan`/`--units`, else the current or
//!   last one's); `--trial` starts a 14-day free trial.
//! - `changed`: `--plan`/`--units` now; with neither, a pending change
//!   applies (the cycle ended).
//! - `pending_change`: `--plan`/`--units` at the end of the cycle; none of
//!   them: a pending cancellation.
//! - `pending_change_cancelled`: the pending change is withdrawn.
//! - `cancelled`: a trial or free plan ends at once; a paid plan keeps
//!   access to the end of the cycle (GitHub says so with a
//!   `pending_change`), and `cancelled` again — or `--now` — ends it today.
//!
//! Then it asks entitlement-check what the account may do now. It exits
//! non-zero when the stand-in refused, purchase-webhook did not answer 2xx,
//! or answered that it did not apply the event (stale, ignored), saying why.

use chrono::NaiveDate;
use serde_json::{Value, json};
use tollgate_sim::github::control::{FireRequest, Fired, PurchaseView, Remote, RemoteError};
use tollgate_sim::github::webhook::Action;

use super::{FireError, RESET_HINT, check};
use crate::args::Json;
use crate::sim;

/// The github.com stand-in under `make dev` (purchase-webhook's port + 100).
pub const DEFAULT_SIM_URL: &str = "http://127.0.0.1:9201";
/// The product the demo listing sells (`[marketplaces.github] product`).
pub const DEFAULT_PRODUCT: &str = "acme-ci";

// `tollgate fire github <action> [flags]`. A bare action plays the demo
// org acme; an unknown flag is refused, so a mistyped one never silently
// fires something else.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "The GitHub stand-in of `tollgate dev` changes the account's purchase \
and sends the signed webhook (github_webhook_secret) to purchase-webhook.\nPrints the purchase \
before and after, purchase-webhook's answer and the account's /v1/check answer; exits non-zero \
when the stand-in refused or purchase-webhook did not apply the event (stale, ignored, non-2xx)."
)]
pub struct Args {
    /// The `action` of the delivery
    #[arg(value_enum)]
    pub action: FireAction,
    /// The account's id [default: 2001 (acme), with --user 1 (octocat)]
    #[arg(long)]
    pub account: Option<u64>,
    /// A new account's login (purchased)
    #[arg(long)]
    pub login: Option<String>,
    /// A new account is an organization the demo user belongs to (the default)
    #[arg(long, conflicts_with = "user")]
    pub org: bool,
    /// A new account is a user's personal account
    #[arg(long)]
    pub user: bool,
    /// The plan after the action: 1001 Free, 1002 Team (per seat, free trial), 1003 Business [default: the current one]
    #[arg(long)]
    pub plan: Option<u64>,
    /// Seats of a per-seat plan after the action [default: the current ones]
    #[arg(long, value_parser = at_least_one)]
    pub units: Option<u64>,
    /// purchased: a 14-day free trial (the plan must offer one)
    #[arg(long)]
    pub trial: bool,
    /// cancelled: end a paid plan today instead of at the end of the cycle
    #[arg(long)]
    pub now: bool,
    /// The event's effective date instead of the one the action implies
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub effective_date: Option<NaiveDate>,
    /// The GitHub stand-in (github.com's, with its /_sim API)
    #[arg(long, value_name = "URL", default_value = DEFAULT_SIM_URL)]
    pub sim_url: String,
    /// entitlement-check's /v1/check, asked afterwards (TOLLGATE_API_KEY as a bearer key if set)
    #[arg(long, value_name = "URL", default_value = super::DEFAULT_CHECK_URL)]
    pub check_url: String,
    /// The product asked about in /v1/check
    #[arg(long, default_value = DEFAULT_PRODUCT)]
    pub product: String,
    /// Do not ask entitlement-check afterwards
    #[arg(long)]
    pub no_check: bool,
    #[command(flatten)]
    pub json: Json,
}

/// What the customer does: the action asked of the marketplace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum FireAction {
    /// A new purchase, effective today (--trial: a 14-day trial)
    Purchased,
    /// The purchase is now --plan/--units; with neither, the pending change applies
    Changed,
    /// The purchase becomes --plan/--units at the end of the cycle (neither: a pending cancellation)
    PendingChange,
    /// The pending change is withdrawn
    PendingChangeCancelled,
    /// The purchase ends: a trial or free plan at once, a paid plan at the end of the cycle (--now: today)
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

/// One step, as the demo and `fire github` play it.
#[derive(Debug, Clone)]
pub struct Step {
    pub sim_url: String,
    pub account: u64,
    pub action: Action,
    pub request: FireRequest,
    /// `(check url, product)`; `None`: no check.
    pub check: Option<(String, String)>,
    /// Also ask the check for this feature.
    pub feature: Option<String>,
}

impl From<&Args> for Step {
    fn from(a: &Args) -> Self {
        let account = a.account.unwrap_or(if a.user {
            sim::DEMO_USER_ID
        } else {
            sim::DEMO_ORG_ID
        });
        Self {
            sim_url: a.sim_url.clone(),
            account,
            action: a.action.into(),
            request: FireRequest {
                plan: a.plan,
                units: a.units,
                trial: a.trial,
                now: a.now,
                effective_date: a.effective_date,
                login: a.login.clone(),
                personal: a.user,
            },
            check: (!a.no_check).then(|| (a.check_url.clone(), a.product.clone())),
            feature: None,
        }
    }
}

/// What one step did (`--json`: this object).
#[derive(Debug, Default)]
pub struct Report {
    pub account: u64,
    pub asked: String,
    pub fired: Option<Fired>,
    /// purchase-webhook's reply, as JSON when it is.
    pub reply: Option<Value>,
    pub check: Option<Value>,
    pub failure: Option<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    pub fn to_json(&self) -> Value {
        let f = self.fired.as_ref();
        json!({
            "ok": self.ok(),
            "marketplace": "github",
            "account": self.account,
            "asked": self.asked,
            "action": f.map(|f| &f.action),
            "delivery": f.map(|f| &f.delivery_id),
            "effective_date": f.map(|f| &f.effective_date),
            "note": f.map(|f| &f.note),
            "previous": f.and_then(|f| f.previous.as_ref()),
            "purchase": f.and_then(|f| f.purchase.as_ref()),
            "webhook": f.map(|f| json!({
                "url": f.webhook.url,
                "status": f.webhook.status,
                "reply": self.reply.clone().unwrap_or_else(|| Value::String(f.webhook.reply.clone())),
                "error": f.webhook.error,
            })),
            "check": self.check,
            "error": self.failure,
        })
    }

    /// The text `fire github` prints, ending with a one-line summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(f) = &self.fired {
            out.push_str(&format!("GitHub: {}\n", f.note));
            out.push_str(&format!(
                "  before: {}\n  after:  {}\n",
                purchase_text(f.previous.as_ref()),
                purchase_text(f.purchase.as_ref())
            ));
            let w = &f.webhook;
            out.push_str(&format!(
                "POST {}  marketplace_purchase.{} (delivery {}, effective {}), signed X-Hub-Signature-256\n",
                w.url, f.action, f.delivery_id, f.effective_date
            ));
            let answer = match (w.status, &w.error) {
                (Some(s), _) => format!("{s} {}", reply_text(self.reply.as_ref(), &w.reply)),
                (None, Some(e)) => format!("no answer: {e}"),
                (None, None) => "no answer".to_owned(),
            };
            out.push_str(&format!("  -> {answer}\n"));
        }
        if let Some(d) = &self.check {
            out.push_str(&format!(
                "Tollgate /v1/check (github customer {}): {}\n",
                self.account,
                check::line(d)
            ));
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    pub fn summary(&self) -> String {
        match (&self.failure, &self.fired) {
            (Some(why), _) => format!("FAILED: github {}: {why}", self.asked),
            (None, Some(f)) => format!(
                "ok: github {} for account {}: purchase-webhook applied {}",
                self.asked, self.account, f.action
            ),
            (None, None) => format!("ok: github {}", self.asked),
        }
    }
}

/// A purchase on one line.
pub fn purchase_text(p: Option<&PurchaseView>) -> String {
    let Some(p) = p else {
        return "no purchase".to_owned();
    };
    let mut s = format!("{} {}", p.plan_id, p.plan_name);
    if let Some(n) = p.unit_count {
        s.push_str(&format!(" × {n} seats"));
    }
    if p.on_free_trial {
        let until = p.free_trial_ends_on.as_deref().unwrap_or("?");
        s.push_str(&format!(", free trial until {until}"));
    }
    if let Some(c) = &p.pending_change {
        if c.cancellation {
            s.push_str(&format!(", cancellation pending on {}", c.effective_date));
        } else {
            let units = c
                .unit_count
                .map(|n| format!(" × {n} seats"))
                .unwrap_or_default();
            s.push_str(&format!(
                ", moving to {} {}{units} on {}",
                c.plan_id, c.plan_name, c.effective_date
            ));
        }
    }
    s
}

fn reply_text(json: Option<&Value>, raw: &str) -> String {
    match json {
        Some(v) => {
            let status = v["status"].as_str().or(v["error"]["code"].as_str());
            let note = v["note"].as_str().or(v["error"]["message"].as_str());
            match (status, note) {
                // The rules' notes for stale events start with "stale:".
                (Some(s), Some(n)) if n.starts_with(&format!("{s}:")) => n.to_owned(),
                (Some(s), Some(n)) => format!("{s}: {n}"),
                (Some(s), None) => s.to_owned(),
                _ => v.to_string(),
            }
        }
        None => raw.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// Plays one step: the stand-in acts and delivers; then the check. Fills
/// the report as it goes, so a failure still shows what happened.
pub async fn play(step: &Step) -> Report {
    let mut report = Report {
        account: step.account,
        asked: step.action.as_str().to_owned(),
        ..Report::default()
    };
    if let Err(e) = deliver(step, &mut report).await {
        report.failure = Some(e.to_string());
    }
    // A step the stand-in refused changed nothing: nothing to ask.
    if let (Some((url, product)), Some(_)) = (&step.check, &report.fired) {
        let mut q = json!({
            "marketplace": "github",
            "customer_id": step.account.to_string(),
            "product": product,
        });
        if let Some(f) = &step.feature {
            q["feature"] = json!(f);
        }
        match check::ask(url, &q).await {
            Ok(d) => report.check = Some(d),
            Err(e) => {
                report.failure.get_or_insert(e.to_string());
            }
        }
    }
    report
}

async fn deliver(step: &Step, report: &mut Report) -> Result<(), FireError> {
    let remote = Remote::new(&step.sim_url);
    let fired = remote
        .fire(step.account, step.action, &step.request)
        .await
        .map_err(|e| remote_error(e, &step.sim_url))?;
    let reply: Option<Value> = serde_json::from_str(&fired.webhook.reply).ok();
    let verdict = judge(&fired, reply.as_ref());
    report.reply = reply;
    report.fired = Some(fired);
    verdict
}

/// Whether purchase-webhook applied the delivery, and why not.
fn judge(fired: &Fired, reply: Option<&Value>) -> Result<(), FireError> {
    let w = &fired.webhook;
    let Some(status) = w.status else {
        return Err(FireError::Unreachable(format!(
            "the GitHub stand-in could not deliver to {}: {} — is purchase-webhook running?",
            w.url,
            w.error.as_deref().unwrap_or("no answer")
        )));
    };
    if !(200..300).contains(&status) {
        return Err(FireError::NotApplied(format!(
            "purchase-webhook answered {status}: {}",
            reply_text(reply, &w.reply)
        )));
    }
    let said = reply.and_then(|r| r["status"].as_str()).unwrap_or("");
    match said {
        "stale" | "ignored" => Err(FireError::NotApplied(format!(
            "purchase-webhook did not apply {} ({said}): {}. GitHub's record changed all the same (GitHub does not wait for the vendor). {RESET_HINT} (--account N --login NAME)",
            fired.action,
            reply
                .and_then(|r| r["note"].as_str())
                .unwrap_or("no reason given")
        ))),
        _ => Ok(()),
    }
}

fn remote_error(e: RemoteError, sim_url: &str) -> FireError {
    match e {
        RemoteError::Unreachable { .. } => FireError::Unreachable(format!(
            "{e} — is `make dev` (tollgate dev) running with its GitHub stand-in at {sim_url}? (--sim-url says where)"
        )),
        RemoteError::Refused { .. } => FireError::Refused(e.to_string()),
    }
}

pub async fn run(args: Args) -> Result<(), String> {
    let report = play(&Step::from(&args)).await;
    if args.json.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        );
    } else {
        print!("{}", report.text());
    }
    match report.failure {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command, fire};

    /// Parses `tollgate fire <line>` as the binary does.
    fn parse(line: &str) -> Result<Args, clap::Error> {
        let argv = ["tollgate", "fire"]
            .into_iter()
            .chain(line.split_whitespace());
        match Cli::try_parse_from(argv)?.command {
            Command::Fire(fire::Marketplace::Github(args)) => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bare_action_plays_the_demo_org_and_names_nothing_else() {
        let s = Step::from(&parse("github changed").unwrap());
        assert_eq!((s.account, s.action), (2001, Action::Changed));
        assert_eq!(s.request, FireRequest::default());
        assert_eq!(s.sim_url, DEFAULT_SIM_URL);
        let u = Step::from(&parse("github purchased --user --plan 1001").unwrap());
        assert_eq!(u.account, 1);
        assert_eq!((u.request.plan, u.request.personal), (Some(1001), true));
        let n = Step::from(&parse("github cancelled --now --no-check").unwrap());
        assert!(n.request.now && n.check.is_none());
    }

    #[test]
    fn every_action_keeps_its_webhook_name() {
        for action in Action::ALL {
            let s = Step::from(&parse(&format!("github {action}")).unwrap());
            assert_eq!(s.action, action);
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
            "github changed --from-plan 1002",
            "github changed --url http://127.0.0.1:9101/github",
        ] {
            assert!(parse(line).is_err(), "{line}");
        }
    }

    fn fired(status: Option<u16>, reply: &str) -> Fired {
        Fired {
            asked: "changed".into(),
            action: "changed".into(),
            delivery_id: "d".into(),
            effective_date: "2026-03-10".into(),
            note: "n".into(),
            previous: None,
            purchase: None,
            webhook: tollgate_sim::github::control::WebhookOutcome {
                url: "http://127.0.0.1:9101/github".into(),
                status,
                reply: reply.into(),
                error: None,
            },
        }
    }

    #[test]
    fn only_an_applied_delivery_is_a_success_and_stale_says_how_to_reset() {
        let judge_of = |status, reply: &str| {
            let f = fired(status, reply);
            let json: Option<Value> = serde_json::from_str(reply).ok();
            judge(&f, json.as_ref())
        };
        assert!(judge_of(Some(200), r#"{"status":"applied"}"#).is_ok());
        assert!(judge_of(Some(200), r#"{"status":"duplicate"}"#).is_ok());
        let stale = judge_of(
            Some(200),
            r#"{"status":"stale","note":"stale: takes effect"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            stale.contains("(stale): stale: takes effect") && stale.contains("make dev-reset"),
            "{stale}"
        );
        let ignored = judge_of(Some(200), r#"{"status":"ignored","note":"x"}"#).unwrap_err();
        assert!(matches!(ignored, FireError::NotApplied(_)));
        let refused = judge_of(
            Some(401),
            r#"{"error":{"code":"invalid_signature","message":"bad"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(refused.contains("401: invalid_signature: bad"), "{refused}");
        assert!(matches!(judge_of(None, ""), Err(FireError::Unreachable(_))));
    }

    #[test]
    fn a_purchase_reads_on_one_line() {
        let p = PurchaseView {
            account_id: 2001,
            login: "acme".into(),
            account_type: "Organization".into(),
            plan_id: 1002,
            plan_name: "Team".into(),
            price_model: "PER_UNIT".into(),
            unit_count: Some(5),
            on_free_trial: true,
            free_trial_ends_on: Some("2026-03-24".into()),
            next_billing_date: Some("2026-03-24".into()),
            billing_cycle: Some("monthly".into()),
            pending_change: None,
        };
        assert_eq!(
            purchase_text(Some(&p)),
            "1002 Team × 5 seats, free trial until 2026-03-24"
        );
        assert_eq!(purchase_text(None), "no purchase");
    }
}
