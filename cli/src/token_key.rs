//! `tollgate token-key new [--previous] [--json]`: makes the Ed25519 key
//! entitlement-check signs its entitlement tokens with (`POST /v1/token`).
//! Nothing is stored: the command prints the secrets entry to add, and the
//! key's `kid` (its JWK thumbprint), under which `GET /.well-known/jwks.json`
//! will publish it. Key format: `tollgate::api::token`.

use tollgate::api::token::{TOKEN_KEY_PREVIOUS_SECRET, TOKEN_KEY_SECRET, generate_key, key_id};

use crate::args::Json;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a token signing key: print the secrets entry to add
    New(New),
}

#[derive(Debug, clap::Args)]
pub struct New {
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
    let key = generate_key().map_err(|e| e.to_string())?;
    let kid = key_id(&key).map_err(|e| e.to_string())?;
    if args.json.json {
        let out = serde_json::json!({
            "kid": kid,
            "secret_name": TOKEN_KEY_SECRET,
            "secret_value": key.expose(),
        });
        return Ok(format!("{out}\n"));
    }
    Ok(format!(
        "An Ed25519 key for entitlement tokens, kid {kid}.\n\
         Add this entry to Tollgate's secrets (the JSON object named by TOLLGATE_SECRETS):\n\
         \n  \"{TOKEN_KEY_SECRET}\": \"{value}\"\n\n\
         To rotate, first move the current entry's value to `{TOKEN_KEY_PREVIOUS_SECRET}`\n\
         (still published, so tokens it signed verify until they expire), then deploy.\n\
         Remove `{TOKEN_KEY_PREVIOUS_SECRET}` once the longest token lifetime has passed\n\
         (README, \"Signed entitlement tokens\").\n",
        value = key.expose(),
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tollgate::api::token::TokenIssuer;
    use tollgate::secret::Secrets;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[test]
    fn the_printed_entry_is_a_key_entitlement_check_signs_with() {
        let Cli {
            command: Command::New(new),
        } = Cli::try_parse_from(["tollgate", "new", "--json"]).unwrap();
        let out: serde_json::Value = serde_json::from_str(&new_key(&new).unwrap()).unwrap();
        assert_eq!(out["secret_name"], TOKEN_KEY_SECRET);
        let value = out["secret_value"].as_str().unwrap();
        let secrets = Secrets::from_pairs([(TOKEN_KEY_SECRET, value)]);
        let issuer = TokenIssuer::from_secrets(&secrets, Default::default())
            .unwrap()
            .unwrap();
        assert_eq!(issuer.kid(), out["kid"].as_str());
        // Two runs, two keys.
        let again: serde_json::Value = serde_json::from_str(&new_key(&new).unwrap()).unwrap();
        assert_ne!(again["secret_value"], out["secret_value"]);

        let text = new_key(&New {
            json: Json { json: false },
        })
        .unwrap();
        assert!(
            text.contains("\"entitlement_token_key\": \"ed25519:"),
            "{text}"
        );
    }
}
