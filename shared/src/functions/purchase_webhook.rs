//! `purchase-webhook`: GitHub Marketplace webhooks (`POST /github`, also
//! `POST /`) and, in a later change, Q2 events (`POST /q2`). Wiring only:
//! each route is one marketplace's [`Pipeline`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::ingest::Pipeline;
use crate::marketplace::github::{self, GithubAdapter, WebhookSecrets};
use crate::model::Marketplace;
use crate::setup::{Deps, SetupError};
use crate::web::{ApiError, Function, Request, Response, body_bytes};

use super::FromDeps;

pub use crate::ingest::pipeline::{PROCESS_TIMEOUT, RECORD_TIMEOUT};

pub struct PurchaseWebhook {
    github: Pipeline<GithubAdapter>,
}

impl PurchaseWebhook {
    /// Builds the function. A webhook secret without a GitHub product in
    /// `tollgate.toml` is a configuration error; no secret at all leaves the
    /// GitHub route answering 503 (a deployment may sell through Q2 only).
    pub fn new(deps: Deps) -> Result<Self, SetupError> {
        if deps.secrets.get(github::SECRET_NAME).is_none() {
            tracing::warn!(
                secret = github::SECRET_NAME,
                "no GitHub webhook secret: POST /github answers 503 until it is set"
            );
        }
        Ok(Self {
            github: github_pipeline(&deps)?,
        })
    }

    /// Uses `clock` for receive times and rule decisions (tests, simulations).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.github = self.github.with_clock(clock);
        self
    }

    /// Overrides [`RECORD_TIMEOUT`] and [`PROCESS_TIMEOUT`].
    pub fn with_timeouts(mut self, record: Duration, process: Duration) -> Self {
        self.github = self.github.with_timeouts(record, process);
        self
    }
}

/// GitHub's pipeline from the shared dependencies: the webhook secrets, the
/// listing's product, and the two store roles the pipeline uses.
pub fn github_pipeline(deps: &Deps) -> Result<Pipeline<GithubAdapter>, SetupError> {
    let secrets = WebhookSecrets::from_secrets(&deps.secrets)?;
    let product = deps.catalog.product_for(Marketplace::Github, None);
    let adapter = match (secrets, product) {
        (None, product) => GithubAdapter::new(None, product.unwrap_or_default()),
        (Some(_), None) => {
            return Err(SetupError::Invalid(format!(
                "`{}` is set but the config names no GitHub product: add `[marketplaces.github] product = \"...\"`",
                github::SECRET_NAME
            )));
        }
        (Some(secrets), Some(product)) => GithubAdapter::new(Some(secrets), product),
    };
    Ok(Pipeline::new(
        adapter,
        deps.store.clone(),
        deps.store.clone(),
    ))
}

impl FromDeps for PurchaseWebhook {
    const NAME: &'static str = "purchase-webhook";

    async fn from_deps(deps: Deps) -> Result<Self, SetupError> {
        Self::new(deps)
    }
}

#[async_trait]
impl Function for PurchaseWebhook {
    async fn call(&self, req: Request) -> Result<Response, ApiError> {
        match (req.method().as_str(), req.uri().path()) {
            ("GET", "/healthz") => Ok(super::healthz(Self::NAME)),
            ("POST", "/github" | "/") => {
                let body = body_bytes(&req)?;
                self.github.handle(req.headers(), body).await
            }
            ("POST", "/q2") => Err(ApiError::not_found("Q2 events are not served yet")),
            (_, "/github" | "/" | "/q2") => Err(ApiError::method_not_allowed()),
            _ => Err(ApiError::not_found("no such route")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestApp;
    use http::StatusCode;

    const WITH_PRODUCT: &str = "[products.p.tiers.t]\n[marketplaces.github]\nproduct = \"p\"\n";
    const WITHOUT_PRODUCT: &str = "[products.p.tiers.t]\n";

    #[test]
    fn a_secret_without_a_github_product_is_a_cold_start_error() {
        let app = TestApp::new()
            .config(WITHOUT_PRODUCT)
            .secret(github::SECRET_NAME, "s");
        let err = app.purchase_webhook().err().expect("must fail").to_string();
        assert!(err.contains("marketplaces.github"), "{err}");
    }

    #[test]
    fn an_empty_secret_is_a_cold_start_error() {
        let app = TestApp::new()
            .config(WITH_PRODUCT)
            .secret(github::SECRET_NAME, "");
        assert!(app.purchase_webhook().is_err());
    }

    #[tokio::test]
    async fn without_a_secret_the_github_route_says_it_is_not_configured() {
        let f = TestApp::new()
            .config(WITH_PRODUCT)
            .purchase_webhook()
            .unwrap();
        let req = http::Request::builder()
            .method("POST")
            .uri("/github")
            .body(crate::web::Body::Empty)
            .unwrap();
        let err = f.call(req).await.unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::SERVICE_UNAVAILABLE, "not_configured")
        );
    }
}
