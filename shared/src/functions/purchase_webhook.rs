//! `purchase-webhook`: GitHub Marketplace webhooks (`POST /github`, also
//! `POST /`) and Q2 subscription events relayed by the vendor's Q2
//! extension (`POST /q2`). Wiring only: each route is one marketplace's
//! [`Pipeline`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{Clock, SystemClock};
use crate::ingest::Pipeline;
use crate::marketplace::github::{self, GithubAdapter, WebhookSecrets};
use crate::marketplace::q2::{self, Q2Adapter, SigningSecrets};
use crate::model::Marketplace;
use crate::setup::{Deps, SetupError};
use crate::web::{ApiError, Function, Request, Response, body_bytes, request_id};

use super::FromDeps;
use super::scheduled::{ScheduleError, Scheduled, ScheduledResult};

pub use crate::ingest::pipeline::{PROCESS_TIMEOUT, RECORD_TIMEOUT};

pub struct PurchaseWebhook {
    github: Pipeline<GithubAdapter>,
    q2: Pipeline<Q2Adapter>,
    /// Kept for the scheduled reconciliation, which builds its clients only
    /// when it runs (a webhook's cold start pays nothing for it).
    deps: Deps,
    clock: Arc<dyn Clock>,
    /// Change notifications, built on first use (stream or schedule), so a
    /// webhook's cold start pays nothing for them.
    notifier: tokio::sync::OnceCell<crate::notify::Sender>,
}

/// Per pending delivery replayed by the scheduled run (the webhook's own
/// bound is [`PROCESS_TIMEOUT`]; nobody waits on a scheduled run).
const SCHEDULED_REPLAY_TIMEOUT: Duration = Duration::from_secs(20);
/// Left of the invocation's deadline when a scheduled run stops: enough to
/// log and answer before Lambda stops the process.
const SCHEDULED_MARGIN: Duration = Duration::from_secs(5);

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
            deps,
            clock: Arc::new(SystemClock),
            notifier: tokio::sync::OnceCell::new(),
        })
    }

    /// Uses `clock` for receive times and rule decisions (tests, simulations).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.github = self.github.with_clock(Arc::clone(&clock));
        self.q2 = self.q2.with_clock(Arc::clone(&clock));
        self.clock = clock;
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
            (_, "/github" | "/" | "/q2") => Err(ApiError::method_not_allowed(&["POST"])),
            (_, "/healthz") => Err(ApiError::method_not_allowed(&["GET"])),
            _ => Err(ApiError::not_found("no such route")),
        }
    }
}

/// The schedule (EventBridge, `infra/`) runs reconciliation here: this
/// function already holds what it needs — GitHub's replay pipeline and the
/// store roles to read, commit and list pending deliveries, the secret with
/// the GitHub App key and Google credentials — so the schedule adds only
/// the `Inventory` scan to its grants. The event's content is not read.
#[async_trait]
impl Scheduled for PurchaseWebhook {
    async fn on_outbox(&self, deadline: Option<std::time::SystemTime>) -> ScheduledResult {
        let report = self.drain_notifications(deadline).await?;
        Ok(serde_json::json!({
            "entries": report.entries,
            "delivered": report.delivered,
            "retrying": report.retrying,
            "dead": report.dead,
        }))
    }

    async fn on_schedule(&self, deadline: Option<std::time::SystemTime>) -> ScheduledResult {
        let failed = |e: &dyn std::fmt::Display| ScheduleError::Failed(e.to_string());
        // Notification retries that came due; a failure here is logged and
        // does not hold up reconciliation (the outbox keeps the work).
        // At most half the invocation's time, so reconciliation keeps the rest.
        let now = std::time::SystemTime::now();
        let half =
            deadline.and_then(|d| now.checked_add(d.duration_since(now).unwrap_or_default() / 2));
        if let Err(e) = self.drain_notifications(half).await {
            tracing::error!(source = "notify", error = %e, "notification drain failed");
        }
        let targets = super::reconcile_targets(
            &self.deps,
            None,
            Arc::clone(&self.clock),
            SCHEDULED_REPLAY_TIMEOUT,
        )
        .map_err(|e| failed(&e))?;
        let stores = super::reconcile_stores(&self.deps);
        let run = crate::reconcile::reconcile(&targets, &stores, &*self.clock, false, log_progress);
        let budget = deadline
            .and_then(|d| d.duration_since(std::time::SystemTime::now()).ok())
            .map(|left| left.saturating_sub(SCHEDULED_MARGIN));
        let report = match budget {
            Some(budget) => tokio::time::timeout(budget, run).await.map_err(|_| {
                failed(&"reconciliation did not finish before the invocation's deadline; what it fixed stays fixed")
            })?,
            None => run.await,
        };
        tracing::info!(source = "reconcile", summary = %report.summary(), "reconcile finished");
        if report.errors() > 0 {
            return Err(failed(&report.summary()));
        }
        Ok(serde_json::to_value(&report)?)
    }
}

impl PurchaseWebhook {
    /// Drains the notification outbox once: on every stream batch (new
    /// outbox items), every tick of the retry timer and every scheduled
    /// reconciliation.
    pub async fn drain_notifications(
        &self,
        deadline: Option<std::time::SystemTime>,
    ) -> Result<crate::notify::DrainReport, ScheduleError> {
        let failed = |e: &dyn std::fmt::Display| ScheduleError::Failed(e.to_string());
        let sender = self
            .notifier
            .get_or_try_init(|| async {
                let outbox = crate::setup::open_outbox(&self.deps.settings.store)
                    .await
                    .map_err(|e| failed(&e))?;
                let transport = crate::notify::HttpTransport::new().map_err(|e| failed(&e))?;
                crate::notify::Sender::new(
                    outbox,
                    Arc::clone(&self.deps.catalog),
                    &self.deps.secrets,
                    Arc::new(transport),
                    Arc::clone(&self.clock),
                )
                .map_err(|e| failed(&e))
            })
            .await?;
        let report = sender
            .drain_before(deadline)
            .await
            .map_err(|e| failed(&e))?;
        tracing::info!(
            source = "notify",
            entries = report.entries,
            delivered = report.delivered,
            retrying = report.retrying,
            dead = report.dead,
            "notifications drained"
        );
        Ok(report)
    }
}

/// A scheduled run's progress, as log lines: drift, holds and failures
/// (subscriptions in sync are only counted).
fn log_progress(p: &crate::reconcile::Progress<'_>) {
    use crate::reconcile::{Outcome, Progress};
    match p {
        Progress::Subscription { key, outcome } => match outcome {
            Outcome::InSync | Outcome::Fixed { .. } => {}
            Outcome::WouldFix { differences } => {
                tracing::info!(source = "reconcile", subscription = %key, differences = %differences, "drift")
            }
            Outcome::Held {
                differences,
                reason,
            } => tracing::info!(
                source = "reconcile", subscription = %key, differences = %differences, reason = %reason, "drift held"
            ),
            Outcome::Failed { message } => {
                tracing::warn!(source = "reconcile", subscription = %key, error = %message, "reconcile failed")
            }
        },
        Progress::Failure {
            marketplace,
            message,
        } => {
            tracing::warn!(source = "reconcile", marketplace = marketplace.as_str(), error = %message, "reconcile failure")
        }
        Progress::Replayed {
            delivery,
            result: Err(e),
            ..
        } => {
            tracing::warn!(source = "reconcile", delivery = %delivery, error = %e, "replay failed")
        }
        Progress::Replayed { .. } => {}
        // Logged by the run itself, failed or not.
        Progress::FollowUp { .. } => {}
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
