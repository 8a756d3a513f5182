//! `purchase-webhook`: GitHub Marketplace webhooks (`POST /github`, also
//! `POST /`) and, in a later change, Q2 events (`POST /q2`).
//!
//! Order of checks for a GitHub delivery, each refusing with nothing stored:
//! body size (413), signature over the raw bytes (401), content type (415:
//! checked before `ping` so a form-encoded listing hook fails visibly the
//! moment it is created), `X-GitHub-Event` (400), `ping` (200, not stored),
//! `X-GitHub-Delivery` (400), JSON syntax (400). Then the verified delivery is
//! recorded as pending with its raw body, and processed
//! ([`crate::marketplace::github::delivery`]). A redelivery of a processed delivery is a
//! 200 no-op.
//!
//! GitHub waits 10 s and never retries, so the store work is bounded
//! ([`RECORD_TIMEOUT`] + [`PROCESS_TIMEOUT`]). A delivery that was recorded
//! but not processed is answered with an error (422/503) — GitHub then shows
//! it as failed on the listing's Webhook page, where it can be redelivered —
//! and stays pending until `tollgate replay` finishes it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::StatusCode;
use serde_json::json;

use crate::clock::{Clock, SystemClock};
use crate::marketplace::github::delivery::{self, Processor, RequestError, WebhookSecrets};
use crate::marketplace::github::signature;
use crate::model::Marketplace;
use crate::setup::{Deps, SetupError};
use crate::store::{Recorded, Store};
use crate::web::{ApiError, Function, Request, Response, body_bytes, header_str, json_response};

use super::FromDeps;

/// Bound on recording a delivery.
pub const RECORD_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on processing it (read, rules, conditional commit, retries).
/// Together with [`RECORD_TIMEOUT`] and a cold start this stays well inside
/// GitHub's 10 s.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest `X-GitHub-Event` / `X-GitHub-Delivery` value accepted (GUIDs are 36).
const MAX_HEADER_TOKEN: usize = 100;

pub struct PurchaseWebhook {
    /// `None` when no webhook secret is configured: GitHub routes answer 503.
    github: Option<GithubHook>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    record_timeout: Duration,
}

struct GithubHook {
    secrets: WebhookSecrets,
    processor: Processor,
}

impl PurchaseWebhook {
    /// Builds the function. A webhook secret without a GitHub product in
    /// `tollgate.toml` is a configuration error; no secret at all leaves the
    /// GitHub route answering 503 (a deployment may sell through Q2 only).
    pub fn new(deps: Deps) -> Result<Self, SetupError> {
        let github = match WebhookSecrets::from_secrets(&deps.secrets)? {
            None => {
                tracing::warn!(
                    secret = delivery::SECRET_NAME,
                    "no GitHub webhook secret: POST /github answers 503 until it is set"
                );
                None
            }
            Some(secrets) => {
                let product = deps.catalog.product_for(Marketplace::Github, None).ok_or_else(|| {
                    SetupError::Invalid(format!(
                        "`{}` is set but the config names no GitHub product: add `[marketplaces.github] product = \"...\"`",
                        delivery::SECRET_NAME
                    ))
                })?;
                let processor = Processor::new(Arc::clone(&deps.store), product, PROCESS_TIMEOUT);
                Some(GithubHook { secrets, processor })
            }
        };
        Ok(Self {
            github,
            store: deps.store,
            clock: Arc::new(SystemClock),
            record_timeout: RECORD_TIMEOUT,
        })
    }

    /// Uses `clock` for receive times and rule decisions (tests, simulations).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Overrides [`RECORD_TIMEOUT`] and [`PROCESS_TIMEOUT`].
    pub fn with_timeouts(mut self, record: Duration, process: Duration) -> Self {
        self.record_timeout = record;
        if let Some(hook) = &mut self.github {
            hook.processor =
                Processor::new(Arc::clone(&self.store), hook.processor.product(), process);
        }
        self
    }

    async fn github(&self, req: &Request) -> Result<Response, ApiError> {
        let hook = self.github.as_ref().ok_or(RequestError::NotConfigured)?;
        let body = body_bytes(req)?;
        // Authenticate before reading anything else. The legacy SHA-1 header
        // is only consulted so that a sha1-only delivery gets a clear answer.
        let signature_header = header_str(req, signature::HEADER)
            .or_else(|| header_str(req, signature::LEGACY_SHA1_HEADER));
        if let Err(e) = hook.secrets.verify(body, signature_header) {
            tracing::warn!(reason = %e, "GitHub delivery refused");
            return Err(RequestError::from(e).into());
        }
        check_content_type(req)?;
        let event = header_token(req, "x-github-event").ok_or(RequestError::MissingEvent)?;
        if event == delivery::PING_EVENT {
            tracing::info!("GitHub ping");
            return Ok(json_response(StatusCode::OK, &json!({ "status": "pong" })));
        }
        let delivery_id = match header_str(req, "x-github-delivery") {
            None => return Err(RequestError::MissingDeliveryId.into()),
            Some(_) => {
                header_token(req, "x-github-delivery").ok_or(RequestError::InvalidDeliveryId)?
            }
        };
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| {
            RequestError::InvalidJson(format!("line {} column {}", e.line(), e.column()))
        })?;

