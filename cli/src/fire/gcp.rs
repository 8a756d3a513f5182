//! `tollgate fire gcp <step>`: plays Google Cloud Marketplace against a
//! running `tollgate dev`, through the Google stand-in's scenario API
//! (`/_sim/...`, [`tollgate_sim::gcp::control`]). The stand-in changes its
//! Procurement records as Google would and pushes the Pub/Sub messages, with
//! Google-signed OIDC tokens, to pubsub-push; this command prints each
//! push's answer, Google's record afterwards and the account's entitlement
//! from entitlement-check (`POST /v1/check` by customer: the Procurement
//! account id). It exits non-zero when a push was not acknowledged, a step
//! was refused, the sign-up page did not answer 2xx or the check failed.
//!
//! Steps (named as the stand-in names them):
//!
//! - `order`: the customer orders `--plan` (a new account, sign-up pending,
//!   if `--account` has none); the entitlement waits for approval.
//!   `--private-offer`: through an accepted private offer.
//! - `signup`: the customer clicks "Sign up with provider": a sign-up token
//!   from the stand-in is POSTed as the form field `x-gcp-marketplace-token`
//!   to oauth-callback's sign-up page, which approves the account and the
//!   orders that waited for it; the messages those approvals cause are
//!   pushed right away (and anything still queued is pushed before the
//!   command reports).
//! - `request-plan-change --plan P`, `cancel-plan-change`: the customer asks
//!   for another plan (with `approval = "automatic"` Tollgate approves a
//!   mapped plan and the change applies), or withdraws the request.
//! - `cancel`: the customer cancels; access lasts until the end of the term
//!   (`ENTITLEMENT_PENDING_CANCELLATION`). `revert-cancellation` takes it
//!   back.
//! - `end-term`: the term ends: a pending cancellation becomes final, a
//!   pending plan change applies, an active entitlement renews.
//! - `cancel-now [--reason R]`: cancelled at once (billing disabled...).
//! - `end-offer`: a private offer ends, the entitlement goes on.
//! - `delete`: Marketplace deletes a cancelled entitlement;
//!   `delete-account`: the account goes (its entitlements cancelled first).
//! - `deliver`: pushes what is still queued (what Pub/Sub would redeliver
//!   after a negative acknowledgement).
//!
//! The entitlement steps take `--entitlement ID`, or find the account's only
//! live entitlement (for `delete`: its only cancelled one).

use std::time::Duration;

use serde_json::{Value, json};
use tollgate_sim::gcp::EntitlementStep;
use tollgate_sim::gcp::control::{PushOutcome, Remote, RemoteError};

use crate::args::Json;
use crate::sim;

pub use tollgate::marketplace::gcp::signup::SIGNUP_PATH;

/// The Google stand-in under `make dev` (purchase-webhook's port + 102).
pub const DEFAULT_SIM_URL: &str = "http://127.0.0.1:9203";
/// oauth-callback's Google sign-up page under `make dev`.
pub const DEFAULT_SIGNUP_URL: &str = "http://127.0.0.1:9103/gcp/signup";
/// entitlement-check's check under `make dev`.
pub const DEFAULT_CHECK_URL: &str = "http://127.0.0.1:9104/v1/check";
/// The product of `tollgate.example.toml` the Google listing sells.
pub const DEFAULT_PRODUCT: &str = "acme-ci";

/// The sign-up page and the check answer well within this; a slower answer
/// is reported as a timeout rather than waited for.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The push replies are shown up to this many characters.
const REPLY_CHARS: usize = 160;

#[derive(Debug, clap::Subcommand)]
#[command(
    after_help = "Drives the Google stand-in of `tollgate dev` (its /_sim API); the stand-in pushes \
signed Pub/Sub messages to pubsub-push.\nPrints each push's answer, Google's record and the \
account's /v1/check answer; exits non-zero when a push was not acknowledged."
)]
pub enum Step {
    /// The customer orders a plan: a new account (sign-up pending) if it has none, then an entitlement awaiting approval
    Order(OrderArgs),
    /// The customer signs up: a sign-up token from the stand-in, POSTed as a form to oauth-callback's /gcp/signup
    Signup(SignupArgs),
    /// The customer asks to move an active entitlement to --plan (Tollgate approves a mapped plan)
    RequestPlanChange(PlanChangeArgs),
    /// The customer withdraws a pending plan change
    CancelPlanChange(EntitlementArgs),
    /// The customer cancels: access lasts until the end of the term (pending cancellation)
    Cancel(EntitlementArgs),
    /// The customer takes a pending cancellation back
    RevertCancellation(EntitlementArgs),
    /// The term ends: a pending cancellation becomes final, a pending plan change applies, else it renews
    EndTerm(EntitlementArgs),
    /// A private offer ends; the entitlement goes on at list price
    EndOffer(EntitlementArgs),
    /// Cancelled at once (e.g. billing disabled), no access left
    CancelNow(CancelNowArgs),
    /// Marketplace deletes a cancelled entitlement
    Delete(EntitlementArgs),
    /// The account is deleted (its entitlements must be cancelled first)
    DeleteAccount(AccountArgs),
    /// Push what is still queued (as Pub/Sub redelivers after a negative acknowledgement)
    Deliver(AccountArgs),
}

