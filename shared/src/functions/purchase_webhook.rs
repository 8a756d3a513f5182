//! `purchase-webhook`: GitHub Marketplace webhooks (`POST /github`, also
//! `POST /`) and Q2 subscription events relayed by the vendor's Q2
//! extension (`POST /q2`). Wiring only: each route is one marketplace's
//! [`Pipeline`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::ingest::Pipeline;
use crate::marketplace::github::{self, GithubAdapter, WebhookSecrets};
use crate::marketplace::q2::{self, Q2Adapter, SigningSecrets};
use crate::model::Marketplace;
use crate::setup::{Deps, SetupError};
use crate::web::{ApiError, Function, Request, Response, body_bytes, request_id};

use super::FromDeps;

pub use crate::ingest::pipeline::{PROCESS_TIMEOUT, RECORD_TIMEOUT};

pub struct PurchaseWebhook {
    github: Pipeline<GithubAdapter>,
    q2: Pipeline<Q2Adapter>,
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
            q2: q2_pipeline(&deps)?,
        })
    }

    /// Uses `clock` for receive times and rule decisions (tests, simulations).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.github = self.github.with_clock(Arc::clone(&clock));
        self.q2 = self.q2.with_clock(clock);
        self
    }

    /// Overrides [`RECORD_TIMEOUT`] and [`PROCESS_TIMEOUT`].
    pub fn with_timeouts(mut self, record: Duration, process: Duration) -> Self {
        self.github = self.github.with_timeouts(record, process);
        self.q2 = self.q2.with_timeouts(record, process);
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
        deps.store.clone(),
    ))
}

/// Q2's pipeline: the signing secrets, the catalog (products are named by
/// their Q2 product identifier), and the store roles it decides with. No
/// secret leaves `POST /q2` answering 503. A secret with no product sold on
/// Q2 is only warned about: every event is then answered
/// `CONFIGURATION_ERROR`, and `tollgate dev` writes a secret whatever the
/// config sells.
pub fn q2_pipeline(deps: &Deps) -> Result<Pipeline<Q2Adapter>, SetupError> {
    let secrets = SigningSecrets::from_secrets(&deps.secrets)?;
    let sold = deps.catalog.products().any(|(_, p)| p.q2.is_some());
    match (&secrets, sold) {
        (Some(_), false) => tracing::warn!(
            secret = q2::SECRET_NAME,
            "a Q2 signing secret but no product sold on Q2: every Q2 event is answered CONFIGURATION_ERROR"
        ),
        (None, true) => tracing::warn!(
            secret = q2::SECRET_NAME,
            "no Q2 signing secret: POST /q2 answers 503 until it is set"
        ),
        _ => {}
    }
    let adapter = Q2Adapter::new(
        secrets,
        Arc::clone(&deps.catalog),
        deps.store.clone(),
        deps.store.clone(),
    );
    Ok(Pipeline::new(
        adapter,
        deps.store.clone(),
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
            ("POST", "/q2") => {
                let body = body_bytes(&req)?;
                let id = request_id(&req);
                q2::with_request_id(id, self.q2.handle(req.headers(), body)).await
            }
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