        let now = self.clock.now();
        let pending = delivery::pending_delivery(delivery_id, event, body, now);
        let recorded =
            tokio::time::timeout(self.record_timeout, self.store.record_delivery(&pending))
                .await
                .map_err(|_| {
                    RequestError::NotRecorded(format!("no answer within {:?}", self.record_timeout))
                })?
                .map_err(|e| RequestError::NotRecorded(e.to_string()))?;
        if recorded == Recorded::Done {
            tracing::info!(
                delivery = delivery_id,
                event,
                "GitHub redelivery of a processed delivery"
            );
            return Ok(json_response(
                StatusCode::OK,
                &json!({ "status": "duplicate", "delivery": delivery_id }),
            ));
        }

        match hook.processor.process(&pending, now).await {
            Ok(done) => {
                tracing::info!(
                    delivery = delivery_id,
                    event,
                    kind = done.event.kind.name(),
                    subscription = %done.event.subscription,
                    status = done.status(),
                    "GitHub delivery processed"
                );
                Ok(json_response(
                    StatusCode::OK,
                    &json!({
                        "status": done.status(),
                        "delivery": delivery_id,
                        "event": done.event.kind.name(),
                        "subscription": done.event.subscription.to_string(),
                        "note": done.note(),
                    }),
                ))
            }
            Err(e) => {
                tracing::error!(
                    delivery = delivery_id,
                    event,
                    error = %e,
                    transient = e.is_transient(),
                    "GitHub delivery left pending"
                );
                Err(e.into())
            }
        }
    }
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
            ("POST", "/github" | "/") => self.github(&req).await,
            ("POST", "/q2") => Err(ApiError::not_found("Q2 events are not served yet")),
            (_, "/github" | "/" | "/q2") => Err(ApiError::method_not_allowed()),
            _ => Err(ApiError::not_found("no such route")),
        }
    }
}

/// JSON or nothing: GitHub sends `application/json` when the listing says
/// so. A missing content type is let through to the JSON check.
fn check_content_type(req: &Request) -> Result<(), RequestError> {
    let Some(content_type) = header_str(req, http::header::CONTENT_TYPE.as_str()) else {
        return Ok(());
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Err(RequestError::FormEncoded)
    } else {
        let shown: String = essence.chars().take(MAX_HEADER_TOKEN).collect();
        Err(RequestError::UnsupportedMediaType(shown))
    }
}

/// A header holding an identifier: non-empty, short, visible ASCII only (it
/// becomes a store key and a log field).
fn header_token<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    header_str(req, name).map(str::trim).filter(|v| {
        !v.is_empty() && v.len() <= MAX_HEADER_TOKEN && v.bytes().all(|b| b.is_ascii_graphic())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Catalog;
    use crate::setup::{Secrets, Settings};
    use crate::store::sqlite::SqliteStore;

    fn deps(secrets: &[(&str, &str)], config: &str) -> (Deps, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        let deps = Deps {
            settings: Settings::from_lookup(|_| None),
            catalog: Arc::new(
                Catalog::parse(config, std::path::Path::new("tollgate.toml")).unwrap(),
            ),
            secrets: Arc::new(Secrets::from_pairs(secrets.iter().copied())),
            store: Arc::new(store),
        };
        (deps, dir)
    }

    const WITH_PRODUCT: &str = "[products.p.tiers.t]\n[marketplaces.github]\nproduct = \"p\"\n";
    const WITHOUT_PRODUCT: &str = "[products.p.tiers.t]\n";

    #[test]
    fn a_secret_without_a_github_product_is_a_cold_start_error() {
        let (d, _dir) = deps(&[(delivery::SECRET_NAME, "s")], WITHOUT_PRODUCT);
        let err = PurchaseWebhook::new(d)
            .err()
            .expect("must fail")
            .to_string();
        assert!(err.contains("marketplaces.github"), "{err}");
    }

    #[test]
    fn an_empty_secret_is_a_cold_start_error() {
        let (d, _dir) = deps(&[(delivery::SECRET_NAME, "")], WITH_PRODUCT);
        assert!(PurchaseWebhook::new(d).is_err());
    }

    #[tokio::test]
    async fn without_a_secret_the_github_route_says_it_is_not_configured() {
        let (d, _dir) = deps(&[], WITH_PRODUCT);
        let f = PurchaseWebhook::new(d).unwrap();
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
