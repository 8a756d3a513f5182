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

/// Largest secrets document read (a file or the extension's reply): a few
/// keys and API keys are a few KB; anything near this is not a secrets file.
pub const MAX_SECRETS_BYTES: usize = 1024 * 1024;

/// Loads secrets from `file:<path>` (development; a missing file means no
/// secrets) or `aws-sm:<secret id>` (AWS Secrets Manager through the
/// Parameters and Secrets Lambda extension on localhost:2773, so no extra
/// SDK is linked into the functions). Either is read up to
/// [`MAX_SECRETS_BYTES`], never further; errors never quote a value.
pub async fn load_secrets(spec: &str) -> Result<Secrets, SetupError> {
    if let Some(path) = spec.strip_prefix("file:") {
        return secrets_from_file(path);
    }
    if let Some(id) = spec.strip_prefix("aws-sm:") {
        return secrets_from_lambda_extension(id).await;
    }
    Err(SetupError::SecretsSpec(spec.to_owned()))
}

fn secrets_from_file(path: &str) -> Result<Secrets, SetupError> {
    use std::io::Read;
    let fail = |message: String| SetupError::Secrets {
        source_name: path.to_owned(),
        message,
    };
    let too_large = || fail(format!("larger than {MAX_SECRETS_BYTES} bytes"));
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Secrets::default()),
        Err(e) => return Err(fail(e.to_string())),
    };
    // The size first, so a path naming a huge file is refused unread; then
    // the read itself is bounded, for files whose size the metadata does
    // not tell (a pipe, a device, a file still growing).
    let len = file.metadata().map_err(|e| fail(e.to_string()))?.len();
    if len > MAX_SECRETS_BYTES as u64 {
        return Err(too_large());
    }
    let mut text = String::new();
    file.take(MAX_SECRETS_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    if text.len() > MAX_SECRETS_BYTES {
        return Err(too_large());
    }
    Secrets::from_json(&text).map_err(|e| fail(e.to_string()))
}

async fn secrets_from_lambda_extension(id: &str) -> Result<Secrets, SetupError> {
    let port =
        std::env::var("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT").unwrap_or_else(|_| "2773".into());
    let token = std::env::var("AWS_SESSION_TOKEN").map_err(|_| SetupError::Secrets {
        source_name: format!("aws-sm:{id}"),
        message: "AWS_SESSION_TOKEN is not set".into(),
    })?;
    secrets_from_extension_at(&format!("http://localhost:{port}"), &token, id).await
}

/// The secret `id` from the extension at `base`.
async fn secrets_from_extension_at(
    base: &str,
    token: &str,
    id: &str,
) -> Result<Secrets, SetupError> {
    let fail = |message: String| SetupError::Secrets {
        source_name: format!("aws-sm:{id}"),
        message,
    };
    let client = crate::https::client_builder()
        .map_err(|e| fail(e.to_string()))?
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let res = client
        .get(format!("{base}/secretsmanager/get"))
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
    // The reply carries the secret: report only what and where it failed
    // to parse, never a value.
    let bytes = crate::outbound::read_capped(res, MAX_SECRETS_BYTES)
        .await
        .map_err(|e| match e {
            crate::outbound::ReadError::TooLarge { cap } => {
                fail(format!("extension reply larger than {cap} bytes"))
            }
            crate::outbound::ReadError::Transport(e) => {
                fail(format!("extension reply unreadable: {e}"))
            }
        })?;
    let reply: Reply = serde_json::from_slice(&bytes).map_err(|e| {
        fail(format!(
            "unexpected extension reply: {}",
            tollgate_core::json_error::describe(&e)
        ))
    })?;
    Secrets::from_json(&reply.secret_string).map_err(|e| fail(e.to_string()))
}

/// Opens the store named by `TOLLGATE_STORE`.
pub async fn open_store(spec: &str) -> Result<Arc<dyn Store>, SetupError> {
    Ok(match open_backend(spec).await? {
        #[cfg(feature = "embedded-store")]
        Backend::Sqlite(store) => Arc::new(store),
        Backend::Dynamo(store) => Arc::new(store),
    })
}

