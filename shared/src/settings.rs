//! Settings that are not secrets, read from the environment, and the error
//! every cold-start step reports. One set of variable names is used by the
//! functions, Terraform, `make dev` and the tests alike (see the README's
//! configuration table).

use std::path::PathBuf;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("TOLLGATE_STORE `{0}`: expected `sqlite:<path>` or `dynamodb:<table>`")]
    StoreSpec(String),
    #[error("cannot open store `{spec}`: {message}")]
    Store { spec: String, message: String },
    #[error("TOLLGATE_SECRETS `{0}`: expected `file:<path>` or `aws-sm:<secret id>`")]
    SecretsSpec(String),
    #[error("cannot load secrets from {source_name}: {message}")]
    Secrets {
        source_name: String,
        message: String,
    },
    #[error("missing secret `{0}` (add it to the secrets source named by TOLLGATE_SECRETS)")]
    MissingSecret(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    EmptySecret(#[from] tollgate_core::marketplace::signing::EmptySecret),
    #[error(
        "TOLLGATE_LINK_TTL `{0}`: expected a duration such as `30d`, `12h`, `90m` or `3600s`, more than 0 and at most {MAX_LINK_TTL_DAYS} days"
    )]
    LinkTtl(String),
}

/// How long a link from an app user to a customer lives after the sign-in
/// that wrote it, unless `TOLLGATE_LINK_TTL` says otherwise: long enough
/// that a user who signs in now and then keeps access, short enough that a
/// user nobody vouches for any more (who left the organization and never
/// signs in again) loses it within a billing month.
pub const DEFAULT_LINK_TTL_DAYS: i64 = 30;
/// The longest `TOLLGATE_LINK_TTL` accepted: a link that outlives ten years
/// is not expiring, and the stores cannot write times past 2262.
pub const MAX_LINK_TTL_DAYS: i64 = 3650;

/// Every setting that is not a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub config_path: PathBuf,
    pub store: String,
    pub secrets: String,
    pub github_url: String,
    pub github_api_url: String,
    pub google_token_url: String,
    pub google_oidc_certs_url: String,
    pub gcp_signup_certs_url: String,
    pub procurement_url: String,
    /// `TOLLGATE_PUBLIC_URL`: the public base URL of the oauth-callback
    /// function (its function URL or custom domain), from which the GitHub
    /// OAuth `redirect_uri` is built. Unset: taken from the request's `Host`.
    pub public_url: Option<String>,
    /// `TOLLGATE_GCP_PROVIDER_ID`: the partner id in Google's Producer Portal
    /// (`providers/<id>` in every Procurement call).
    pub gcp_provider_id: Option<String>,
    /// `TOLLGATE_GCP_PUSH_AUDIENCE`: the audience set on the Pub/Sub push
    /// subscription's authentication (often the function URL).
    pub gcp_push_audience: Option<String>,
    /// `TOLLGATE_GCP_PUSH_SERVICE_ACCOUNT`: the service account the push
    /// subscription authenticates as (the token's `email`).
    pub gcp_push_service_account: Option<String>,
    /// `TOLLGATE_GCP_SIGNUP_AUDIENCE`: the `aud` of Google's sign-up tokens,
    /// the product's domain as registered in Producer Portal.
    pub gcp_signup_audience: Option<String>,
    /// `TOLLGATE_CHECK_AUTH`: how entitlement-check's function URL is
    /// deployed — `aws_iam` (callers sign with SigV4) or `api_key` (public
    /// URL, API keys). Unset locally.
    pub check_auth: Option<String>,
    /// `TOLLGATE_LINK_TTL`, as given (read by [`Settings::link_ttl`]).
    pub link_ttl: Option<String>,
    /// `TOLLGATE_IAM_PRINCIPALS`: entitlement-check's allow-list of IAM
    /// principals and their scopes (JSON; `api::auth::iam`). Unset: every
    /// IAM caller the URL lets through has every scope.
    pub iam_principals: Option<String>,
    /// `TOLLGATE_API_KEYS_TTL` and `TOLLGATE_API_KEYS_MAX_AGE`, as given: how
    /// often entitlement-check re-reads its API keys, and the age past which
    /// it stops trusting them (`api::auth::keyring`).
    pub api_keys_ttl: Option<String>,
    pub api_keys_max_age: Option<String>,
    /// `TOLLGATE_TOKEN_ISSUER`, `TOLLGATE_TOKEN_AUDIENCE` and
    /// `TOLLGATE_TOKEN_MAX_LIFETIME`, as given: the `iss`, `aud` and longest
    /// lifetime of entitlement tokens (`api::token`).
    pub token_issuer: Option<String>,
    pub token_audience: Option<String>,
    pub token_max_lifetime: Option<String>,
    /// `AWS_REGION`, set by Lambda: function URL events must name it.
    pub aws_region: Option<String>,
}

