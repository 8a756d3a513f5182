//! Cold start: settings from the environment, the config file, secrets and
//! the store, built once per process and shared by every request.
//!
//! One set of variable names (DESIGN §6) is used by the functions, Terraform,
//! `make dev` and the tests alike.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Catalog, ConfigError};
use crate::store::Store;
use crate::store::dynamo::DynamoStore;

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
}

impl Settings {
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup`, so tests never mutate the process env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
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
        }
    }
}

/// A secret value: printing it shows `***`, so it can't leak through logs or
/// `Debug` output by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Named secrets (a flat JSON object of strings).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(BTreeMap<String, Secret>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let map: BTreeMap<String, String> = serde_json::from_str(text)
            .map_err(|e| format!("expected a JSON object of strings: {e}"))?;
        Ok(Self(map.into_iter().map(|(k, v)| (k, Secret(v))).collect()))
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Secret::new(v)))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    pub fn require(&self, name: &str) -> Result<&Secret, SetupError> {
        self.get(name)
            .ok_or_else(|| SetupError::MissingSecret(name.to_owned()))
    }

    /// Names of secrets starting with `prefix` (e.g. every `api_key.*`).
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Secret)> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Loads secrets from `file:<path>` (development; a missing file means no
    /// secrets) or `aws-sm:<secret id>` (AWS Secrets Manager through the
    /// Parameters and Secrets Lambda extension on localhost:2773, so no extra
    /// SDK is linked into the functions).
    pub async fn load(spec: &str) -> Result<Self, SetupError> {
        if let Some(path) = spec.strip_prefix("file:") {
            return match std::fs::read_to_string(path) {
                Ok(text) => Self::from_json(&text).map_err(|message| SetupError::Secrets {
                    source_name: path.to_owned(),
                    message,
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
                Err(e) => Err(SetupError::Secrets {
                    source_name: path.to_owned(),
                    message: e.to_string(),
                }),
            };
        }
        if let Some(id) = spec.strip_prefix("aws-sm:") {
            return Self::from_lambda_extension(id).await;
        }
        Err(SetupError::SecretsSpec(spec.to_owned()))
    }

    async fn from_lambda_extension(id: &str) -> Result<Self, SetupError> {
        let fail = |message: String| SetupError::Secrets {
            source_name: format!("aws-sm:{id}"),
            message,
        };
        let port = std::env::var("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
            .unwrap_or_else(|_| "2773".into());
        let token = std::env::var("AWS_SESSION_TOKEN")
            .map_err(|_| fail("AWS_SESSION_TOKEN is not set".into()))?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let res = client
            .get(format!("http://localhost:{port}/secretsmanager/get"))
            .query(&[("secretId", id)])
            .header("X-Aws-Parameters-Secrets-Token", token)
            .send()
            .await
            .map_err(|e| fail(format!("extension unreachable: {e}")))?;
        if !res.status().is_success() {
            return Err(fail(format!("extension answered {}", res.status())));
        }
        #[derive(serde::Deserialize)]
        struct Reply {
            #[serde(rename = "SecretString")]
            secret_string: String,
        }
        let reply: Reply = res
            .json()
            .await
            .map_err(|e| fail(format!("unexpected extension reply: {e}")))?;
        Self::from_json(&reply.secret_string).map_err(fail)
    }
}

/// Opens the store named by `TOLLGATE_STORE`.
pub async fn open_store(spec: &str) -> Result<Arc<dyn Store>, SetupError> {
    let fail = |message: String| SetupError::Store {
        spec: spec.to_owned(),
        message,
    };
    if let Some(path) = spec.strip_prefix("sqlite:") {
        #[cfg(feature = "embedded-store")]
        {
            let store = crate::store::sqlite::SqliteStore::open(std::path::Path::new(path))
                .map_err(|e| fail(e.to_string()))?;
            return Ok(Arc::new(store));
        }
        #[cfg(not(feature = "embedded-store"))]
        {
            let _ = path;
            return Err(fail(
                "this build has no embedded store (Lambda builds are DynamoDB-only); \
                 set TOLLGATE_STORE=dynamodb:<table>"
                    .into(),
            ));
        }
    }
    if let Some(table) = spec.strip_prefix("dynamodb:") {
        if table.is_empty() {
            return Err(SetupError::StoreSpec(spec.to_owned()));
        }
        return Ok(Arc::new(DynamoStore::from_env(table).await));
    }
    Err(SetupError::StoreSpec(spec.to_owned()))
}

/// What every function needs: settings, the catalog, secrets and the store.
#[derive(Clone)]
pub struct Deps {
    pub settings: Settings,
    pub catalog: Arc<Catalog>,
    pub secrets: Arc<Secrets>,
    pub store: Arc<dyn Store>,
}

impl Deps {
    /// Builds everything from the environment; fails loudly (file and key)
    /// on a configuration error.
    pub async fn from_env() -> Result<Self, SetupError> {
        Self::from_settings(Settings::from_env()).await
    }

    /// Builds everything from `settings`, so a caller that adjusts them (the
    /// dev server pointing GitHub at its stand-ins) never touches the
    /// process environment.
    pub async fn from_settings(settings: Settings) -> Result<Self, SetupError> {
        let catalog = Catalog::load(&settings.config_path)?;
        let secrets = Secrets::load(&settings.secrets).await?;
        let store = open_store(&settings.store).await?;
        Ok(Self {
            settings,
            catalog: Arc::new(catalog),
            secrets: Arc::new(secrets),
            store,
        })
    }
}

/// Structured JSON logs on stdout (CloudWatch), level from `RUST_LOG`
/// (`error`, `warn`, `info`, `debug`, `trace`; default `info`). A plain level
/// rather than per-target directives keeps the regex engine out of the
/// Lambda binaries.
pub fn init_telemetry() {
    use tracing_subscriber::filter::LevelFilter;
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    // try_init: a second call (tests, dev server) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
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
    fn secrets_never_print_their_values() {
        let s = Secrets::from_json(r#"{"github_webhook_secret":"hunter2"}"#).unwrap();
        let shown = format!("{s:?} {:?}", s.get("github_webhook_secret").unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            s.require("github_webhook_secret").unwrap().expose(),
            "hunter2"
        );
        assert!(s.require("nope").unwrap_err().to_string().contains("nope"));
    }

    #[tokio::test]
    async fn bad_specs_are_refused_with_the_value() {
        assert!(matches!(
            Secrets::load("vault:x").await,
            Err(SetupError::SecretsSpec(_))
        ));
        assert!(matches!(
            open_store("postgres:x").await,
            Err(SetupError::StoreSpec(_))
        ));
        assert!(
            Secrets::load("file:/nonexistent/secrets.json")
                .await
                .unwrap()
                .get("x")
                .is_none()
        );
    }
}
