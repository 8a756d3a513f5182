//! `pubsub-push`: Google Cloud Marketplace notifications, pushed by Pub/Sub
//! (`POST /`). Wiring only: the route is the Google adapter's [`Pipeline`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{Clock, SystemClock};
use crate::ingest::Pipeline;
use crate::marketplace::gcp::adapter::{GcpAdapter, Procurement};
use crate::marketplace::gcp::keys::{KeyCache, KeyFormat};
use crate::marketplace::gcp::push_auth::PushVerifier;
use crate::setup::{Deps, SetupError};
use crate::web::{ApiError, Function, Request, Response, body_bytes};

use super::FromDeps;

/// Bound on resolving and applying a push: one Procurement `GET` (with its
/// retries), one transaction, maybe an approval — well inside Pub/Sub's
/// default 10 s ack deadline.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(8);

pub struct PubsubPush {
    gcp: Pipeline<GcpAdapter>,
}

impl PubsubPush {
    pub fn new(deps: &Deps, clock: Arc<dyn Clock>) -> Result<Self, SetupError> {
        let procurement = super::gcp_procurement(deps, Arc::clone(&clock))?;
        Ok(Self {
            gcp: gcp_pipeline(deps, procurement)?.with_clock(clock),
        })
    }
}

/// Google's pipeline: push authentication (when configured), the
/// Procurement API, the catalog and the store roles it uses.
pub fn gcp_pipeline(
    deps: &Deps,
    procurement: Arc<dyn Procurement>,
) -> Result<Pipeline<GcpAdapter>, SetupError> {
    let settings = &deps.settings;
    let verifier = match (
        &settings.gcp_push_audience,
        &settings.gcp_push_service_account,
    ) {
        (Some(audience), Some(account)) => Some(PushVerifier::new(
            KeyCache::new(
                settings.google_oidc_certs_url.clone(),
                KeyFormat::Jwks,
                super::http_client()?,
            ),
            audience,
            account,
        )),
        (None, None) => {
            tracing::warn!(
                "Pub/Sub push authentication not configured (TOLLGATE_GCP_PUSH_AUDIENCE, \
                 TOLLGATE_GCP_PUSH_SERVICE_ACCOUNT): every push is refused"
            );
            None
        }
        _ => {
            return Err(SetupError::Invalid(
                "set both TOLLGATE_GCP_PUSH_AUDIENCE and TOLLGATE_GCP_PUSH_SERVICE_ACCOUNT".into(),
            ));
        }
    };
    let adapter = GcpAdapter::new(
        verifier,
        procurement,
        Arc::clone(&deps.catalog),
        deps.store.clone(),
    );
    Ok(Pipeline::new(
        adapter,
        deps.store.clone(),
        deps.store.clone(),
        deps.store.clone(),
    )
    .with_timeouts(crate::ingest::pipeline::RECORD_TIMEOUT, PROCESS_TIMEOUT))
}

impl FromDeps for PubsubPush {
    const NAME: &'static str = "pubsub-push";

    async fn from_deps(deps: Deps) -> Result<Self, SetupError> {
        Self::new(&deps, Arc::new(SystemClock))
    }
}

#[async_trait]
impl Function for PubsubPush {
    async fn call(&self, req: Request) -> Result<Response, ApiError> {
        match (req.method().as_str(), req.uri().path()) {
            ("GET", "/healthz") => Ok(super::healthz(Self::NAME)),
            ("POST", "/") => {
                let body = body_bytes(&req)?;
                self.gcp.handle(req.headers(), body).await
            }
            (_, "/") => Err(ApiError::method_not_allowed(&["POST"])),
            (_, "/healthz") => Err(ApiError::method_not_allowed(&["GET"])),
            _ => Err(ApiError::not_found("no such route")),
        }
    }
}
