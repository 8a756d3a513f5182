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
}

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
        }
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
}
