//! The four Lambda functions, as library code. Each binary in `functions/`
//! is one line calling [`run`]; the dev server mounts the same types.

use std::future::Future;
use std::process::ExitCode;

use crate::setup::{Deps, SetupError};
use crate::web::Function;

pub mod entitlement_check;
pub mod oauth_callback;
pub mod pubsub_push;
pub mod purchase_webhook;

/// A function built once at cold start from the shared dependencies.
pub trait FromDeps: Function + Sized + 'static {
    const NAME: &'static str;
    fn from_deps(deps: Deps) -> impl Future<Output = Result<Self, SetupError>> + Send;
}

/// Cold start then serve Lambda events. A configuration error stops the
/// process with the file and key at fault, before any request is taken.
pub async fn run<F: FromDeps>() -> ExitCode {
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
    match crate::web::run_lambda(function).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(function = F::NAME, error = %e, "runtime stopped");
            ExitCode::FAILURE
        }
    }
}

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
