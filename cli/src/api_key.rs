//! `tollgate api-key new <name> [--scopes check,seats] [--json]`: makes an
//! API key for an app outside AWS. The key is printed once and never stored;
//! what Tollgate stores is the secrets entry with its SHA-256 and scopes
//! (format: `tollgate::api::auth`).

use tollgate::api::auth::{Scopes, generate};

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
    #[command(flatten)]
    pub json: Json,
}

/// Runs the subcommand; returns what to print on stdout.
pub fn run(command: Command) -> Result<String, String> {
    match command {
        Command::New(new) => new_key(&new),
    }
}

fn new_key(args: &New) -> Result<String, String> {
    let (name, scopes) = (&args.name, args.scopes);
    let new = generate(name, scopes).map_err(|e| e.to_string())?;
    let (key, secret_name, secret_value) = (
        new.key.expose(),
        new.entry.secret_name(),
        new.entry.secret_value(),
    );
    if args.json.json {
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
