//! `tollgate fire q2 <subscribe|update|cancel>`: sends a realistic, signed
//! Q2 subscription event to a running purchase-webhook (`tollgate dev`),
//! the way the vendor's Q2 marketplace extension relays it — the local
//! counterpart of `q2 marketplace invoke_subscribe / invoke_update /
//! invoke_cancel` — then asks the local entitlement-check what the user may
//! now use, one line per extension of the product.
//!
//! The event comes from the stand-ins' builder (`tollgate_sim::q2`): the
//! demo user 123456 of "Local Credit Union" and the example configuration's
//! Budget Helper (`3f2c7f0e-budgethelper`). It is signed with
//! `q2_signing_secret` from the secrets named by `TOLLGATE_SECRETS` (the
//! file `tollgate dev` fills). The product and its extensions are read from
//! `TOLLGATE_CONFIG` (else `tollgate.toml`, else `tollgate.example.toml`,
//! as `make dev` picks). Exits non-zero unless Q2's answer is a success.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tollgate::config::Catalog;
use tollgate::marketplace::q2::SECRET_NAME;
use tollgate::setup::Settings;
use tollgate_sim::q2::{Casing, EventType, SIGNATURE_HEADER, Subscriber, SubscriptionEvent, sign};

/// purchase-webhook's Q2 route under `make dev`.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9101/q2";
/// entitlement-check's check route under `make dev`.
pub const DEFAULT_CHECK_URL: &str = "http://127.0.0.1:9104/v1/check";
/// The example configuration's Q2 product.
pub const DEMO_PRODUCT_IDENTIFIER: &str = "3f2c7f0e-budgethelper";
/// A fixed subscription, so subscribe, update and cancel chain by default.
pub const DEMO_SUBSCRIPTION: &str = "9b0d6a52-2f0e-4e4f-9a39-0c1f7c1d2e11";

/// Q2 waits for the extension, which waits for Tollgate; answer well
/// within any sensible relay timeout or say why not.
const TIMEOUT: Duration = Duration::from_secs(15);