/// Flags every step takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The Google stand-in (its /_sim scenario API)
    #[arg(long, value_name = "URL", default_value = DEFAULT_SIM_URL)]
    pub sim_url: String,
    /// entitlement-check's /v1/check, asked afterwards (sends TOLLGATE_API_KEY as a bearer key if set)
    #[arg(long, value_name = "URL", default_value = DEFAULT_CHECK_URL)]
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

#[derive(Debug, Clone, clap::Args)]
pub struct OrderArgs {
    /// The Procurement account ordering (created, sign-up pending, if new)
    #[arg(long, default_value = sim::GCP_DEMO_ACCOUNT)]
    pub account: String,
    /// The listing plan: free, team-monthly, business-yearly (another name is rejected by Tollgate)
    #[arg(long, default_value = sim::GCP_DEMO_PLAN)]
    pub plan: String,
    /// Through an accepted private offer (ENTITLEMENT_OFFER_ACCEPTED)
    #[arg(long)]
    pub private_offer: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SignupArgs {
    /// The Procurement account signing up
    #[arg(long, default_value = sim::GCP_DEMO_ACCOUNT)]
    pub account: String,
    /// oauth-callback's Google sign-up page
    #[arg(long, value_name = "URL", default_value = DEFAULT_SIGNUP_URL)]
    pub signup_url: String,
    #[command(flatten)]
    pub common: Common,
}

/// Which entitlement a step acts on.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The entitlement [default: the account's only live one; for delete its only cancelled one]
    #[arg(long, value_name = "ID")]
    pub entitlement: Option<String>,
    /// The Procurement account [default: demo-buyer, or the entitlement's]
    #[arg(long)]
    pub account: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct EntitlementArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PlanChangeArgs {
    /// The plan the customer moves to
    #[arg(long)]
    pub plan: String,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CancelNowArgs {
    /// Google's cancellationReason
    #[arg(long, default_value = "user-cancelled")]
    pub reason: String,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AccountArgs {
    /// The Procurement account
    #[arg(long, default_value = sim::GCP_DEMO_ACCOUNT)]
    pub account: String,
    #[command(flatten)]
    pub common: Common,
}

/// What one `fire gcp` run did, as printed (`--json`: this object).
#[derive(Debug, Default)]
struct Report {
    step: &'static str,
    account: String,
    entitlement: Option<String>,
    /// The sign-up page's status and what it says.
    signup: Option<(u16, Vec<String>)>,
    pushed: Vec<PushOutcome>,
    /// The step reached the stand-in (its pushes are known).
    stepped: bool,
    /// Whether Google's records below were read.
    google_read: bool,
    /// The account and its entitlements as the Procurement API shows them.
    google_account: Option<Value>,
    google_entitlements: Vec<Value>,
    check: Option<Value>,
    /// Why the run failed.
    failure: Option<String>,
}

pub async fn run(step: Step) -> Result<(), String> {
    let json = step.parts().1.json.json;
    let played = play(&step).await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&played.json).unwrap_or_default()
        );
    } else {
        print!("{}", played.text);
    }
    match played.failure {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// What one step did, as `fire gcp` prints it (text or `--json`).
#[derive(Debug)]
pub struct Played {
    pub text: String,
    pub json: Value,
    /// entitlement-check's answer afterwards.
    pub check: Option<Value>,
    pub failure: Option<String>,
}

/// Plays one step (what `fire gcp` and the demo run).
pub async fn play(step: &Step) -> Played {
    let (name, common) = step.parts();
    let common = common.clone();
    let mut report = Report {
        step: name,
        ..Report::default()
    };
    let outcome = execute(step, &common, &mut report).await;
    if let Err(e) = outcome {
        report.failure.get_or_insert(e);
    }
    if let Some(why) = unacknowledged(&report.pushed).or_else(|| not_applied(&report.pushed)) {
        report.failure = Some(match report.failure.take() {
            Some(also) => format!("{why}; and {also}"),
            None => why,
        });
    }
    Played {
        text: report.text(),
        json: report.to_json(),
        check: report.check.clone(),
        failure: report.failure.clone(),
    }
}

impl Step {
    fn parts(&self) -> (&'static str, &Common) {
        match self {
            Step::Order(a) => ("order", &a.common),
            Step::Signup(a) => ("signup", &a.common),
            Step::RequestPlanChange(a) => ("request-plan-change", &a.common),
            Step::CancelPlanChange(a) => ("cancel-plan-change", &a.common),
            Step::Cancel(a) => ("cancel", &a.common),
            Step::RevertCancellation(a) => ("revert-cancellation", &a.common),
            Step::EndTerm(a) => ("end-term", &a.common),
            Step::EndOffer(a) => ("end-offer", &a.common),
            Step::CancelNow(a) => ("cancel-now", &a.common),
            Step::Delete(a) => ("delete", &a.common),
            Step::DeleteAccount(a) => ("delete-account", &a.common),
            Step::Deliver(a) => ("deliver", &a.common),
        }
    }

    /// The stand-in's step for an entitlement step, with its target.
    fn entitlement_step(&self) -> Option<(EntitlementStep, &Target)> {
        Some(match self {
            Step::RequestPlanChange(a) => (
                EntitlementStep::RequestPlanChange {
                    plan: a.plan.clone(),
                },
                &a.target,
            ),
            Step::CancelPlanChange(a) => (EntitlementStep::CancelPlanChange, &a.target),
            Step::Cancel(a) => (EntitlementStep::Cancel, &a.target),
            Step::RevertCancellation(a) => (EntitlementStep::RevertCancellation, &a.target),
            Step::EndTerm(a) => (EntitlementStep::EndTerm, &a.target),
            Step::EndOffer(a) => (EntitlementStep::EndOffer, &a.target),
            Step::CancelNow(a) => (
                EntitlementStep::CancelNow {
                    reason: a.reason.clone(),
                },
                &a.target,
            ),
            Step::Delete(a) => (EntitlementStep::Delete, &a.target),
            Step::Order(_) | Step::Signup(_) | Step::DeleteAccount(_) | Step::Deliver(_) => {
                return None;
            }
        })
    }
}

/// Runs the step, filling `report` as it goes (so a failure still shows
/// what happened before it).
async fn execute(step: &Step, common: &Common, report: &mut Report) -> Result<(), String> {
    let remote = Remote::new(&common.sim_url);
    match step {
        Step::Order(a) => {
            report.account = a.account.clone();
            let order = remote
                .order(&a.account, &a.plan, a.private_offer)
                .await
                .map_err(|e| remote_error(e, &common.sim_url))?;
            report.entitlement = Some(order.entitlement_id);
            report.pushed = order.pushed;
        }
        Step::Signup(a) => {
            report.account = a.account.clone();
            let token = remote
                .signup_token(&a.account)
                .await
                .map_err(|e| remote_error(e, &common.sim_url))?;
            let (status, said) = post_signup(&a.signup_url, &token).await?;
            report.signup = Some((status, said));
            // Tollgate's approvals published messages, which the stand-in
            // pushes in the background as they happen. This flush waits for
            // a push in progress and pushes anything left (e.g. after a
            // negative acknowledgement), so what follows sees the result.
            report.pushed = remote
                .deliver_queued()
                .await
                .map_err(|e| remote_error(e, &common.sim_url))?;
            if !(200..300).contains(&status) {
                // Reported once Google's and Tollgate's views are shown.
                report.failure = Some(format!(
                    "the sign-up page {} answered {status}",
                    a.signup_url
                ));
            }
        }
        Step::DeleteAccount(a) => {
            report.account = a.account.clone();
            report.pushed = remote
                .delete_account(&a.account)
                .await
                .map_err(|e| remote_error(e, &common.sim_url))?;
        }
        Step::Deliver(a) => {
            report.account = a.account.clone();
            report.pushed = remote
                .deliver_queued()
                .await
                .map_err(|e| remote_error(e, &common.sim_url))?;
        }
        _ => {
            let (sim_step, target) = step
                .entitlement_step()
                .ok_or("every other step acts on an entitlement")?;
            let state = remote
                .state()
                .await
                .map_err(|e| remote_error(e, &common.sim_url))?;
            let (entitlement, account) =
                resolve(&state, target, matches!(sim_step, EntitlementStep::Delete))?;
            report.account = account;
            report.entitlement = Some(entitlement.clone());
            report.pushed = remote
                .act(&entitlement, &sim_step)
                .await
                .map_err(|e| remote_error(e, &common.sim_url))?;
        }
    }
    report.stepped = true;
    // Google's record as it is now, then Tollgate's answer.
    if let Ok(state) = remote.state().await {
        let (account, entitlements) = google_view(&state, &report.account);
        report.google_read = true;
        report.google_account = account;
        report.google_entitlements = entitlements;
    }
    if !common.no_check {
        report.check = Some(check(common, &report.account).await?);
    }
    Ok(())
}

fn remote_error(e: RemoteError, sim_url: &str) -> String {
    match e {
        RemoteError::Unreachable { .. } => format!(
            "{e} — is `make dev` (tollgate dev) running with its Google stand-in at {sim_url}? (--sim-url says where)"
        ),
        RemoteError::Refused { .. } => e.to_string(),
    }
}

/// The last path segment of a resource name (`providers/p/accounts/ID` → `ID`).
fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn entitlement_id(e: &Value) -> &str {
    last_segment(e["name"].as_str().unwrap_or_default())
}

fn entitlement_account(e: &Value) -> &str {
    last_segment(e["account"].as_str().unwrap_or_default())
}

const CANCELLED: &str = "ENTITLEMENT_CANCELLED";

/// The entitlement a step acts on and its account, from the stand-in's
/// records (`GET /_sim/state`).
fn resolve(state: &Value, target: &Target, cancelled: bool) -> Result<(String, String), String> {
    let entitlements = state["entitlements"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(id) = &target.entitlement {
        let e = entitlements
            .iter()
            .find(|e| entitlement_id(e) == id)
            .ok_or_else(|| format!("the Google stand-in has no entitlement {id}"))?;
        let account = entitlement_account(e).to_owned();
        if let Some(asked) = &target.account
            && *asked != account
        {
            return Err(format!(
                "entitlement {id} belongs to account {account}, not {asked}"
            ));
        }
        return Ok((id.clone(), account));
    }
    let account = target
        .account
        .clone()
        .unwrap_or_else(|| sim::GCP_DEMO_ACCOUNT.to_owned());
    let candidates: Vec<&Value> = entitlements
        .iter()
        .filter(|e| entitlement_account(e) == account)
        .filter(|e| (e["state"].as_str() == Some(CANCELLED)) == cancelled)
        .collect();
    let kind = if cancelled { "cancelled" } else { "live" };
    match candidates[..] {
        [e] => Ok((entitlement_id(e).to_owned(), account)),
        [] => Err(format!(
            "account {account} has no {kind} entitlement at the Google stand-in{}",
            if cancelled {
                ""
            } else {
                " (`tollgate fire gcp order` places one)"
            }
        )),
        _ => Err(format!(
            "account {account} has {} {kind} entitlements ({}): pass --entitlement",
            candidates.len(),
            candidates
                .iter()
                .map(|e| format!(
                    "{} {} {}",
                    entitlement_id(e),
                    e["state"].as_str().unwrap_or("?"),
                    e["plan"].as_str().unwrap_or("?")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The account's record and its entitlements, from `GET /_sim/state`.
fn google_view(state: &Value, account: &str) -> (Option<Value>, Vec<Value>) {
    let acc = state["accounts"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|a| last_segment(a["name"].as_str().unwrap_or_default()) == account)
        })
        .cloned();
    let ents = state["entitlements"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|e| entitlement_account(e) == account)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    (acc, ents)
}

/// Why the run fails when the step's entitlement messages were all
/// acknowledged but none applied (each `stale` or `ignored`): Tollgate's
/// store holds something later for that entitlement, so the step changed
/// nothing there. (Account messages are only recorded, and a step may push
/// a message that is stale beside one that applied: neither fails.)
fn not_applied(pushed: &[PushOutcome]) -> Option<String> {
    let about_entitlements: Vec<&PushOutcome> = pushed
        .iter()
        .filter(|p| p.entitlement_id.is_some())
        .collect();
    let said = |p: &PushOutcome| {
        serde_json::from_str::<Value>(&p.reply)
            .ok()
            .and_then(|v| v["status"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let any_took = about_entitlements
        .iter()
        .any(|p| matches!(said(p).as_str(), "applied" | "duplicate"));
    if about_entitlements.is_empty() || any_took {
        return None;
    }
    let refused: Vec<String> = about_entitlements
        .iter()
        .filter(|p| matches!(said(p).as_str(), "stale" | "ignored"))
        .map(|p| format!("{} ({})", p.event_type, reply_summary(&p.reply)))
        .collect();
    if refused.is_empty() {
        return None;
    }
    Some(format!(
        "pubsub-push did not apply the step: {}. {}",
        refused.join("; "),
        super::RESET_HINT
    ))
}

/// Why the run fails when a push was not acknowledged, naming each.
fn unacknowledged(pushed: &[PushOutcome]) -> Option<String> {
    let nacked: Vec<String> = pushed
        .iter()
        .filter(|p| !p.acked)
        .map(|p| format!("{} ({})", p.event_type, push_answer(p)))
        .collect();
    if nacked.is_empty() {
        return None;
    }
    Some(format!(
        "{} of {} push(es) not acknowledged by pubsub-push: {}; the stand-in keeps them queued (`tollgate fire gcp deliver` pushes them again)",
        nacked.len(),
        pushed.len(),
        nacked.join("; ")
    ))
}

/// What the push endpoint answered, in a few words.
fn push_answer(p: &PushOutcome) -> String {
    match (p.status, &p.error) {
        (Some(status), _) => {
            let reply = reply_summary(&p.reply);
            if reply.is_empty() {
                status.to_string()
            } else {
                format!("{status} {reply}")
            }
        }
        (None, Some(e)) => format!("no answer: {e}"),
        (None, None) => "no answer".to_owned(),
    }
}

/// What a function's JSON reply says: pubsub-push's `status` and `note`
/// (`applied: observed active: ...`), an error's code and message, else the
/// reply on one line.
fn reply_summary(reply: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(reply) else {
        return compact_reply(reply);
    };
    let words = |a: &str, b: &str| match (v[a].as_str(), v[b].as_str()) {
        (Some(x), Some(y)) => Some(format!("{x}: {y}")),
        (Some(x), None) => Some(x.to_owned()),
        _ => None,
    };
    words("status", "note")
        .or_else(|| words("error", "message"))
        .map(|s| compact_reply(&s))
        .unwrap_or_else(|| compact_reply(reply))
}

/// A reply on one line (JSON compacted), cut to [`REPLY_CHARS`].
fn compact_reply(reply: &str) -> String {
    let one_line = match serde_json::from_str::<Value>(reply) {
        Ok(v) => v.to_string(),
        Err(_) => reply.split_whitespace().collect::<Vec<_>>().join(" "),
    };
    if one_line.chars().count() > REPLY_CHARS {
        let cut: String = one_line.chars().take(REPLY_CHARS).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

/// POSTs the token as Google's sign-up form does; the status and what the
/// page says.
async fn post_signup(url: &str, token: &str) -> Result<(u16, Vec<String>), String> {
    let res = http_client()?
        .post(url)
        .form(&[("x-gcp-marketplace-token", token)])
        .send()
        .await
        .map_err(|e| unreachable_function(url, "the sign-up page", "--signup-url", &e))?;
    let status = res.status().as_u16();
    let html = res
        .text()
        .await
        .map_err(|e| format!("reading the sign-up page: {e}"))?;
    Ok((status, page_text(&html)))
}

fn unreachable_function(url: &str, what: &str, flag: &str, e: &reqwest::Error) -> String {
    if e.is_connect() {
        format!(
            "cannot reach {what} at {url}: is `make dev` (tollgate dev) running? (or pass {flag}) ({e})"
        )
    } else {
        format!("POST {url}: {e}")
    }
}

/// The account's entitlement, as the vendor's app would ask.
async fn check(common: &Common, account: &str) -> Result<Value, String> {
    let url = &common.check_url;
    let mut req = http_client()?.post(url).json(&json!({
        "marketplace": "gcp",
        "customer_id": account,
        "product": common.product,
    }));
    if let Some(key) = std::env::var("TOLLGATE_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
    {
        req = req.bearer_auth(key.trim());
    }
    let res = req
        .send()
        .await
        .map_err(|e| unreachable_function(url, "entitlement-check", "--check-url", &e))?;
    let status = res.status();
    let text = res
        .text()
        .await
        .map_err(|e| format!("reading the check: {e}"))?;
    if !status.is_success() {
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            " (API keys exist: set TOLLGATE_API_KEY, or pass --no-check)"
        } else {
            ""
        };
        return Err(format!(
            "entitlement-check answered {status}: {}{hint}",
            reply_summary(&text)
        ));
    }
    serde_json::from_str(&text).map_err(|e| format!("entitlement-check's answer: {e}"))
}

/// What an HTML page says: the text of its `<main>` (else the whole page),
/// one line per block, tags dropped and entities decoded.
pub fn page_text(html: &str) -> Vec<String> {
    let main = match (html.find("<main>"), html.find("</main>")) {
        (Some(start), Some(end)) if start < end => &html[start + "<main>".len()..end],
        _ => html,
    };
    let mut text = String::new();
    let mut rest = main;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let tag = &rest[open + 1..open + close];
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "h1" | "h2" | "h3" | "p" | "div" | "li" | "dt" | "dd" | "br"
        ) {
            text.push('\n');
        }
        rest = &rest[open + close + 1..];
    }
    text.push_str(rest);
    text.lines()
        .map(|l| decode_entities(&l.split_whitespace().collect::<Vec<_>>().join(" ")))
        .filter(|l| !l.is_empty())
        .collect()
}

fn decode_entities(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

impl Report {
    fn to_json(&self) -> Value {
        json!({
            "ok": self.failure.is_none(),
            "step": self.step,
            "account": self.account,
            "entitlement": self.entitlement,
            "signup": self.signup.as_ref().map(|(status, said)| json!({
                "status": status,
                "page": said,
            })),
            "pushed": self.pushed,
            "google": self.google_read.then(|| json!({
                "account": self.google_account,
                "entitlements": self.google_entitlements,
            })),
            "check": self.check,
            "error": self.failure,
        })
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |l: String| {
            out.push_str(&l);
            out.push('\n');
        };
        line(format!(
            "gcp {}: account {}{}",
            self.step,
            self.account,
            self.entitlement
                .as_ref()
                .map(|e| format!(", entitlement {e}"))
                .unwrap_or_default()
        ));
        if let Some((status, said)) = &self.signup {
            line(format!("Sign-up page: {status}"));
            for l in said {
                line(format!("  {l}"));
            }
        }
        if !self.stepped && self.pushed.is_empty() {
            // Stopped before the stand-in acted: nothing else to show.
        } else if self.pushed.is_empty() {
            let note = if self.step == "signup" {
                "none left queued (the approvals' messages were pushed as they happened)"
            } else {
                "none"
            };
            line(format!("Pushes to pubsub-push: {note}"));
        } else {
            line("Pushes to pubsub-push:".into());
            for p in &self.pushed {
                let what = match (&p.entitlement_id, &p.account_id) {
                    (Some(e), _) => format!("entitlement {e}"),
                    (None, Some(a)) => format!("account {a}"),
                    (None, None) => String::new(),
                };
                let ack = if p.acked { "acked" } else { "NOT ACKED" };
                line(format!(
                    "  {:<36} {:<9} {} ({what})",
                    p.event_type,
                    ack,
                    push_answer(p)
                ));
            }
        }
        match &self.google_account {
            _ if !self.google_read => {}
            Some(a) => {
                let signup = a["approvals"]
                    .as_array()
                    .and_then(|all| all.iter().find(|x| x["name"] == "signup"))
                    .and_then(|x| x["state"].as_str())
                    .unwrap_or("?");
                line(format!(
                    "Google: account {} (sign-up approval {signup})",
                    self.account
                ));
            }
            None => line(format!("Google: no account {}", self.account)),
        }
        for e in &self.google_entitlements {
            let pending = e["newPendingPlan"]
                .as_str()
                .map(|p| format!(", pending plan {p}"))
                .unwrap_or_default();
            let until = e["offerEndTime"]
                .as_str()
                .map(|t| format!(", term ends {t}"))
                .unwrap_or_default();
            line(format!(
                "  entitlement {} {} plan {}{pending}{until}",
                entitlement_id(e),
                e["state"].as_str().unwrap_or("?"),
                e["plan"].as_str().unwrap_or("?"),
            ));
        }
        if let Some(d) = &self.check {
            line(format!(
                "Tollgate /v1/check (gcp customer {}): {}",
                self.account,
                decision_text(d)
            ));
        }
        line(self.summary());
        out
    }

    /// The last line: what happened, in one line.
    fn summary(&self) -> String {
        let acked = self.pushed.iter().filter(|p| p.acked).count();
        let pushes = match self.pushed.len() {
            0 => String::new(),
            n => format!(", {acked}/{n} pushes acknowledged"),
        };
        match &self.failure {
            Some(why) => format!("FAILED: gcp {}{pushes}: {why}", self.step),
            None => {
                let entitled = match &self.check {
                    Some(d) if d["allowed"] == true => format!(
                        "; {} is entitled (tier {}, status {})",
                        self.account,
                        d["tier"].as_str().unwrap_or("?"),
                        d["status"].as_str().unwrap_or("?")
                    ),
                    Some(d) => format!(
                        "; {} is not entitled ({})",
                        self.account,
                        d["reason"].as_str().unwrap_or("?")
                    ),
                    None => String::new(),
                };
                format!("ok: gcp {} done{pushes}{entitled}", self.step)
            }
        }
    }
}

/// A `/v1/check` answer on one line.
fn decision_text(d: &Value) -> String {
    let verdict = if d["allowed"] == true {
        "allowed".to_owned()
    } else {
        format!("not allowed ({})", d["reason"].as_str().unwrap_or("?"))
    };
    let mut parts = vec![verdict];
    for (label, key) in [("status", "status"), ("plan", "plan"), ("tier", "tier")] {
        if let Some(v) = d[key].as_str() {
            parts.push(format!("{label} {v}"));
        }
    }
    if let Some(until) = d["access_until"].as_str() {
        parts.push(format!("access until {until}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod not_applied_tests {
    use super::*;

    fn push(event: &str, entitlement: bool, reply: &str) -> PushOutcome {
        PushOutcome {
            event_type: event.into(),
            event_id: "e".into(),
            message_id: "m".into(),
            account_id: Some("a".into()),
            entitlement_id: entitlement.then(|| "x".into()),
            status: Some(200),
            acked: true,
            error: None,
            reply: reply.into(),
        }
    }

    #[test]
    fn a_step_fails_only_when_none_of_its_entitlement_messages_applied() {
        let applied = push("ENTITLEMENT_CANCELLING", true, r#"{"status":"applied"}"#);
        let stale = push(
            "ENTITLEMENT_CANCELLED",
            true,
            r#"{"status":"stale","note":"stale: x"}"#,
        );
        let account = push("ACCOUNT_ACTIVE", false, r#"{"status":"ignored"}"#);
        assert_eq!(not_applied(&[applied, stale.clone()]), None);
        assert_eq!(not_applied(std::slice::from_ref(&account)), None);
        assert_eq!(not_applied(&[]), None);
        let why = not_applied(&[account, stale]).unwrap();
        assert!(
            why.contains("ENTITLEMENT_CANCELLED") && why.contains("make dev-reset"),
            "{why}"
        );
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command, fire};

    fn parse(line: &str) -> Result<Step, clap::Error> {
        let argv = ["tollgate", "fire", "gcp"]
            .into_iter()
            .chain(line.split_whitespace());
        match Cli::try_parse_from(argv)?.command {
            Command::Fire(fire::Marketplace::Gcp(step)) => Ok(step),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_defaults_are_make_devs_urls_and_the_demo_listing() {
        assert_eq!(
            DEFAULT_SIM_URL,
            format!(
                "http://127.0.0.1:{}",
                crate::dev::DEFAULT_PORT + crate::dev::SIM_PORT_OFFSET + sim::GCP_PORT_OFFSET
            )
        );
        assert_eq!(
            DEFAULT_SIGNUP_URL,
            format!(
                "http://127.0.0.1:{}{SIGNUP_PATH}",
                crate::dev::DEFAULT_PORT + 2
            )
        );
        assert_eq!(
            DEFAULT_CHECK_URL,
            format!("http://127.0.0.1:{}/v1/check", crate::dev::DEFAULT_PORT + 3)
        );
        let Step::Order(o) = parse("order").unwrap() else {
            unreachable!()
        };
        assert_eq!(
            (o.account.as_str(), o.plan.as_str()),
            ("demo-buyer", "team-monthly")
        );
        assert!(sim::GCP_DEMO_PLANS.contains(&o.plan.as_str()));
        assert_eq!(o.common.product, "acme-ci");
        assert!(!o.common.json.json);
    }

    #[test]
    fn every_entitlement_step_is_the_stand_ins_step_of_the_same_name() {
        for line in [
            "request-plan-change --plan free",
            "cancel-plan-change",
            "cancel",
            "revert-cancellation",
            "end-term",
            "end-offer",
            "cancel-now --reason billing-disabled",
            "delete --entitlement e1",
        ] {
            let step = parse(line).unwrap();
            let (name, _) = step.parts();
            let (sim_step, _) = step.entitlement_step().unwrap();
            assert_eq!(sim_step.name(), name, "{line}");
            assert_eq!(line.split_whitespace().next(), Some(name));
        }
        let Some((EntitlementStep::CancelNow { reason }, _)) =
            parse("cancel-now").unwrap().entitlement_step()
        else {
            unreachable!()
        };
        assert_eq!(reason, "user-cancelled");
    }

    #[test]
    fn mistyped_steps_and_flags_are_refused() {
        for line in [
            "",
            "purchased",
            "request-plan-change",
            "order --acount x",
            "cancel --plan free",
            "signup --entitlement e1",
            "delete-account --entitlement e1",
        ] {
            assert!(parse(line).is_err(), "{line}");
        }
        assert!(parse("cancel --json --sim-url http://127.0.0.1:1").is_ok());
    }

    fn state() -> Value {
        let ent = |id: &str, account: &str, state: &str| {
            json!({
                "name": format!("providers/acme-public/entitlements/{id}"),
                "account": format!("providers/acme-public/accounts/{account}"),
                "state": state,
                "plan": "team-monthly",
            })
        };
        json!({
            "accounts": [],
            "entitlements": [
                ent("e1", "demo-buyer", "ENTITLEMENT_ACTIVE"),
                ent("e0", "demo-buyer", CANCELLED),
                ent("e2", "other", "ENTITLEMENT_ACTIVE"),
                ent("e3", "other", "ENTITLEMENT_PENDING_CANCELLATION"),
            ],
        })
    }

    fn target(entitlement: Option<&str>, account: Option<&str>) -> Target {
        Target {
            entitlement: entitlement.map(str::to_owned),
            account: account.map(str::to_owned),
        }
    }

    #[test]
    fn an_entitlement_is_found_by_id_or_as_the_accounts_only_one() {
        let s = state();
        let pair = |e: &str, a: &str| Ok((e.to_owned(), a.to_owned()));
        assert_eq!(
            resolve(&s, &target(None, None), false),
            pair("e1", "demo-buyer")
        );
        assert_eq!(
            resolve(&s, &target(None, None), true),
            pair("e0", "demo-buyer")
        );
        assert_eq!(
            resolve(&s, &target(Some("e3"), None), false),
            pair("e3", "other")
        );
        let err = resolve(&s, &target(None, Some("other")), false).unwrap_err();
        assert!(
            err.contains("pass --entitlement") && err.contains("e2"),
            "{err}"
        );
        let err = resolve(&s, &target(Some("e2"), Some("demo-buyer")), false).unwrap_err();
        assert!(err.contains("belongs to account other"), "{err}");
        let err = resolve(&s, &target(None, Some("nobody")), false).unwrap_err();
        assert!(err.contains("no live entitlement"), "{err}");
        let err = resolve(&s, &target(Some("e9"), None), false).unwrap_err();
        assert!(err.contains("no entitlement e9"), "{err}");
    }

    #[test]
    fn a_nack_fails_the_run_and_says_why() {
        let push = |acked: bool, status: Option<u16>, error: Option<&str>| PushOutcome {
            event_type: "ENTITLEMENT_ACTIVE".into(),
            event_id: "ev".into(),
            message_id: "m".into(),
            account_id: None,
            entitlement_id: Some("e1".into()),
            status,
            acked,
            error: error.map(str::to_owned),
            reply: r#"{"error": "store_unavailable",
                "message": "try again"}"#
                .into(),
        };
        assert_eq!(unacknowledged(&[push(true, Some(200), None)]), None);
        let why =
            unacknowledged(&[push(true, Some(200), None), push(false, Some(503), None)]).unwrap();
        assert!(why.starts_with("1 of 2 push(es) not acknowledged"), "{why}");
        assert!(
            why.contains("ENTITLEMENT_ACTIVE (503 store_unavailable: try again)"),
            "{why}"
        );
        let why = unacknowledged(&[push(false, None, Some("connection refused"))]).unwrap();
        assert!(why.contains("no answer: connection refused"), "{why}");
    }

    #[test]
    fn push_replies_read_as_their_status_and_note() {
        assert_eq!(
            reply_summary(
                r#"{"delivery":"d1","event":"observed_active","note":"observed active: active on plan free","status":"applied"}"#
            ),
            "applied: observed active: active on plan free"
        );
        assert_eq!(reply_summary(r#"{"status":"duplicate"}"#), "duplicate");
        assert_eq!(reply_summary("not json\n  at all"), "not json at all");
        let long = format!("{{\"other\":\"{}\"}}", "x".repeat(400));
        assert!(reply_summary(&long).ends_with('…'));
    }

    #[test]
    fn the_sign_up_page_is_read_as_its_lines() {
        let html = tollgate::web::pages::page(
            "Signed up",
            "<h1>You&#39;re signed up for Acme CI</h1>\n<div class=\"card\"><h2>Plan: team</h2><p>Approved. It becomes active &amp; ready.</p></div>\n",
        );
        assert_eq!(
            page_text(&html),
            [
                "You're signed up for Acme CI",
                "Plan: team",
                "Approved. It becomes active & ready."
            ]
        );
    }

    #[test]
    fn the_summary_is_one_line_naming_the_outcome() {
        let mut r = Report {
            step: "order",
            account: "demo-buyer".into(),
            check: Some(json!({"allowed": false, "reason": "pending_signup"})),
            ..Report::default()
        };
        assert_eq!(
            r.summary(),
            "ok: gcp order done; demo-buyer is not entitled (pending_signup)"
        );
        r.failure = Some("boom".into());
        assert!(r.summary().starts_with("FAILED: gcp order"));
        assert!(!r.summary().contains('\n'));
        let j = r.to_json();
        assert_eq!((&j["ok"], &j["error"]), (&json!(false), &json!("boom")));
    }
}
