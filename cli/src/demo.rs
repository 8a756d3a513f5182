//! `tollgate demo` (what `make demo` runs): a narrated tour of the three
//! marketplaces against a running `tollgate dev`, through the same code as
//! `tollgate fire` — each step asks a stand-in to act as the marketplace,
//! the stand-in sends the signed event, and the tour prints the request,
//! the function's answer and the resulting `/v1/check` answer.
//!
//! Per marketplace: purchase (with a trial where the marketplace has one)
//! → sign-up or sign-in → check allowed → seat claimed → plan change →
//! pending cancellation → cancelled → check denied. Every run plays new
//! customers (ids from the clock), so a tour never collides with an earlier
//! one or with what was fired by hand: no reset is needed. Exits non-zero
//! at the first step that fails, saying which and why.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};
use tollgate_sim::github::control::FireRequest;
use tollgate_sim::github::webhook::Action;
use tollgate_sim::q2::stand_in::Q2Request;

use crate::fire::{self, FireError, check};

/// purchase-webhook's port under `make dev`; the others are derived from it.
pub const DEFAULT_PORT: u16 = crate::dev::DEFAULT_PORT;

// `tollgate demo`: every URL defaults to `make dev`'s for `--port`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Needs a running `tollgate dev` (`make demo` starts one when none \
listens on DEV_PORT).\nEvery run plays new customers, so it can run again without a reset. \
Exits 0 when every step did what the marketplace and Tollgate promise, 1 at the first step \
that did not."
)]
pub struct Args {
    /// purchase-webhook's port of the `tollgate dev` to tour (the other URLs follow from it as `make dev` lays them out)
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Wait up to this many seconds for the dev server to answer before starting
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub wait: u64,
    /// purchase-webhook [default: http://127.0.0.1:<port>]
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// oauth-callback [default: http://127.0.0.1:<port+2>]
    #[arg(long, value_name = "URL")]
    pub oauth_url: Option<String>,
    /// entitlement-check [default: http://127.0.0.1:<port+3>]
    #[arg(long, value_name = "URL")]
    pub check_url: Option<String>,
    /// The GitHub stand-in (github.com's) [default: http://127.0.0.1:<port+100>]
    #[arg(long, value_name = "URL")]
    pub github_sim_url: Option<String>,
    /// The Google stand-in [default: http://127.0.0.1:<port+102>]
    #[arg(long, value_name = "URL")]
    pub gcp_sim_url: Option<String>,
    /// The Q2 stand-in [default: http://127.0.0.1:<port+103>]
    #[arg(long, value_name = "URL")]
    pub q2_sim_url: Option<String>,
}

/// The URLs the tour uses.
#[derive(Debug, Clone)]
struct Urls {
    webhook: String,
    oauth: String,
    check: String,
    github_sim: String,
    gcp_sim: String,
    q2_sim: String,
}

impl Urls {
    fn from(a: &Args) -> Self {
        let at = |offset: u16| format!("http://127.0.0.1:{}", a.port.saturating_add(offset));
        let pick = |given: &Option<String>, offset: u16| {
            given
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_owned())
                .unwrap_or_else(|| at(offset))
        };
        Self {
            webhook: pick(&a.webhook_url, 0),
            oauth: pick(&a.oauth_url, 2),
            check: pick(&a.check_url, 3),
            github_sim: pick(&a.github_sim_url, 100),
            gcp_sim: pick(&a.gcp_sim_url, 102),
            q2_sim: pick(&a.q2_sim_url, 103),
        }
    }

    fn check_endpoint(&self) -> String {
        format!("{}/v1/check", self.check)
    }
}

/// Narrates the tour on stdout.
struct Tour {
    urls: Urls,
    http: reqwest::Client,
    steps: std::cell::Cell<usize>,
    started: Instant,
}

impl Tour {
    /// Prints a step's title.
    fn step(&self, title: &str) {
        self.steps.set(self.steps.get() + 1);
        println!("\n[{}] {title}", self.steps.get());
    }