impl Settings {
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup`, so tests never mutate the process env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let optional = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let get = |k: &str, default: &str| {
            lookup(k)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Self {
            config_path: PathBuf::from(get("TOLLGATE_CONFIG", "./tollgate.toml")),
            store: get("TOLLGATE_STORE", "sqlite:.tollgate/dev.db"),
            secrets: get("TOLLGATE_SECRETS", "file:.tollgate/secrets.json"),
            github_url: get("TOLLGATE_GITHUB_URL", "https://github.com"),
            github_api_url: get("TOLLGATE_GITHUB_API_URL", "https://api.github.com"),
            google_token_url: get(
                "TOLLGATE_GOOGLE_TOKEN_URL",
                "https://oauth2.googleapis.com/token",
            ),
            google_oidc_certs_url: get(
                "TOLLGATE_GOOGLE_OIDC_CERTS_URL",
                "https://www.googleapis.com/oauth2/v3/certs",
            ),
            gcp_signup_certs_url: get(
                "TOLLGATE_GCP_SIGNUP_CERTS_URL",
                "https://www.googleapis.com/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com",
            ),
            procurement_url: get(
                "TOLLGATE_PROCUREMENT_URL",
                "https://cloudcommerceprocurement.googleapis.com",
            ),
            public_url: lookup("TOLLGATE_PUBLIC_URL")
                .map(|v| v.trim().trim_end_matches('/').to_owned())
                .filter(|v| !v.is_empty()),
            gcp_provider_id: optional("TOLLGATE_GCP_PROVIDER_ID"),
            gcp_push_audience: optional("TOLLGATE_GCP_PUSH_AUDIENCE"),
            gcp_push_service_account: optional("TOLLGATE_GCP_PUSH_SERVICE_ACCOUNT"),
            gcp_signup_audience: optional("TOLLGATE_GCP_SIGNUP_AUDIENCE"),
            check_auth: optional("TOLLGATE_CHECK_AUTH"),
            link_ttl: optional("TOLLGATE_LINK_TTL"),
            iam_principals: optional("TOLLGATE_IAM_PRINCIPALS"),
            api_keys_ttl: optional("TOLLGATE_API_KEYS_TTL"),
            api_keys_max_age: optional("TOLLGATE_API_KEYS_MAX_AGE"),
            token_issuer: optional("TOLLGATE_TOKEN_ISSUER"),
            token_audience: optional("TOLLGATE_TOKEN_AUDIENCE"),
            token_max_lifetime: optional("TOLLGATE_TOKEN_MAX_LIFETIME"),
            aws_region: optional("AWS_REGION"),
        }
    }

    /// How long a sign-in's links live: `TOLLGATE_LINK_TTL` (`30d`, `12h`,
    /// `90m`, `3600s`, or plain seconds), else [`DEFAULT_LINK_TTL_DAYS`].
    pub fn link_ttl(&self) -> Result<chrono::Duration, SetupError> {
        let Some(text) = self.link_ttl.as_deref() else {
            return Ok(chrono::Duration::days(DEFAULT_LINK_TTL_DAYS));
        };
        let invalid = || SetupError::LinkTtl(text.to_owned());
        // A unit letter at the end, or none (seconds).
        let unit = text
            .chars()
            .last()
            .filter(char::is_ascii_alphabetic)
            .unwrap_or('s');
        let digits = text
            .strip_suffix(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text);
        // Digits only: `parse` would also take a sign.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let count: i64 = digits.parse().map_err(|_| invalid())?;
        let seconds_per = match unit {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(invalid()),
        };
        let seconds = count.checked_mul(seconds_per).ok_or_else(invalid)?;
        if seconds <= 0 || seconds > MAX_LINK_TTL_DAYS * 86_400 {
            return Err(invalid());
        }
        Ok(chrono::Duration::seconds(seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_to_the_documented_values() {
        let s = Settings::from_lookup(|_| None);
        assert_eq!(s.store, "sqlite:.tollgate/dev.db");
        assert_eq!(s.github_api_url, "https://api.github.com");
        let s = Settings::from_lookup(|k| (k == "TOLLGATE_STORE").then(|| "dynamodb:t".to_owned()));
        assert_eq!(s.store, "dynamodb:t");
    }

    #[test]
    fn the_link_ttl_reads_days_hours_minutes_or_seconds() {
        let ttl = |v: &str| {
            Settings::from_lookup(|k| (k == "TOLLGATE_LINK_TTL").then(|| v.to_owned())).link_ttl()
        };
        let days = chrono::Duration::days;
        assert_eq!(
            Settings::from_lookup(|_| None).link_ttl().ok(),
            Some(days(30))
        );
        assert_eq!(ttl("7d").ok(), Some(days(7)));
        assert_eq!(ttl(" 12h ").ok(), Some(chrono::Duration::hours(12)));
        assert_eq!(ttl("90m").ok(), Some(chrono::Duration::minutes(90)));
        assert_eq!(ttl("3600").ok(), Some(chrono::Duration::hours(1)));
        assert_eq!(ttl("3650d").ok(), Some(days(3650)));
        for bad in [
            "0",
            "0d",
            "-1d",
            "+1d",
            "3651d",
            "1w",
            "d",
            "1.5d",
            "ten",
            "99999999999999999d",
        ] {
            assert!(
                matches!(ttl(bad), Err(SetupError::LinkTtl(ref v)) if v == bad.trim()),
                "{bad}"
            );
        }
    }
}
