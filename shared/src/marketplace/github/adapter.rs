//! GitHub Marketplace on the ingest pipeline: signed `marketplace_purchase`
//! webhooks.
//!
//! Order of checks, each refusing with nothing stored: signature over the
//! raw bytes (401), content type (415: checked before `ping` so a
//! form-encoded listing hook fails visibly the moment it is created),
//! `X-GitHub-Event` (400), `ping` (200, not stored), `X-GitHub-Delivery`
//! (400), JSON syntax (400). Body size (413) is the HTTP layer's.
//!
//! GitHub never retries a failed delivery
//! (<https://docs.github.com/en/webhooks/using-webhooks/handling-failed-webhook-deliveries>),
//! so the adapter is [`Durability::RecordFirst`]: a delivery that was
//! recorded but not processed is answered with an error (GitHub then shows it
//! as failed on the listing's Webhook page, where it can be redelivered) and
//! stays pending until `tollgate replay` finishes it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use serde_json::json;

use crate::ingest::{
    Adapter, Admission, Durability, FollowUpError, Ingested, Processed, Resolution, ResolveFailure,
};
use crate::marketplace::signing::RotatingSecrets;
use crate::model::Marketplace;
use crate::rules::Action;
use crate::secret::Secrets;
use crate::settings::SetupError;
use crate::store::Delivery;
use crate::web::{ApiError, MediaType, header_str, json_response, media_type};

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

/// Longest `X-GitHub-Event` / `X-GitHub-Delivery` value accepted (GUIDs are 36).
const MAX_HEADER_TOKEN: usize = 100;

/// The secrets a delivery may be signed with: the current one and, during a
/// rotation, the previous one.
#[derive(Clone, Debug)]
pub struct WebhookSecrets(RotatingSecrets);

impl WebhookSecrets {
    /// Reads [`SECRET_NAME`] (and [`PREVIOUS_SECRET_NAME`] if set). `None`
    /// when no secret is configured; an empty secret is refused, since it
    /// would let anyone sign.
    pub fn from_secrets(secrets: &Secrets) -> Result<Option<Self>, SetupError> {
        Ok(RotatingSecrets::from_secrets(secrets, SECRET_NAME, PREVIOUS_SECRET_NAME)?.map(Self))
    }

    pub fn verify(&self, body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
        signature::verify_any(self.0.keys(), body, header)
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
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        use RequestError as E;
        let message = e.to_string();
        match e {
            E::Signature(s) => s.into(),
            E::NotConfigured => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_configured", message)
            }
            E::FormEncoded | E::UnsupportedMediaType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                message,
            ),
            E::MissingEvent => ApiError::bad_request("missing_event", message),
            E::MissingDeliveryId => ApiError::bad_request("missing_delivery_id", message),
            E::InvalidDeliveryId => ApiError::bad_request("invalid_delivery_id", message),
            E::InvalidJson(_) => ApiError::bad_request("invalid_json", message),
        }
    }
}

/// An authentic payload that cannot be read will not become readable by
/// trying again: it waits for a fix, then a replay.
impl ResolveFailure for ParseError {
    fn is_transient(&self) -> bool {
        false
    }
}

/// The GitHub Marketplace adapter, built once at cold start.
#[derive(Clone, Debug)]
pub struct GithubAdapter {
    /// `None` when no webhook secret is configured: every delivery is
    /// refused as not configured (a deployment may sell through Q2 only).
    secrets: Option<WebhookSecrets>,
    /// The product the listing sells (`[marketplaces.github] product`).
    product: String,
}

impl GithubAdapter {
    pub fn new(secrets: Option<WebhookSecrets>, product: impl Into<String>) -> Self {
        Self {
            secrets,
            product: product.into(),
        }
    }

    pub fn product(&self) -> &str {
        &self.product
    }
}

#[async_trait]
impl Adapter for GithubAdapter {
    const MARKETPLACE: Marketplace = Marketplace::Github;
    const DURABILITY: Durability = Durability::RecordFirst;
    type Refusal = RequestError;
    type ResolveError = ParseError;
    type Context = ();

    async fn authenticate(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<Admission, RequestError> {
        let secrets = self.secrets.as_ref().ok_or(RequestError::NotConfigured)?;
        // The legacy SHA-1 header is only consulted so that a sha1-only
        // delivery gets a clear answer.
        let signature_header = header_str(headers, signature::HEADER)
            .or_else(|| header_str(headers, signature::LEGACY_SHA1_HEADER));
        secrets.verify(body, signature_header)?;
        check_content_type(headers)?;
        let event = header_token(headers, "x-github-event").ok_or(RequestError::MissingEvent)?;
        if event == PING_EVENT {
            tracing::info!("GitHub ping");
            return Ok(Admission::Answer(json_response(
                StatusCode::OK,
                &json!({ "status": "pong" }),
            )));
        }
        let id = match header_str(headers, "x-github-delivery") {
            None => return Err(RequestError::MissingDeliveryId),
            Some(_) => {
                header_token(headers, "x-github-delivery").ok_or(RequestError::InvalidDeliveryId)?
            }
        };
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| {
            RequestError::InvalidJson(format!("line {} column {}", e.line(), e.column()))
        })?;
        Ok(Admission::Deliver {
            id: id.to_owned(),
            kind: event.to_owned(),
        })
    }

    /// Events other than `marketplace_purchase` are logged as unrouted and
    /// acknowledged; unknown actions are logged on their account.
    async fn resolve(&self, delivery: &Delivery) -> Result<Resolution<()>, ParseError> {
        let body = delivery.body.as_deref().unwrap_or_default();
        let info = DeliveryInfo {
            id: &delivery.id,
            received_at: delivery.received_at,
        };
        let event = if delivery.kind == webhook::EVENT {
            webhook::normalize(&webhook::parse(body)?, info, &self.product)
        } else {
            webhook::unrouted(&delivery.kind, info, &self.product)
        };
        Ok(Resolution::one(event, ()))
    }

    /// GitHub has nothing to approve. A seat overrun is for the vendor to
    /// follow up (GitHub asks vendors to check plan limits after a
    /// downgrade), so it is reported in the log.
    async fn follow_up(&self, _: &(), processed: &Processed) -> Result<(), FollowUpError> {
        let Ingested::Committed(outcome) = &processed.result else {
            return Ok(());
        };
        for action in &outcome.actions {
            match action {
                Action::SeatsOverLimit { limit, used } => tracing::warn!(
                    subscription = %processed.event.subscription,
                    limit,
                    used,
                    "seats in use exceed the purchased units"
                ),
                Action::ApproveOrder | Action::ApprovePlanChange { .. } => {}
            }
        }
        Ok(())
    }
}

/// JSON or nothing: GitHub sends `application/json` when the listing says
/// so. A missing content type is let through to the JSON check.
fn check_content_type(headers: &HeaderMap) -> Result<(), RequestError> {
    match media_type(headers) {
        MediaType::Missing | MediaType::Json => Ok(()),
        MediaType::Form => Err(RequestError::FormEncoded),
        MediaType::Other(essence) => Err(RequestError::UnsupportedMediaType(
            essence.chars().take(MAX_HEADER_TOKEN).collect(),
        )),
    }
}

/// A header holding an identifier: non-empty, short, visible ASCII only (it
/// becomes a store key and a log field).
fn header_token<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    header_str(headers, name).map(str::trim).filter(|v| {
        !v.is_empty() && v.len() <= MAX_HEADER_TOKEN && v.bytes().all(|b| b.is_ascii_graphic())
    })
}