    fn show(&self, text: &str) {
        for line in text.lines() {
            println!("    {line}");
        }
    }

    /// Asks `/v1/check`, printing the question and the answer.
    async fn check(&self, question: Value) -> Result<Value, FireError> {
        println!("    POST {} {question}", self.urls.check_endpoint());
        let answer = check::ask(&self.urls.check_endpoint(), &question).await?;
        println!("    -> {}", check::line(&answer));
        Ok(answer)
    }
}

fn expect(what: &str, answer: &Value, allowed: bool) -> Result<(), FireError> {
    if answer["allowed"] == allowed {
        Ok(())
    } else {
        Err(FireError::NotApplied(format!(
            "{what}: expected {}, got {}",
            if allowed { "allowed" } else { "denied" },
            check::line(answer)
        )))
    }
}

fn expect_status(what: &str, answer: &Value, status: &str) -> Result<(), FireError> {
    if answer["status"] == status {
        Ok(())
    } else {
        Err(FireError::NotApplied(format!(
            "{what}: expected status {status}, got {}",
            check::line(answer)
        )))
    }
}

pub async fn run(args: Args) -> Result<(), String> {
    let urls = Urls::from(&args);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    wait_for_dev(&http, &urls, Duration::from_secs(args.wait)).await?;
    let tag = Utc::now().timestamp_millis().rem_euclid(1_000_000_000);
    println!(
        "Tollgate demo: GitHub, Google and Q2 against the dev server at {} (entitlement-check {})",
        urls.webhook, urls.check
    );
    println!(
        "Every step asks a marketplace stand-in to act; it sends the signed event, and /v1/check says what the customer may do now. New customers each run (tag {tag})."
    );
    let tour = Tour {
        urls,
        http,
        steps: std::cell::Cell::new(0),
        started: Instant::now(),
    };
    let result = async {
        github(&tour, tag).await?;
        google(&tour, tag).await?;
        q2(&tour, tag).await
    }
    .await;
    let secs = tour.started.elapsed().as_secs_f64();
    match result {
        Ok(()) => {
            println!(
                "\nok: demo finished: {} steps on GitHub, Google and Q2 in {secs:.1} s",
                tour.steps.get()
            );
            Ok(())
        }
        Err(e) => {
            println!(
                "\nFAILED: demo step {} after {secs:.1} s: {e}",
                tour.steps.get()
            );
            Err(format!("demo step {}: {e}", tour.steps.get()))
        }
    }
}

