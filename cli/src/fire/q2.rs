//! `tollgate fire q2 <subscribe|update|cancel>`: plays Q2's marketplace
//! against a running `tollgate dev` — the local counterpart of `q2
//! marketplace invoke_subscribe / invoke_update / invoke_cancel`. The Q2
//! stand-in (`--sim-url`) holds the user's subscription: this command asks
//! it to subscribe, update or cancel, and the stand-in changes the
//! subscription and relays the event to purchase-webhook's `POST /q2`,
//! signed with `q2_signing_secret` (`Tollgate-Signature`), as the vendor's
//! Q2 extension relays it ([`tollgate_sim::q2::stand_in`]). Then it asks
//! entitlement-check what the user may use, one line per extension of the
//! product (read from `TOLLGATE_CONFIG`, else `tollgate.toml`, else
//! `tollgate.example.toml`, as `make dev` picks).
//!
//! Each action starts from the subscription the stand-in holds and changes
//! only what the flags name: `subscribe` orders `--edition` (default: the
//! held one, else PREMIUM), `update` changes `--edition`/`--users`/
//! `--pricing`, `cancel` cancels (with `cancel_access = "end_of_period"`
//! the user keeps access to the end of the period paid). Exits non-zero
//! unless Q2's answer is a success.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tollgate::config::Catalog;
use tollgate::marketplace::q2::SECRET_NAME;
use tollgate::setup::Settings;
use tollgate_sim::q2::stand_in::{Q2Fired, Q2Request, Remote, RemoteError, SubscriptionView};

use super::{FireError, check};
use crate::args::Json;

/// The Q2 stand-in under `make dev` (purchase-webhook's port + 103).
pub const DEFAULT_SIM_URL: &str = "http://127.0.0.1:9204";
/// entitlement-check's check route under `make dev`.
pub const DEFAULT_CHECK_URL: &str = super::DEFAULT_CHECK_URL;
/// The example configuration's Q2 product.
pub const DEMO_PRODUCT_IDENTIFIER: &str = "3f2c7f0e-budgethelper";
/// The demo user's institution and id.
pub const DEMO_FI: &str = "Local Credit Union";
pub const DEMO_USER: u64 = 123_456;

// `tollgate fire q2 <action> [flags]`. A bare action plays the demo user;
// an unknown flag is refused.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "The Q2 stand-in of `tollgate dev` changes the user's subscription and relays \
the signed event (q2_signing_secret) to purchase-webhook.\nPrints Q2's answer and the entitlement \
per extension; exits non-zero unless the answer is a success."
)]
pub struct Args {
    /// What the extension's handler was called for
    #[arg(value_enum)]
    pub action: FireAction,
    /// The Q2 stand-in (its /_sim API)
    #[arg(long, value_name = "URL", default_value = DEFAULT_SIM_URL)]
    pub sim_url: String,
    /// entitlement-check's /v1/check
    #[arg(long, value_name = "URL", default_value = DEFAULT_CHECK_URL)]
    pub check_url: String,
    /// Q2's subscription GUID, `new` for a fresh one [default: subscribe: the user's live one, else a new one; update/cancel: the user's only live one]
    #[arg(long)]
    pub subscription: Option<String>,
    /// The financial institution (`fi_name`)
    #[arg(long, default_value = DEMO_FI)]
    pub fi: String,
    /// The user's id in the institution's Q2 database
    #[arg(long, default_value_t = DEMO_USER)]
    pub user: u64,
    /// The marketplace product identifier (configuration/products.py)
    #[arg(long, default_value = DEMO_PRODUCT_IDENTIFIER)]
    pub product: String,
    /// The edition [default: the one held; a first subscribe: PREMIUM]
    #[arg(long)]
    pub edition: Option<String>,
    /// Users on the order (the `USER` item's quantity) [default: the ones held, else 1]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub users: Option<u32>,
    /// Billing period [default: the one held, else monthly]
    #[arg(long, value_enum)]
    pub pricing: Option<Pricing>,
    /// How the relay writes the event
    #[arg(long, value_enum, default_value_t = FireCasing::Snake)]
    pub casing: FireCasing,
    /// Do not ask entitlement-check afterwards
    #[arg(long)]
    pub no_check: bool,
    #[command(flatten)]
    pub json: Json,
}