// `tollgate fire q2 <action> [flags]`. Every flag has a default, so a bare
// action fires the demo user's event; an unknown flag is refused.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Signs with q2_signing_secret from the secrets named by TOLLGATE_SECRETS \
(the file `tollgate dev` fills).\nPrints Q2's answer and the entitlement per extension; exits \
non-zero unless the answer is a success."
)]
pub struct Args {
    /// What the extension's handler was called for
    #[arg(value_enum)]
    pub action: FireAction,
    /// purchase-webhook's Q2 route
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    /// entitlement-check's /v1/check
    #[arg(long, default_value = DEFAULT_CHECK_URL)]
    pub check_url: String,
    /// API key for entitlement-check (not needed under `make dev`)
    #[arg(long)]
    pub api_key: Option<String>,
    /// Q2's subscription GUID (`new`: a fresh one)
    #[arg(long, default_value = DEMO_SUBSCRIPTION)]
    pub subscription: String,
    /// The financial institution (`fi_name`)
    #[arg(long, default_value = "Local Credit Union")]
    pub fi: String,
    /// The user's id in the institution's Q2 database
    #[arg(long, default_value_t = 123_456)]
    pub user: u64,
    /// The marketplace product identifier (configuration/products.py)
    #[arg(long, default_value = DEMO_PRODUCT_IDENTIFIER)]
    pub product: String,
    /// The edition ordered [default: PREMIUM for subscribe, STANDARD for update; none for cancel]
    #[arg(long)]
    pub edition: Option<String>,
    /// Users on the order (the `USER` item's quantity)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub users: u32,
    /// Billing period
    #[arg(long, value_enum, default_value_t = Pricing::Monthly)]
    pub pricing: Pricing,
    /// How the relay writes the event
    #[arg(long, value_enum, default_value_t = FireCasing::Snake)]
    pub casing: FireCasing,
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

impl From<FireAction> for EventType {
    fn from(a: FireAction) -> Self {
        match a {
            FireAction::Subscribe => EventType::Order,
            FireAction::Update => EventType::Change,
            FireAction::Cancel => EventType::Cancel,
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

/// The event `args` describe, sent at `now`.
pub fn build(args: &Args, now: chrono::DateTime<Utc>) -> SubscriptionEvent {
    let subscriber = Subscriber {
        fi_name: args.fi.clone(),
        user_id: args.user,
        ..Subscriber::demo()
    };
    let subscription = if args.subscription == "new" {
        tollgate_sim::q2::new_subscription_id()
    } else {
        args.subscription.clone()
    };
    let event_type = EventType::from(args.action);
    let mut event =
        SubscriptionEvent::new(event_type, subscription, subscriber, &args.product, now)
            .with_users(args.users)
            .with_pricing(match args.pricing {
                Pricing::Monthly => "MONTHLY",
                Pricing::Yearly => "YEARLY",
            })
            .with_casing(match args.casing {
                FireCasing::Snake => Casing::Snake,
                FireCasing::Camel => Casing::Camel,
                FireCasing::Bare => Casing::Bare,
            });
    let edition = args.edition.clone().or(match args.action {
        FireAction::Subscribe => Some("PREMIUM".into()),
        FireAction::Update => Some("STANDARD".into()),
        FireAction::Cancel => None,
    });
    if let Some(edition) = edition {
        event = event.with_edition(edition);
    }
    event
}

pub async fn run(args: Args) -> Result<(), String> {
    let event = build(&args, Utc::now());
    let secret = signing_secret().await?;
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;

    let body = event.body();
    let signature = sign(secret.as_bytes(), Utc::now().timestamp(), &body);
    println!(
        "POST {}\n  {} subscription {}, user {} of {}, product {}{}",
        args.url,
        event.event_type.as_str(),
        event.subscription_id,
        event.subscriber.user_id,
        event.subscriber.fi_name,
        event.product_identifier,
        event
            .edition
            .as_deref()
            .map(|e| format!(", edition {e}"))
            .unwrap_or_default()
    );
    let res = client
        .post(&args.url)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| unreachable_error(&args.url, &e))?;
    let status = res.status();
    let text = res
        .text()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    println!("{status}");
    let answer: Option<Value> = serde_json::from_str(&text).ok();
    match &answer {
        Some(json) => println!("{}", pretty(json)),
        None if text.is_empty() => {}
        None => println!("{text}"),
    }
    if !status.is_success() {
        return Err(format!("purchase-webhook answered {status}"));
    }
    let success = answer
        .as_ref()
        .and_then(|a| a.get("success"))
        .and_then(Value::as_bool)
        == Some(true);

    check(&client, &args, &event).await?;

    if success {
        Ok(())
    } else {
        let code = answer
            .as_ref()
            .and_then(|a| a.get("errorCode"))
            .and_then(Value::as_str)
            .unwrap_or("no errorCode");
        Err(format!("Q2 was answered with a failure: {code}"))
    }
}

/// Prints what entitlement-check now says, per extension of the product.
async fn check(
    client: &reqwest::Client,
    args: &Args,
    event: &SubscriptionEvent,
) -> Result<(), String> {
    let path = config_path();
    let catalog = Catalog::load(&path).map_err(|e| e.to_string())?;
    let Some((product, q2)) = catalog.q2_product(&event.product_identifier) else {
        println!(
            "Entitlement: product identifier {} is not in {}; not checked",
            event.product_identifier,
            path.display()
        );
        return Ok(());
    };
    let customer = event.customer_id();
    println!(
        "Entitlement (POST {}, customer \"{customer}\", product {product}):",
        args.check_url
    );
    let features: Vec<Option<&str>> = if q2.extensions.is_empty() {
        vec![None]
    } else {
        q2.extensions.iter().map(|e| Some(e.as_str())).collect()
    };
    let width = features
        .iter()
        .flatten()
        .map(|f| f.len())
        .max()
        .unwrap_or(0);
    for feature in features {
        let mut q = json!({"marketplace": "q2", "customer_id": customer, "product": product});
        if let Some(f) = feature {
            q["feature"] = json!(f);
        }
        let mut req = client.post(&args.check_url).json(&q);
        if let Some(key) = &args.api_key {
            req = req.bearer_auth(key);
        }
        let res = req
            .send()
            .await
            .map_err(|e| unreachable_error(&args.check_url, &e))?;
        let status = res.status();
        let d: Value = res
            .json()
            .await
            .map_err(|e| format!("reading the entitlement: {e}"))?;
        if !status.is_success() {
            return Err(format!("entitlement-check answered {status}: {d}"));
        }
        let verdict = if d["allowed"] == json!(true) {
            "allowed"
        } else {
            "denied"
        };
        let detail = ["reason", "status", "tier", "access_until"]
            .iter()
            .filter_map(|k| d[*k].as_str().map(|v| format!("{k} {v}")))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  {:<width$}  {verdict} ({detail})",
            feature.unwrap_or(product)
        );
    }
    Ok(())
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

async fn signing_secret() -> Result<String, String> {
    let spec = Settings::from_env().secrets;
    let secrets = tollgate::setup::load_secrets(&spec)
        .await
        .map_err(|e| e.to_string())?;
    let secret = secrets.get(SECRET_NAME).ok_or_else(|| {
        format!(
            "no `{SECRET_NAME}` in the secrets `{spec}` (TOLLGATE_SECRETS): `tollgate dev` adds one to its secrets file"
        )
    })?;
    Ok(secret.expose().to_owned())
}

/// Adds a random `q2_signing_secret` to the JSON secrets file at `path`
/// unless it has one (every other entry kept); whether it did. What the
/// relay and `tollgate fire q2` then sign with.
pub fn ensure_signing_secret(path: &Path) -> Result<bool, String> {
    let fail = |e: String| format!("{}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let mut secrets = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => map,
        _ => return Err(fail("is not a JSON object".into())),
    };
    let has = secrets
        .get(SECRET_NAME)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty());
    if has {
        return Ok(false);
    }
    // No secret rather than a guessable one if the OS random source fails.
    let secret = tollgate::web::random_token(32).map_err(|e| fail(e.to_string()))?;
    secrets.insert(SECRET_NAME.to_owned(), Value::String(secret));
    let text = serde_json::to_string_pretty(&secrets).map_err(|e| fail(e.to_string()))?;
    // The file is the owner's only (`tollgate dev` created it so); writing
    // in place keeps its mode.
    std::fs::write(path, text).map_err(|e| fail(e.to_string()))?;
    Ok(true)
}

fn pretty(json: &Value) -> String {
    serde_json::to_string_pretty(json).unwrap_or_else(|_| json.to_string())
}

fn unreachable_error(url: &str, e: &reqwest::Error) -> String {
    if e.is_connect() {
        format!("cannot reach {url}: is `make dev` (tollgate dev) running? ({e})")
    } else {
        format!("POST {url}: {e}")
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
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

    fn noon() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
    }

    #[test]
    fn defaults_fire_the_demo_users_budget_helper_events() {
        let a = parse("q2 subscribe").unwrap();
        assert_eq!(
            (a.url.as_str(), a.check_url.as_str()),
            (DEFAULT_URL, DEFAULT_CHECK_URL)
        );
        let e = build(&a, noon());
        assert_eq!(e.event_type, EventType::Order);
        assert_eq!(e.subscription_id, DEMO_SUBSCRIPTION);
        assert_eq!(e.edition.as_deref(), Some("PREMIUM"));
        assert_eq!(e.customer_id(), "Local Credit Union:123456");
        assert_eq!(
            build(&parse("q2 update").unwrap(), noon())
                .edition
                .as_deref(),
            Some("STANDARD")
        );
        assert_eq!(build(&parse("q2 cancel").unwrap(), noon()).edition, None);
    }

    #[test]
    fn flags_shape_the_event() {
        let a = parse("q2 subscribe --user 7 --fi Other --edition STANDARD --users 3 --pricing yearly --casing camel --subscription new").unwrap();
        let e = build(&a, noon());
        let v = e.to_json();
        assert_eq!(v["userId"], 7);
        assert_eq!(v["fiName"], "Other");
        assert_eq!(v["event"]["payload"]["order"]["pricingDuration"], "YEARLY");
        assert_eq!(v["event"]["payload"]["order"]["items"][0]["quantity"], "3");
        assert_ne!(e.subscription_id, DEMO_SUBSCRIPTION);
        assert_eq!(e.subscription_id.len(), 36);
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
