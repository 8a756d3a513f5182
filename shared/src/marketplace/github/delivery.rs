//! What happens to a verified GitHub delivery, shared by the
//! `purchase-webhook` function and `tollgate replay`.
//!
//! GitHub never retries a failed delivery (spec §1.4), so the function
//! records every verified delivery — raw body included — as *pending* before
//! processing it. Processing (parse, normalize, [`ingest`]) marks it done in
//! the same atomic commit that applies the event; if processing fails or
//! times out the delivery stays pending, and `tollgate replay` finishes it
//! later through [`Processor::process`], the very code the function runs.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ingest::{self, Ingested};
use crate::model::{Disposition, MarketEvent};
use crate::rules::Action as RuleAction;
use crate::setup::{Secret, Secrets, SetupError};
use crate::store::{Delivery, DeliveryStatus, Store, StoreError, sha256_hex};

use super::signature::{self, SignatureError};
use super::webhook::{self, DeliveryInfo, ParseError};

/// Name of the listing's webhook secret in the secrets source.
pub const SECRET_NAME: &str = "github_webhook_secret";
/// During a rotation, the secret being retired; both verify until it is removed.
pub const PREVIOUS_SECRET_NAME: &str = "github_webhook_secret_previous";

/// `X-GitHub-Event` of the check GitHub sends when a hook is created:
/// answered, never recorded. (Other deliveries are recorded with their
/// `X-GitHub-Event` name as [`Delivery::kind`].)
pub const PING_EVENT: &str = "ping";

/// The secrets a delivery may be signed with: the current one and, during a
/// rotation, the previous one.
#[derive(Clone, Debug)]
pub struct WebhookSecrets(Vec<Secret>);

impl WebhookSecrets {
    /// Reads [`SECRET_NAME`] (and [`PREVIOUS_SECRET_NAME`] if set). `None`
    /// when no secret is configured; an empty secret is refused, since it
    /// would let anyone sign.
    pub fn from_secrets(secrets: &Secrets) -> Result<Option<Self>, SetupError> {
        let Some(current) = secrets.get(SECRET_NAME) else {
            return Ok(None);
        };
        let mut all = vec![current.clone()];
        all.extend(secrets.get(PREVIOUS_SECRET_NAME).cloned());
        for (name, secret) in [SECRET_NAME, PREVIOUS_SECRET_NAME].iter().zip(&all) {
            if secret.expose().is_empty() {
                return Err(SetupError::Invalid(format!("secret `{name}` is empty")));
            }
        }
        Ok(Some(Self(all)))
    }

    pub fn verify(&self, body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
        signature::verify_any(self.0.iter().map(|s| s.expose().as_bytes()), body, header)
    }
}

/// Why a verified delivery could not be processed. It stays pending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// Authentic but unreadable (GitHub changed the payload?). Replay after a fix.
    #[error("payload: {0}")]
    Payload(#[from] ParseError),
    /// A pending delivery without its body cannot be replayed.
    #[error("delivery {0} has no recorded body")]
    MissingBody(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store did not answer in time; GitHub's 10 s must not be missed.
    #[error("processing took longer than {0:?}")]
    TimedOut(Duration),
}

impl ProcessError {
    /// Worth trying again unchanged (replay later, or redeliver).
    pub fn is_transient(&self) -> bool {
        match self {
            ProcessError::Store(e) => e.is_transient(),
            ProcessError::TimedOut(_) => true,
            ProcessError::Payload(_) | ProcessError::MissingBody(_) => false,
        }
    }
}

/// What processing one delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub event: MarketEvent,
    pub result: Ingested,
}

impl Processed {
    /// `applied`, `stale`, `ignored` or `duplicate`.
    pub fn status(&self) -> &'static str {
        match &self.result {
            Ingested::Duplicate => "duplicate",
            Ingested::Committed(o) => match o.disposition() {
                Disposition::Applied => "applied",
                Disposition::Stale => "stale",
                Disposition::Ignored => "ignored",
            },
        }
    }

    /// The rules' one-sentence explanation.
    pub fn note(&self) -> &str {
        match &self.result {
            Ingested::Duplicate => "already processed",
            Ingested::Committed(o) => &o.log.note,
        }
    }
}

/// Builds the pending record of a verified delivery, raw body included.
pub fn pending_delivery(
    id: &str,
    event: &str,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Delivery {
    Delivery {
        marketplace: crate::model::Marketplace::Github,
        id: id.to_owned(),
        kind: event.to_owned(),
        status: DeliveryStatus::Pending,
        body_sha256: sha256_hex(body),
        body: Some(body.to_vec()),
        received_at,
        expires_at: received_at + ingest::DEDUPE_TTL,
    }
}

/// Applies recorded GitHub deliveries to the store.
#[derive(Clone)]
pub struct Processor {
    store: std::sync::Arc<dyn Store>,
    /// The product the listing sells (`[marketplaces.github] product`).
    product: String,
    /// Upper bound for the store work of one delivery.
    timeout: Duration,
}

impl Processor {
    pub fn new(
        store: std::sync::Arc<dyn Store>,
        product: impl Into<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            store,
            product: product.into(),
            timeout,
        }
    }

    pub fn product(&self) -> &str {
        &self.product
    }

    /// Parses, normalizes and ingests a recorded delivery at `now`. Events
    /// other than `marketplace_purchase` are logged as unrouted and
    /// acknowledged; unknown actions are logged on their account.
    pub async fn process(
        &self,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<Processed, ProcessError> {
        let body = delivery
            .body
            .as_deref()
            .ok_or_else(|| ProcessError::MissingBody(delivery.id.clone()))?;
        let info = DeliveryInfo {
            id: &delivery.id,
            received_at: delivery.received_at,
        };
        let event = if delivery.kind == webhook::EVENT {
            webhook::normalize(&webhook::parse(body)?, info, &self.product)
        } else {
            webhook::unrouted(&delivery.kind, info, &self.product)
        };
        let result = tokio::time::timeout(self.timeout, ingest::ingest(&*self.store, &event, now))
            .await
            .map_err(|_| ProcessError::TimedOut(self.timeout))??;
        if let Ingested::Committed(outcome) = &result {
            for action in &outcome.actions {
                // GitHub has nothing to approve; seat overruns are for the
                // vendor to follow up (GitHub asks vendors to check limits
                // after a downgrade).
                if let RuleAction::SeatsOverLimit { limit, used } = action {
                    tracing::warn!(
                        subscription = %event.subscription,
                        limit,
                        used,
                        "seats in use exceed the purchased units"
                    );
                }
            }
        }
        Ok(Processed { event, result })
    }
}

/// Why a delivery was refused before it was recorded. Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No `github_webhook_secret`: nothing can be verified.
    #[error("GitHub Marketplace webhooks are not configured (no `{SECRET_NAME}` secret)")]
    NotConfigured,
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The listing's webhook is set to `application/x-www-form-urlencoded`.
    #[error(
        "the body is form-encoded; set Content type to application/json on the Marketplace listing's webhook"
    )]
    FormEncoded,
    #[error("unsupported content type `{0}`; GitHub webhooks must be sent as application/json")]
    UnsupportedMediaType(String),
    #[error("the X-GitHub-Event header is missing")]
    MissingEvent,
    #[error("the X-GitHub-Delivery header is missing")]
    MissingDeliveryId,
    #[error("the X-GitHub-Delivery header is not a delivery id")]
    InvalidDeliveryId,
    #[error("the body is not JSON: {0}")]
    InvalidJson(String),
    /// The store failed or was too slow while recording the delivery.
    #[error("the delivery could not be recorded: {0}")]
    NotRecorded(String),
}