/// Waits until purchase-webhook answers `/healthz`, up to `patience`.
async fn wait_for_dev(
    http: &reqwest::Client,
    urls: &Urls,
    patience: Duration,
) -> Result<(), String> {
    let url = format!("{}/healthz", urls.webhook);
    let deadline = Instant::now() + patience;
    loop {
        match http.get(&url).send().await {
            Ok(res) if res.status().is_success() => return Ok(()),
            Ok(res) => {
                return Err(format!(
                    "{url} answered {}: is this a `tollgate dev`?",
                    res.status()
                ));
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "cannot reach the dev server at {url}: start `make dev` first (or run `make demo`, which starts one), or pass --port ({e})"
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// GitHub: a trial purchase, the buyer's sign-in, a seat, an upgrade that
/// ends the trial, a cancellation at the end of the cycle, its end.
async fn github(tour: &Tour, tag: i64) -> Result<(), FireError> {
    let account = 10_000_000_000 + u64::try_from(tag).unwrap_or(0);
    let login = format!("demo-{tag}");
    println!("\n== GitHub Marketplace: organization {login} (account {account}) ==");
    let step = |action: Action, request: FireRequest| fire::github::Step {
        sim_url: tour.urls.github_sim.clone(),
        account,
        action,
        request,
        check: Some((
            tour.urls.check_endpoint(),
            fire::github::DEFAULT_PRODUCT.to_owned(),
        )),
        feature: Some("private-repos".to_owned()),
    };
    let play = play_github;

    tour.step("GitHub: the org buys Team, 3 seats, on a 14-day free trial");
    let d = play(
        tour,
        step(
            Action::Purchased,
            FireRequest {
                plan: Some(1002),
                units: Some(3),
                trial: true,
                login: Some(login.clone()),
                ..FireRequest::default()
            },
        ),
    )
    .await?;
    expect_status("after the trial purchase", &d, "trial")?;

    tour.step(
        "GitHub: the buyer signs in (Setup URL -> the stand-in's authorize page -> callback)",
    );
    github_sign_in(tour, &login).await?;

    tour.step("GitHub: the vendor's app asks whether the org may use private repos");
    let d = tour
        .check(json!({"marketplace": "github", "customer_id": account.to_string(), "product": "acme-ci", "feature": "private-repos"}))
        .await?;
    expect("private repos on the trial", &d, true)?;

    tour.step("GitHub: octocat takes one of the 3 seats");
    let d = tour
        .check(json!({"marketplace": "github", "customer_id": account.to_string(), "product": "acme-ci", "user": "octocat", "claim_seat": true}))
        .await?;
    expect("the seat claim", &d, true)?;

    tour.step("GitHub: the org upgrades to Business (the trial ends: now paid)");
    let d = play(
        tour,
        step(
            Action::Changed,
            FireRequest {
                plan: Some(1003),
                ..FireRequest::default()
            },
        ),
    )
    .await?;
    expect_status("after the upgrade", &d, "active")?;

    tour.step("GitHub: the org cancels; a paid plan keeps access to the end of the cycle");
    let d = play(tour, step(Action::Cancelled, FireRequest::default())).await?;
    expect_status("after the cancellation", &d, "pending_cancellation")?;
    expect("during the pending cancellation", &d, true)?;

    tour.step("GitHub: the cycle ends; GitHub sends `cancelled`");
    let d = play(tour, step(Action::Cancelled, FireRequest::default())).await?;
    expect_status("after the cycle ended", &d, "cancelled")?;

    tour.step("GitHub: private repos are denied now (the org keeps the free tier)");
    let d = tour
        .check(json!({"marketplace": "github", "customer_id": account.to_string(), "product": "acme-ci", "feature": "private-repos"}))
        .await?;
    expect("private repos after the cancellation", &d, false)
}

/// Plays one `fire github` step, printing what it did; the check's answer.
async fn play_github(tour: &Tour, s: fire::github::Step) -> Result<Value, FireError> {
    println!(
        "    $ tollgate fire github {}{} --account {}",
        s.action,
        fire_flags(&s.request),
        s.account
    );
    let report = fire::github::play(&s).await;
    tour.show(&report.text());
    match report.failure {
        Some(why) => Err(FireError::NotApplied(why)),
        None => Ok(report.check.unwrap_or(Value::Null)),
    }
}

/// The flags `fire github` takes for `r`, as a newcomer would type them.
fn fire_flags(r: &FireRequest) -> String {
    let mut out = String::new();
    if let Some(p) = r.plan {
        out.push_str(&format!(" --plan {p}"));
    }
    if let Some(u) = r.units {
        out.push_str(&format!(" --units {u}"));
    }
    if r.trial {
        out.push_str(" --trial");
    }
    if r.now {
        out.push_str(" --now");
    }
    if let Some(l) = &r.login {
        out.push_str(&format!(" --login {l}"));
    }
    out
}

/// The sign-in a browser does after a purchase, over HTTP: the Setup URL
/// (a cookie and a redirect to github.com), the stand-in's authorize page
/// (approves as the signed-in user), the callback (with the cookie).
async fn github_sign_in(tour: &Tour, login: &str) -> Result<(), FireError> {
    let unreachable =
        |url: &str, e: reqwest::Error| FireError::Unreachable(format!("GET {url}: {e}"));
    let location = |res: &reqwest::Response| {
        res.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let setup = format!("{}/github/setup", tour.urls.oauth);
    let res = tour
        .http
        .get(&setup)
        .send()
        .await
        .map_err(|e| unreachable(&setup, e))?;
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let authorize = location(&res);
    println!(
        "    GET {setup} -> {} (sign-in cookie set), to {}",
        res.status(),
        authorize.split('?').next().unwrap_or_default()
    );
    if authorize.is_empty() || cookie.is_empty() {
        return Err(FireError::NotApplied(format!(
            "the Setup URL answered {} without a redirect and a cookie",
            res.status()
        )));
    }
    let res = tour
        .http
        .get(&authorize)
        .send()
        .await
        .map_err(|e| unreachable(&authorize, e))?;
    let callback = location(&res);
    println!(
        "    GET {} -> {} (octocat approves), to {}",
        authorize.split('?').next().unwrap_or_default(),
        res.status(),
        callback.split('?').next().unwrap_or_default()
    );
    if callback.is_empty() {
        return Err(FireError::NotApplied(format!(
            "the authorize page answered {} without a redirect",
            res.status()
        )));
    }
    let res = tour
        .http
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .map_err(|e| unreachable(&callback, e))?;
    let status = res.status();
    let page = res
        .text()
        .await
        .map_err(|e| FireError::Unreachable(format!("reading the callback page: {e}")))?;
    println!(
        "    GET {} -> {status}; the page says:",
        callback.split('?').next().unwrap_or_default()
    );
    let said = fire::gcp::page_text(&page);
    // The greeting, then the block about this purchase (the page lists
    // every account the user can see).
    let at = said.iter().position(|l| l.contains(login));
    let block = at.map_or(0..0, |i| i.saturating_sub(3)..(i + 6).min(said.len()));
    for l in said.iter().take(2).chain(said.get(block).unwrap_or(&[])) {
        println!("      {l}");
    }
    if !status.is_success() {
        return Err(FireError::NotApplied(format!(
            "the sign-in callback answered {status}"
        )));
    }
    if !said.iter().any(|l| l.contains(login)) {
        return Err(FireError::NotApplied(format!(
            "the sign-in page does not list {login}'s purchase"
        )));
    }
    Ok(())
}

/// Google: an order waiting for sign-up, the sign-up, a seat, a plan change,
/// a cancellation to the end of the term, the end of the term.
async fn google(tour: &Tour, tag: i64) -> Result<(), FireError> {
    use fire::gcp::{Common, EntitlementArgs, OrderArgs, PlanChangeArgs, SignupArgs, Step, Target};
    let account = format!("demo-{tag}");
    println!("\n== Google Cloud Marketplace: Procurement account {account} ==");
    let common = Common {
        sim_url: tour.urls.gcp_sim.clone(),
        check_url: tour.urls.check_endpoint(),
        product: fire::gcp::DEFAULT_PRODUCT.to_owned(),
        no_check: false,
        json: crate::args::Json { json: false },
    };
    let target = Target {
        entitlement: None,
        account: Some(account.clone()),
    };
    let play = play_gcp;

    tour.step(
        "Google: the customer orders team-monthly (Google has no trial here); it waits for sign-up",
    );
    let d = play(
        tour,
        format!("order --account {account} --plan team-monthly"),
        Step::Order(OrderArgs {
            account: account.clone(),
            plan: "team-monthly".into(),
            private_offer: false,
            common: common.clone(),
        }),
    )
    .await?;
    expect("before the sign-up", &d, false)?;

    tour.step("Google: the customer signs up (Google's form POSTs its token to /gcp/signup); Tollgate approves");
    let d = play(
        tour,
        format!("signup --account {account}"),
        Step::Signup(SignupArgs {
            account: account.clone(),
            signup_url: format!("{}{}", tour.urls.oauth, fire::gcp::SIGNUP_PATH),
            common: common.clone(),
        }),
    )
    .await?;
    expect("after the sign-up", &d, true)?;

    tour.step("Google: the vendor's app asks whether the account may use private repos");
    let d = tour
        .check(json!({"marketplace": "gcp", "customer_id": account, "product": "acme-ci", "feature": "private-repos"}))
        .await?;
    expect("private repos", &d, true)?;

    tour.step("Google: a user of the account takes a seat (Google sells no seat count here: allowed, nothing counted)");
    let d = tour
        .check(json!({"marketplace": "gcp", "customer_id": account, "product": "acme-ci", "user": "alice@example.com", "claim_seat": true}))
        .await?;
    expect("the seat claim", &d, true)?;

    tour.step("Google: the customer moves to business-yearly (Tollgate approves the plan change)");
    play(
        tour,
        format!("request-plan-change --plan business-yearly --account {account}"),
        Step::RequestPlanChange(PlanChangeArgs {
            plan: "business-yearly".into(),
            target: target.clone(),
            common: common.clone(),
        }),
    )
    .await?;

    tour.step("Google: the customer cancels; access lasts until the end of the term");
    let d = play(
        tour,
        format!("cancel --account {account}"),
        Step::Cancel(EntitlementArgs {
            target: target.clone(),
            common: common.clone(),
        }),
    )
    .await?;
    expect_status("after the cancellation", &d, "pending_cancellation")?;

    tour.step("Google: the term ends; the cancellation is final");
    play(
        tour,
        format!("end-term --account {account}"),
        Step::EndTerm(EntitlementArgs { target, common }),
    )
    .await?;

    tour.step("Google: private repos are denied now");
    let d = tour
        .check(json!({"marketplace": "gcp", "customer_id": account, "product": "acme-ci", "feature": "private-repos"}))
        .await?;
    expect("private repos after the cancellation", &d, false)
}

/// Plays one `fire gcp` step, printing what it did; the check's answer.
async fn play_gcp(tour: &Tour, shown: String, step: fire::gcp::Step) -> Result<Value, FireError> {
    println!("    $ tollgate fire gcp {shown}");
    let played = fire::gcp::play(&step).await;
    tour.show(&played.text);
    match played.failure {
        Some(why) => Err(FireError::NotApplied(why)),
        None => Ok(played.check.unwrap_or(Value::Null)),
    }
}

/// Plays one `fire q2` step, printing what it did; the checks' answers.
async fn play_q2(tour: &Tour, request: Q2Request) -> Result<Vec<fire::q2::Checked>, FireError> {
    println!(
        "    $ tollgate fire q2 {} --fi '{}' --user {}{}",
        request.action,
        request.fi_name,
        request.user_id,
        request
            .edition
            .as_deref()
            .map(|e| format!(" --edition {e}"))
            .unwrap_or_default()
    );
    let step = fire::q2::Step {
        sim_url: tour.urls.q2_sim.clone(),
        request,
        check_url: Some(tour.urls.check_endpoint()),
    };
    let report = fire::q2::play(&step).await;
    tour.show(&report.text());
    match report.failure {
        Some(why) => Err(FireError::NotApplied(why)),
        None => Ok(report.checks),
    }
}

/// Q2: an order (Q2 has no trial and no sign-up page: the user is already
/// signed in to online banking), a seat, a downgrade, a cancellation.
async fn q2(tour: &Tour, tag: i64) -> Result<(), FireError> {
    let user = u64::try_from(tag).unwrap_or(0);
    let fi = "Demo Credit Union";
    let customer = format!("{fi}:{user}");
    println!("\n== Q2: user {user} of {fi} (customer \"{customer}\") ==");
    let request = |action: &str, edition: Option<&str>| Q2Request {
        action: action.to_owned(),
        subscription: None,
        fi_name: fi.to_owned(),
        user_id: user,
        product_identifier: fire::q2::DEMO_PRODUCT_IDENTIFIER.to_owned(),
        edition: edition.map(str::to_owned),
        users: None,
        pricing: None,
        casing: None,
    };
    let play = play_q2;
    let reports = |checks: &[fire::q2::Checked]| {
        checks
            .iter()
            .find(|c| c.feature == "BudgetHelperReports")
            .map(|c| c.answer.clone())
            .unwrap_or(Value::Null)
    };

    tour.step("Q2: the user subscribes to Budget Helper PREMIUM (Q2 has no trial; the user is signed in to online banking, so no sign-up page)");
    let checks = play(tour, request("subscribe", Some("PREMIUM"))).await?;
    expect("the reports extension on PREMIUM", &reports(&checks), true)?;

    tour.step("Q2: the extension's guard asks before serving the user (and takes a seat)");
    let d = tour
        .check(json!({"marketplace": "q2", "customer_id": customer, "product": "budget-helper", "feature": "BudgetHelper", "user": user.to_string(), "claim_seat": true}))
        .await?;
    expect("the seat claim", &d, true)?;

    tour.step("Q2: the user moves to STANDARD (Q2 applies edition changes at once)");
    let checks = play(tour, request("update", Some("STANDARD"))).await?;
    expect(
        "the reports extension on STANDARD",
        &reports(&checks),
        false,
    )?;

    tour.step("Q2: the user cancels; access lasts to the end of the month paid (cancel_access = \"end_of_period\")");
    let checks = play(tour, request("cancel", None)).await?;
    let helper = checks
        .iter()
        .find(|c| c.feature == "BudgetHelper")
        .map(|c| c.answer.clone())
        .unwrap_or(Value::Null);
    expect_status("after the cancellation", &helper, "pending_cancellation")?;
    expect("Budget Helper until the period ends", &helper, true)?;
    println!(
        "    Q2 sends nothing when the period ends: /v1/check denies from access_until on ({}).",
        helper["access_until"].as_str().unwrap_or("?")
    );

    tour.step("Q2: the user subscribes again, then a second order for the same user is refused");
    play(tour, request("subscribe", Some("STANDARD"))).await?;
    let mut again = request("subscribe", Some("PREMIUM"));
    again.subscription = Some(tollgate_sim::q2::new_subscription_id());
    match play(tour, again).await {
        Err(FireError::NotApplied(why)) if why.contains("USER_ALREADY_EXISTS") => {
            println!(
                "    Refused, as it should be: Q2 holds one live subscription per user and product, and Q2 keeps nothing it was refused."
            );
            Ok(())
        }
        Err(e) => Err(e),
        Ok(_) => Err(FireError::NotApplied(
            "a second live subscription for the same user was accepted".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command, sim};

    #[test]
    fn urls_follow_the_dev_servers_layout_unless_given() {
        let Command::Demo(a) = Cli::try_parse_from(["tollgate", "demo", "--port", "9301"])
            .unwrap()
            .command
        else {
            unreachable!()
        };
        let u = Urls::from(&a);
        assert_eq!(u.webhook, "http://127.0.0.1:9301");
        assert_eq!(u.oauth, "http://127.0.0.1:9303");
        assert_eq!(u.check_endpoint(), "http://127.0.0.1:9304/v1/check");
        assert_eq!(
            (u.github_sim.as_str(), u.gcp_sim.as_str(), u.q2_sim.as_str()),
            (
                "http://127.0.0.1:9401",
                "http://127.0.0.1:9403",
                "http://127.0.0.1:9404"
            )
        );
        let Command::Demo(a) =
            Cli::try_parse_from(["tollgate", "demo", "--q2-sim-url", "http://127.0.0.1:5/"])
                .unwrap()
                .command
        else {
            unreachable!()
        };
        let u = Urls::from(&a);
        assert_eq!(u.q2_sim, "http://127.0.0.1:5");
        assert_eq!(u.webhook, "http://127.0.0.1:9101");
        assert_eq!(
            u.github_sim,
            format!("http://127.0.0.1:{}", sim::DEFAULT_PORT)
        );
    }

    #[test]
    fn the_shown_command_names_only_what_the_step_sets() {
        assert_eq!(fire_flags(&FireRequest::default()), "");
        let r = FireRequest {
            plan: Some(1002),
            units: Some(3),
            trial: true,
            login: Some("demo-1".into()),
            ..FireRequest::default()
        };
        assert_eq!(
            fire_flags(&r),
            " --plan 1002 --units 3 --trial --login demo-1"
        );
    }
}
