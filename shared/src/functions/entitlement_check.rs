//! `entitlement-check`: The API the vendor's apps call: entitlement checks and seats.

use async_trait::async_trait;

use crate::http::{ApiError, Function, Request, Response};
use crate::setup::{Deps, SetupError};

use super::FromDeps;

pub struct EntitlementCheck {
    #[allow(dead_code)]
    deps: Deps,
}

impl FromDeps for EntitlementCheck {
    const NAME: &'static str = "entitlement-check";

    async fn from_deps(deps: Deps) -> Result<Self, SetupError> {
        Ok(Self { deps })
    }
}

#[async_trait]
impl Function for EntitlementCheck {
    async fn call(&self, req: Request) -> Result<Response, ApiError> {
        match (req.method().as_str(), req.uri().path()) {
            ("GET", "/healthz") => Ok(super::healthz(Self::NAME)),
            _ => Err(ApiError::not_found("no such route")),
        }
    }
}
