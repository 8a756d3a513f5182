//! `tollgate api-key new <name> [--scopes check,seats] [--expires-in 90d |
//! --expires-at <RFC 3339>] [--json]`: makes an API key for an app outside
//! AWS. The key is printed once and never stored; what Tollgate stores is
//! the secrets entry with its SHA-256, scopes and expiry (format:
//! `tollgate::api::auth`).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use tollgate::api::auth::keyring::{DEFAULT_MAX_AGE, DEFAULT_TTL};
use tollgate::api::auth::{Scopes, generate, parse_duration};

use crate::args::Json;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create an API key: print it once, with the hashed secrets entry to store
    New(New),
}

#[derive(Debug, clap::Args)]
pub struct New {
    /// The app the key is for (the secret is named `api_key.<NAME>`)
    pub name: String,
    /// What the key may call, comma-separated: check, seats
    #[arg(long, default_value = "check", value_parser = Scopes::parse)]
    pub scopes: Scopes,
    /// The key stops working this long from now: 90d, 12h, 30m, 2w
    #[arg(long, value_parser = parse_duration, conflicts_with = "expires_at")]
    pub expires_in: Option<Duration>,
    /// The key stops working at this instant (RFC 3339, e.g. 2027-01-31T00:00:00Z)
    #[arg(long, value_parser = parse_instant)]
    pub expires_at: Option<DateTime<Utc>>,
    #[command(flatten)]
    pub json: Json,
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: expected RFC 3339, e.g. 2027-01-31T00:00:00Z"))
}

/// Runs the subcommand; returns what to print on stdout.
pub fn run(command: Command) -> Result<String, String> {
    match command {
        Command::New(new) => new_key(&new, Utc::now()),
    }
}

fn new_key(args: &New, now: DateTime<Utc>) -> Result<String, String> {
    let (name, scopes) = (&args.name, args.scopes);
    let expires_at = match (args.expires_in, args.expires_at) {
        (Some(d), _) => Some(
            now.checked_add_signed(d)
                .ok_or_else(|| format!("--expires-in {}s is too far away", d.num_seconds()))?,
        ),
        (None, at) => at,
    };
    if let Some(at) = expires_at
        && at <= now
    {
        return Err(format!("--expires-at {at} is not in the future"));
    }
    let mut new = generate(name, scopes).map_err(|e| e.to_string())?;
    new.entry = new.entry.with_expiry(expires_at);
    let (key, secret_name, secret_value) = (
        new.key.expose(),
        new.entry.secret_name(),
        new.entry.secret_value(),
    );
    let expires = expires_at.map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, true));
    if args.json.json {
        let out = serde_json::json!({
            "name": new.entry.name,
            "scopes": scopes.to_string(),
            "expires_at": expires,
            "key": key,
            "secret_name": secret_name,
            "secret_value": secret_value,
        });
        return Ok(format!("{out}\n"));
    }
    let expiry = match &expires {
        Some(at) => format!(", expires {at}: then refused with 401 expired_api_key"),
        None => ", no expiry".to_owned(),
    };
    Ok(format!(
        "API key `{name}` (scopes: {scopes}{expiry}). It is shown only now; give it to the app:\n\
         \n  {key}\n\n\
         Add this entry to Tollgate's secrets (the JSON object named by TOLLGATE_SECRETS);\n\
         only the hash is stored:\n\
         \n  \"{secret_name}\": \"{secret_value}\"\n\n\
         The app sends `Authorization: Bearer <key>`. Delete the entry to revoke the key:\n\
         entitlement-check re-reads its keys every {ttl} s and stops trusting a list\n\
         older than {max} s (README, \"Ask from your app\").\n",
        ttl = DEFAULT_TTL.num_seconds(),
        max = DEFAULT_MAX_AGE.num_seconds(),
    ))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    fn parse(args: &[&str]) -> Result<New, String> {
        let mut argv = vec!["tollgate", "new"];
        argv.extend(args);
        match Cli::try_parse_from(argv).map_err(|e| e.to_string())? {
            Cli {
                command: Command::New(new),
            } => Ok(new),
        }
    }

    #[test]
    fn the_expiry_is_written_into_the_entry_and_the_json() {
        let now = Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0).unwrap();
        let out = new_key(
            &parse(&["ci", "--expires-in", "90d", "--json"]).unwrap(),
            now,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["expires_at"], "2026-08-08T12:00:00Z");
        let value = v["secret_value"].as_str().unwrap();
        assert!(
            value.ends_with(":check:expires=2026-08-08T12:00:00Z"),
            "{value}"
        );

        let args = parse(&["ci", "--expires-at", "2027-01-31T00:00:00+01:00", "--json"]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&new_key(&args, now).unwrap()).unwrap();
        assert_eq!(v["expires_at"], "2027-01-30T23:00:00Z");

        let v: serde_json::Value =
            serde_json::from_str(&new_key(&parse(&["ci", "--json"]).unwrap(), now).unwrap())
                .unwrap();
        assert_eq!(
            v["expires_at"],
            serde_json::Value::Null,
            "present, null without one"
        );
    }

    #[test]
    fn bad_expiries_are_refused() {
        let now = Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0).unwrap();
        for args in [
            &["ci", "--expires-in", "ninety"][..],
            &["ci", "--expires-in", "0d"],
            &["ci", "--expires-at", "tomorrow"],
            &[
                "ci",
                "--expires-in",
                "1d",
                "--expires-at",
                "2027-01-31T00:00:00Z",
            ],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
        let past = parse(&["ci", "--expires-at", "2026-05-10T11:59:59Z"]).unwrap();
        assert!(
            new_key(&past, now)
                .unwrap_err()
                .contains("not in the future")
        );
    }
}
