//! `pubsub-push`: Google Cloud Marketplace Pub/Sub push endpoint (`POST /`).

use async_trait::async_trait;

use crate::setup::{Deps, SetupError};
use crate::web::{ApiError, Function, Request, Response};

use super::FromDeps;

pub struct PubsubPush {
    #[allow(dead_code)]
    deps: Deps,
}

impl FromDeps for PubsubPush {
    const NAME: &'static str = "pubsub-push";

    async fn from_deps(deps: Deps) -> Result<Self, SetupError> {
        Ok(Self { deps })
    }
}

#[async_trait]
impl Function for PubsubPush {
    async fn call(&self, req: Request) -> Result<Response, ApiError> {
        match (req.method().as_str(), req.uri().path()) {
            ("GET", "/healthz") => Ok(super::healthz(Self::NAME)),
            _ => Err(ApiError::not_found("no such route")),
        }
    }
}