/// The handler method of the extension, and the event it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FireAction {
    /// SUBSCRIPTION_ORDER
    Subscribe,
    /// SUBSCRIPTION_CHANGE
    Update,
    /// SUBSCRIPTION_CANCEL
    Cancel,
}

impl FireAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FireAction::Subscribe => "subscribe",
            FireAction::Update => "update",
            FireAction::Cancel => "cancel",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pricing {
    Monthly,
    Yearly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FireCasing {
    /// The SubscriptionEvent's field names
    Snake,
    /// Their camelCase forms
    Camel,
    /// The AppDirect event alone
    Bare,
}

/// What the stand-in is asked.
pub fn request(args: &Args) -> Q2Request {
    Q2Request {
        action: args.action.as_str().to_owned(),
        subscription: args.subscription.as_deref().map(|s| match s {
            "new" => tollgate_sim::q2::new_subscription_id(),
            id => id.to_owned(),
        }),
        fi_name: args.fi.clone(),
        user_id: args.user,
        product_identifier: args.product.clone(),
        edition: args.edition.clone(),
        users: args.users,
        pricing: args.pricing.map(|p| match p {
            Pricing::Monthly => "MONTHLY".to_owned(),
            Pricing::Yearly => "YEARLY".to_owned(),
        }),
        casing: Some(
            match args.casing {
                FireCasing::Snake => "snake",
                FireCasing::Camel => "camel",
                FireCasing::Bare => "bare",
            }
            .to_owned(),
        ),
    }
}

/// One step, as the demo and `fire q2` play it.
#[derive(Debug, Clone)]
pub struct Step {
    pub sim_url: String,
    pub request: Q2Request,
    /// entitlement-check's URL; `None`: no check.
    pub check_url: Option<String>,
}

/// What entitlement-check said about one extension (or the product).
#[derive(Debug, Clone)]
pub struct Checked {
    pub feature: String,
    pub answer: Value,
}

/// What one step did (`--json`: this object).
#[derive(Debug, Default)]
pub struct Report {
    pub asked: String,
    pub fired: Option<Q2Fired>,
    pub answer: Option<Value>,
    pub product: Option<String>,
    pub checks: Vec<Checked>,
    pub failure: Option<String>,
}

impl Report {
    pub fn to_json(&self) -> Value {
        let f = self.fired.as_ref();
        json!({
            "ok": self.failure.is_none(),
            "marketplace": "q2",
            "asked": self.asked,
            "event_type": f.map(|f| &f.event_type),
            "customer_id": f.map(|f| &f.customer_id),
            "previous": f.and_then(|f| f.previous.as_ref()),
            "subscription": f.map(|f| &f.subscription),
            "relay": f.map(|f| json!({"url": f.relay.url, "status": f.relay.status, "error": f.relay.error})),
            "answer": self.answer,
            "product": self.product,
            "checks": self.checks.iter().map(|c| json!({"feature": c.feature, "answer": c.answer})).collect::<Vec<_>>(),
            "error": self.failure,
        })
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(f) = &self.fired {
            out.push_str(&format!(
                "Q2: {} subscription {} for {}\n  before: {}\n  after:  {}\n",
                f.event_type,
                f.subscription.subscription_id,
                f.customer_id,
                subscription_text(f.previous.as_ref()),
                subscription_text(Some(&f.subscription)),
            ));
            out.push_str(&format!(
                "POST {}  {} relayed by the extension, signed Tollgate-Signature\n",
                f.relay.url, f.event_type
            ));
            let answer = match (f.relay.status, &self.answer, &f.relay.error) {
                (Some(s), Some(a), _) => format!("{s} {a}"),
                (Some(s), None, _) => format!("{s} {}", f.relay.reply),
                (None, _, Some(e)) => format!("no answer: {e}"),
                (None, _, None) => "no answer".to_owned(),
            };
            out.push_str(&format!("  -> {answer}\n"));
        }
        if let (Some(f), Some(product)) = (&self.fired, &self.product) {
            out.push_str(&format!(
                "Tollgate /v1/check (q2 customer \"{}\", product {product}):\n",
                f.customer_id
            ));
            let width = self
                .checks
                .iter()
                .map(|c| c.feature.len())
                .max()
                .unwrap_or(0);
            for c in &self.checks {
                out.push_str(&format!(
                    "  {:<width$}  {}\n",
                    c.feature,
                    check::line(&c.answer)
                ));
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    pub fn summary(&self) -> String {
        match (&self.failure, &self.fired) {
            (Some(why), _) => format!("FAILED: q2 {}: {why}", self.asked),
            (None, Some(f)) => format!(
                "ok: q2 {}: Q2 answered success for {} ({})",
                self.asked, f.customer_id, f.subscription.subscription_id
            ),
            (None, None) => format!("ok: q2 {}", self.asked),
        }
    }
}

/// A subscription on one line.
pub fn subscription_text(s: Option<&SubscriptionView>) -> String {
    match s {
        None => "no subscription".to_owned(),
        Some(s) => format!(
            "{} {}, {} user(s), {}",
            s.status,
            s.edition.as_deref().unwrap_or("(no edition)"),
            s.users,
            s.pricing
        ),
    }
}

/// Plays one step: the stand-in acts and relays; then the checks.
pub async fn play(step: &Step) -> Report {
    let mut report = Report {
        asked: step.request.action.clone(),
        ..Report::default()
    };
    if let Err(e) = relay(step, &mut report).await {
        report.failure = Some(e.to_string());
    }
    let customer = report
        .fired
        .as_ref()
        .filter(|f| f.relay.status.is_some())
        .map(|f| f.customer_id.clone());
    if let (Some(url), Some(customer)) = (&step.check_url, customer)
        && let Err(e) = checks(
            url,
            &step.request.product_identifier,
            &customer,
            &mut report,
        )
        .await
    {
        report.failure.get_or_insert(e.to_string());
    }
    report
}

async fn relay(step: &Step, report: &mut Report) -> Result<(), FireError> {
    let fired = Remote::new(&step.sim_url)
        .fire(&step.request)
        .await
        .map_err(|e| match e {
            RemoteError::Unreachable { .. } => FireError::Unreachable(format!(
                "{e} — is `make dev` (tollgate dev) running with its Q2 stand-in at {}? (--sim-url says where)",
                step.sim_url
            )),
            RemoteError::Refused { .. } => FireError::Refused(e.to_string()),
        })?;
    let answer: Option<Value> = serde_json::from_str(&fired.relay.reply).ok();
    let verdict = match fired.relay.status {
        None => Err(FireError::Unreachable(format!(
            "the Q2 stand-in could not relay to {}: {} — is purchase-webhook running?",
            fired.relay.url,
            fired.relay.error.as_deref().unwrap_or("no answer")
        ))),
        Some(s) if !(200..300).contains(&s) => Err(FireError::NotApplied(format!(
            "purchase-webhook answered {s}: {}",
            fired
                .relay
                .reply
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ))),
        Some(_) if answer.as_ref().and_then(|a| a["success"].as_bool()) == Some(true) => Ok(()),
        Some(_) => {
            let a = answer.as_ref();
            let code = a
                .and_then(|a| a["errorCode"].as_str())
                .unwrap_or("no errorCode");
            let message = a.and_then(|a| a["message"].as_str()).unwrap_or("");
            Err(FireError::NotApplied(format!(
                "Q2 was answered with a failure: {code}: {message}"
            )))
        }
    };
    report.answer = answer;
    report.fired = Some(fired);
    verdict
}

/// Asks entitlement-check about each extension of the product.
async fn checks(
    url: &str,
    product_identifier: &str,
    customer: &str,
    report: &mut Report,
) -> Result<(), FireError> {
    let path = config_path();
    let catalog = Catalog::load(&path).map_err(|e| FireError::Setup(e.to_string()))?;
    let Some((product, q2)) = catalog.q2_product(product_identifier) else {
        return Ok(());
    };
    report.product = Some(product.to_owned());
    let features: Vec<Option<&str>> = if q2.extensions.is_empty() {
        vec![None]
    } else {
        q2.extensions.iter().map(|e| Some(e.as_str())).collect()
    };
    for feature in features {
        let mut q = json!({"marketplace": "q2", "customer_id": customer, "product": product});
        if let Some(f) = feature {
            q["feature"] = json!(f);
        }
        let answer = check::ask(url, &q).await?;
        report.checks.push(Checked {
            feature: feature.unwrap_or(product).to_owned(),
            answer,
        });
    }
    Ok(())
}

pub async fn run(args: Args) -> Result<(), String> {
    let step = Step {
        sim_url: args.sim_url.clone(),
        request: request(&args),
        check_url: (!args.no_check).then(|| args.check_url.clone()),
    };
    let report = play(&step).await;
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

/// Where the dev server reads its config: `TOLLGATE_CONFIG`, else
/// `tollgate.toml` if there is one, else the example (as `make dev` picks).
fn config_path() -> PathBuf {
    if std::env::var_os("TOLLGATE_CONFIG").is_some() {
        return Settings::from_env().config_path;
    }
    let own = Path::new("tollgate.toml");
    if own.exists() {
        own.to_owned()
    } else {
        PathBuf::from("tollgate.example.toml")
    }
}

/// Adds a random `q2_signing_secret` to the JSON secrets file at `path`
/// unless it has one (every other entry kept); whether it did. What the
/// relay and `tollgate fire q2` then sign with.
pub fn ensure_signing_secret(path: &Path) -> Result<bool, String> {
    // No secret rather than a guessable one if the OS random source fails.
    crate::sim::ensure_secret(path, SECRET_NAME, || {
        tollgate::web::random_token(32).map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command, fire};

    fn parse(line: &str) -> Result<Args, clap::Error> {
        let argv = ["tollgate", "fire"]
            .into_iter()
            .chain(line.split_whitespace());
        match Cli::try_parse_from(argv)?.command {
            Command::Fire(fire::Marketplace::Q2(args)) => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bare_action_names_only_the_demo_user_and_product() {
        let r = request(&parse("q2 update").unwrap());
        assert_eq!(r.action, "update");
        assert_eq!(
            (r.fi_name.as_str(), r.user_id, r.product_identifier.as_str()),
            (DEMO_FI, DEMO_USER, DEMO_PRODUCT_IDENTIFIER)
        );
        assert_eq!(
            (r.subscription, r.edition, r.users, r.pricing),
            (None, None, None, None)
        );
    }

    #[test]
    fn new_names_a_fresh_subscription() {
        let r = request(&parse("q2 subscribe --subscription new").unwrap());
        let id = r.subscription.unwrap();
        assert_eq!((id.len(), &id[14..15]), (36, "4"));
    }

    #[test]
    fn flags_name_what_changes() {
        let a = parse("q2 subscribe --user 7 --fi Other --edition STANDARD --users 3 --pricing yearly --casing camel --subscription s-1").unwrap();
        let r = request(&a);
        assert_eq!((r.user_id, r.fi_name.as_str()), (7, "Other"));
        assert_eq!(r.edition.as_deref(), Some("STANDARD"));
        assert_eq!((r.users, r.pricing.as_deref()), (Some(3), Some("YEARLY")));
        assert_eq!(
            (r.casing.as_deref(), r.subscription.as_deref()),
            (Some("camel"), Some("s-1"))
        );
    }

    #[test]
    fn unknown_actions_and_bad_flags_are_refused() {
        for line in [
            "q2",
            "q2 order",
            "q2 subscribe --users 0",
            "q2 subscribe --casing kebab",
            "q2 subscribe --pricing weekly",
            "q2 subscribe --usr 7",
            "q2 subscribe --url http://127.0.0.1:9101/q2",
        ] {
            assert!(parse(line).is_err(), "{line}");
        }
    }

    #[test]
    fn a_signing_secret_is_added_once_and_other_secrets_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        std::fs::write(&path, r#"{"github_webhook_secret": "g"}"#).unwrap();
        assert_eq!(ensure_signing_secret(&path), Ok(true));
        let first: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(first["github_webhook_secret"], "g");
        assert_eq!(first[SECRET_NAME].as_str().unwrap().len(), 64);
        assert_eq!(ensure_signing_secret(&path), Ok(false));
        let second: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(first, second);
    }
}
