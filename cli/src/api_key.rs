//! `tollgate api-key new <name> [--scopes check,seats] [--json]`: makes an
//! API key for an app outside AWS. The key is printed once and never stored;
//! what Tollgate stores is the secrets entry with its SHA-256 and scopes
//! (format: `tollgate::api::auth`).

use tollgate::api::auth::{Scopes, generate};

pub const USAGE: &str = "usage: tollgate api-key new <name> [--scopes check,seats] [--json]";

/// Runs the subcommand; returns what to print on stdout.
pub fn run(args: &[String]) -> Result<String, String> {
    let (Some("new"), Some(name)) = (args.first().map(String::as_str), args.get(1)) else {
        return Err(USAGE.to_owned());
    };
    if name.starts_with('-') {
        return Err(USAGE.to_owned());
    }
    let scopes = match super::flag(args, "--scopes") {
        Some(list) => Scopes::parse(list).map_err(|e| e.to_string())?,
        None if args.iter().any(|a| a == "--scopes") => return Err(USAGE.to_owned()),
        None => Scopes::parse("check").map_err(|e| e.to_string())?,
    };
    let new = generate(name, scopes).map_err(|e| e.to_string())?;
    let (key, secret_name, secret_value) = (
        new.key.expose(),
        new.entry.secret_name(),
        new.entry.secret_value(),
    );
    if args.iter().any(|a| a == "--json") {
        let out = serde_json::json!({
            "name": new.entry.name,
            "scopes": scopes.to_string(),
            "key": key,
            "secret_name": secret_name,
            "secret_value": secret_value,
        });
        return Ok(format!("{out}\n"));
    }
    Ok(format!(
        "API key `{name}` (scopes: {scopes}). It is shown only now; give it to the app:\n\
         \n  {key}\n\n\
         Add this entry to Tollgate's secrets (the JSON object named by TOLLGATE_SECRETS);\n\
         only the hash is stored:\n\
         \n  \"{secret_name}\": \"{secret_value}\"\n\n\
         The app sends `Authorization: Bearer <key>`. Delete the entry to revoke the key\n\
         (entitlement-check reads secrets at cold start).\n"
    ))
}
