//! `purchase-webhook`: GitHub Marketplace webhooks (`POST /github`) and Q2 events (`POST /q2`).

use async_trait::async_trait;

use crate::http::{ApiError, Function, Request, Response};
use crate::setup::{Deps, SetupError};

use super::FromDeps;

pub struct PurchaseWebhook {
    #[allow(dead_code)]
    deps: Deps,
}

impl FromDeps for PurchaseWebhook {
    const NAME: &'static str = "purchase-webhook";

    async fn from_deps(deps: Deps) -> Result<Self, SetupError> {
        Ok(Self { deps })
    }
}

#[async_trait]
impl Function for PurchaseWebhook {
    async fn call(&self, req: Request) -> Result<Response, ApiError> {
        match (req.method().as_str(), req.uri().path()) {
            ("GET", "/healthz") => Ok(super::healthz(Self::NAME)),
            _ => Err(ApiError::not_found("no such route")),
        }
    }
}
