//! The four Lambda functions, as library code. Each binary in `functions/`
//! is one line calling [`run`]; the dev server mounts the same types.

use std::future::Future;
use std::process::ExitCode;

use crate::setup::{Deps, SetupError};

pub mod entitlement_check;
pub mod oauth_callback;
pub mod pubsub_push;
pub mod purchase_webhook;
pub mod reconcile;
pub mod scheduled;

pub use reconcile::{reconcile_stores, reconcile_targets};
pub use scheduled::Scheduled;

/// A function built once at cold start from the shared dependencies. Its
/// Lambda also takes non-HTTP events ([`Scheduled`]); only purchase-webhook
/// has a schedule.
pub trait FromDeps: Scheduled + Sized + 'static {
    const NAME: &'static str;
    fn from_deps(deps: Deps) -> impl Future<Output = Result<Self, SetupError>> + Send;
}

/// A function binary's whole `main`: cold start then serve Lambda events,
/// on a current-thread runtime. Lambda hands a process one event at a time,
/// so worker threads would bring nothing but their start-up at every cold
/// start, their stacks in memory and a hop between threads in every
/// request's I/O (README "Budgets, measured"). A configuration error stops
/// the process with the file and key at fault, before any request is taken.
pub fn run<F: FromDeps>() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", F::NAME);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cold_start_and_serve::<F>())
}

async fn cold_start_and_serve<F: FromDeps>() -> ExitCode {
    crate::setup::init_telemetry();
    let built = match Deps::from_env().await {
        Ok(deps) => F::from_deps(deps).await,
        Err(e) => Err(e),
    };
    let function = match built {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(function = F::NAME, error = %e, "cold start failed");
            eprintln!("{}: cold start failed: {e}", F::NAME);
            return ExitCode::FAILURE;
        }
    };
    match scheduled::run_lambda(function).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(function = F::NAME, error = %e, "runtime stopped");
            ExitCode::FAILURE
        }
    }
}

impl Scheduled for entitlement_check::EntitlementCheck {}
impl Scheduled for oauth_callback::OauthCallback {}
impl Scheduled for pubsub_push::PubsubPush {}

/// `GET /healthz` for every function: proves the process is up and wired.
pub(crate) fn healthz(name: &str) -> crate::web::Response {
    crate::web::json_response(
        http::StatusCode::OK,
        &serde_json::json!({ "status": "ok", "function": name }),
    )
}

/// The pipeline `tollgate replay` runs a marketplace's pending deliveries
/// through: the same one its function uses, with the operator's longer
/// `process_timeout`. Refused for marketplaces that finish deliveries
/// themselves (see [`crate::ingest::Durability`]).
pub fn replayer(
    marketplace: crate::model::Marketplace,
    deps: &Deps,
    process_timeout: std::time::Duration,
) -> Result<Box<dyn crate::ingest::replay::Replayer>, SetupError> {
    use crate::model::Marketplace;
    match marketplace {
        Marketplace::Github => {
            // No signature is checked on replay (the body was authenticated
            // when it was recorded), so no webhook secret is needed; the
            // listing's product is.
            if deps.catalog.product_for(Marketplace::Github, None).is_none() {
                return Err(SetupError::Invalid(
                    "the config names no GitHub product: add `[marketplaces.github] product = \"...\"`"
                        .into(),
                ));
            }
            let pipeline = purchase_webhook::github_pipeline(deps)?;
            Ok(Box::new(pipeline.with_timeouts(
                purchase_webhook::RECORD_TIMEOUT,
                process_timeout,
            )))
        }
        Marketplace::Gcp => Err(SetupError::Invalid(
            "gcp deliveries are not replayed: Pub/Sub redelivers a message until it is acknowledged"
                .into(),
        )),
        Marketplace::Q2 => Err(SetupError::Invalid(
            "q2 deliveries are not replayed: each event was answered synchronously and Q2 acted on that answer"
                .into(),
        )),
    }
}

/// The HTTP client the functions share for outbound calls that have no
/// client of their own (Google's key documents).
pub(crate) fn http_client() -> Result<reqwest::Client, SetupError> {
    crate::https::client_builder()
        .map_err(|e| SetupError::Invalid(e.to_string()))?
        .connect_timeout(std::time::Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| SetupError::Invalid(format!("HTTP client: {e}")))
}

/// The Procurement API for this deployment. Without a provider id or
/// credentials every call fails as *transient*, so Pub/Sub keeps the
/// messages (for days) until the operator finishes the configuration; the
/// cold start says what is missing.
pub(crate) fn gcp_procurement(
    deps: &Deps,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
) -> Result<std::sync::Arc<dyn crate::marketplace::gcp::adapter::Procurement>, SetupError> {
    use crate::marketplace::gcp::{credentials, port, procurement::ProcurementClient};
    let Some(provider) = &deps.settings.gcp_provider_id else {
        return Ok(port::unconfigured(
            "Google Cloud Marketplace is not configured: set TOLLGATE_GCP_PROVIDER_ID",
        ));
    };
    let tokens = match credentials::from_config(
        &deps.settings,
        &deps.secrets,
        credentials::process_env(),
        clock,
    ) {
        Ok(tokens) => tokens,
        Err(e) => {
            tracing::warn!(error = %e, "no Google credentials: Procurement calls will fail");
            return Ok(port::unconfigured("no Google credentials configured"));
        }
    };
    let client = ProcurementClient::new(&deps.settings, provider, tokens).map_err(|e| {
        SetupError::Invalid(format!(
            "TOLLGATE_GCP_PROVIDER_ID / TOLLGATE_PROCUREMENT_URL: {e}"
        ))
    })?;
    Ok(std::sync::Arc::new(client))
}
