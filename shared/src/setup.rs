//! Cold start, the composition root: settings from the environment, the
//! config file, secrets and the store, built once per process and shared by
//! every request. Leaf modules never import this one; they take what they
//! need as arguments.

use std::sync::Arc;

use crate::config::Catalog;
pub use crate::secret::{Secret, Secrets};
pub use crate::settings::{Settings, SetupError};
use crate::store::Store;
use crate::store::dynamo::DynamoStore;

/// Loads secrets from `file:<path>` (development; a missing file means no
/// secrets) or `aws-sm:<secret id>` (AWS Secrets Manager through the
/// Parameters and Secrets Lambda extension on localhost:2773, so no extra
/// SDK is linked into the functions).
pub async fn load_secrets(spec: &str) -> Result<Secrets, SetupError> {
    if let Some(path) = spec.strip_prefix("file:") {
        return match std::fs::read_to_string(path) {
            Ok(text) => Secrets::from_json(&text).map_err(|e| SetupError::Secrets {
                source_name: path.to_owned(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Secrets::default()),
            Err(e) => Err(SetupError::Secrets {
                source_name: path.to_owned(),
                message: e.to_string(),
            }),
        };
    }
    if let Some(id) = spec.strip_prefix("aws-sm:") {
        return secrets_from_lambda_extension(id).await;
    }
    Err(SetupError::SecretsSpec(spec.to_owned()))
}

async fn secrets_from_lambda_extension(id: &str) -> Result<Secrets, SetupError> {
    let fail = |message: String| SetupError::Secrets {
        source_name: format!("aws-sm:{id}"),
        message,
    };
    let port =
        std::env::var("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT").unwrap_or_else(|_| "2773".into());
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
    // The reply carries the secret: report only where it failed to parse.
    let bytes = res
        .bytes()
        .await
        .map_err(|e| fail(format!("extension reply unreadable: {e}")))?;
    let reply: Reply = serde_json::from_slice(&bytes).map_err(|e| {
        fail(format!(
            "unexpected extension reply (line {} column {})",
            e.line(),
            e.column()
        ))
    })?;
    Secrets::from_json(&reply.secret_string).map_err(|e| fail(e.to_string()))
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
        let secrets = load_secrets(&settings.secrets).await?;
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

    #[tokio::test]
    async fn bad_specs_are_refused_with_the_value() {
        assert!(matches!(
            load_secrets("vault:x").await,
            Err(SetupError::SecretsSpec(_))
        ));
        assert!(matches!(
            open_store("postgres:x").await,
            Err(SetupError::StoreSpec(_))
        ));
        assert!(
            load_secrets("file:/nonexistent/secrets.json")
                .await
                .unwrap()
                .get("x")
                .is_none()
        );
    }
}