/// Opens the notification outbox of the store named by `TOLLGATE_STORE`
/// (the same file or table [`open_store`] opens).
pub async fn open_outbox(spec: &str) -> Result<Arc<dyn crate::store::Outbox>, SetupError> {
    Ok(match open_backend(spec).await? {
        #[cfg(feature = "embedded-store")]
        Backend::Sqlite(store) => Arc::new(store),
        Backend::Dynamo(store) => Arc::new(store),
    })
}

/// A store backend, before it is seen through one of its roles.
enum Backend {
    #[cfg(feature = "embedded-store")]
    Sqlite(crate::store::sqlite::SqliteStore),
    Dynamo(DynamoStore),
}

async fn open_backend(spec: &str) -> Result<Backend, SetupError> {
    let fail = |message: String| SetupError::Store {
        spec: spec.to_owned(),
        message,
    };
    if let Some(path) = spec.strip_prefix("sqlite:") {
        #[cfg(feature = "embedded-store")]
        {
            let store = crate::store::sqlite::SqliteStore::open(std::path::Path::new(path))
                .map_err(|e| fail(e.to_string()))?;
            return Ok(Backend::Sqlite(store));
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
        return Ok(Backend::Dynamo(DynamoStore::from_env(table).await));
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

    use crate::outbound::testing::{Body, IN_FLIGHT, serve};

    /// Upper bound only: a capped read ends as soon as the cap is passed.
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

    fn message(e: SetupError) -> String {
        match e {
            SetupError::Secrets { message, .. } => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_secrets_file_of_the_wrong_shape_names_no_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        for doc in [
            r#"{"github_webhook_secret":{"v":"hunter2-leak"}}"#,
            r#"{"github_webhook_secret":["hunter2-leak"]}"#,
            r#"{"github_webhook_secret":"hunter2-leak""#,
        ] {
            std::fs::write(&path, doc).unwrap();
            let e = secrets_from_file(path.to_str().unwrap()).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("hunter2"), "{doc}: {shown}");
            assert!(shown.contains("at line 1 column"), "{doc}: {shown}");
        }
    }

    #[test]
    fn a_secrets_file_over_the_cap_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let file = std::fs::File::create(&path).unwrap();
        // Sparse: the size says 4 GiB, nothing is written.
        file.set_len(4 << 30).unwrap();
        let e = secrets_from_file(path.to_str().unwrap()).unwrap_err();
        assert_eq!(message(e), format!("larger than {MAX_SECRETS_BYTES} bytes"));
    }

    #[tokio::test]
    async fn an_endless_extension_reply_stops_at_the_cap() {
        let server = serve(Body::Endless { chunk: 16 * 1024 }, 1).await;
        let got = tokio::time::timeout(LIMIT, secrets_from_extension_at(&server.base, "t", "s"))
            .await
            .expect("the read must stop at the cap");
        assert_eq!(
            message(got.unwrap_err()),
            format!("extension reply larger than {MAX_SECRETS_BYTES} bytes")
        );
        let written = server.finish().await;
        assert!(written < MAX_SECRETS_BYTES as u64 + IN_FLIGHT, "{written}");
    }

    #[tokio::test]
    async fn extension_replies_of_the_wrong_shape_name_no_value() {
        for body in [
            &br#"{"SecretString":{"v":"hunter2-leak"}}"#[..],
            br#"{"SecretString":"{\"github_webhook_secret\":[\"hunter2-leak\"]}"}"#,
            br#"{"SecretString":"{\"github_webhook_secret\":\"hunter2-leak"}"#,
        ] {
            let server = serve(Body::Exact(body), 1).await;
            let e = secrets_from_extension_at(&server.base, "t", "s")
                .await
                .unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("at line 1 column"), "{shown}");
        }
    }
}
