//! What a reconciliation reads, built from the shared dependencies: the
//! same clients, credentials, product mapping and replay pipeline the
//! functions use. `tollgate reconcile` and purchase-webhook's schedule
//! both start here.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::marketplace::github::app_jwt::AppJwtSigner;
use crate::marketplace::github::client::GithubClient;
use crate::model::Marketplace;
use crate::reconcile::gcp::GcpSource;
use crate::reconcile::github::GithubSource;
use crate::reconcile::{Source, Stores, Target};
use crate::setup::{Deps, SetupError};

/// The store roles a reconciliation uses, from the whole store.
pub fn reconcile_stores(deps: &Deps) -> Stores {
    Stores {
        ledger: deps.store.clone(),
        inventory: deps.store.clone(),
        deliveries: deps.store.clone(),
    }
}

/// The marketplaces to reconcile: `only`, or every one this deployment
/// sells through (GitHub when the config names a GitHub product, Google
/// when `TOLLGATE_GCP_PROVIDER_ID` is set). One configured but unreadable
/// (no app key, no credentials) is a target whose source is the reason, so
/// the run reports it rather than skipping it. Q2 has no listing to read.
pub fn reconcile_targets(
    deps: &Deps,
    only: Option<Marketplace>,
    clock: Arc<dyn Clock>,
    process_timeout: Duration,
) -> Result<Vec<Target>, SetupError> {
    let wanted = |m: Marketplace, configured: bool| only.map_or(configured, |o| o == m);
    let github_product = deps.catalog.product_for(Marketplace::Github, None);
    let mut targets = Vec::new();
    if only == Some(Marketplace::Q2) {
        return Err(SetupError::Invalid(
            "q2 cannot be reconciled: Q2 offers no listing of subscriptions to compare with".into(),
        ));
    }
    if wanted(Marketplace::Github, github_product.is_some()) {
        let source = match github_product {
            None => Err(
                "the config names no GitHub product: add `[marketplaces.github] product = \"...\"`"
                    .to_owned(),
            ),
            Some(product) => github_source(deps, product),
        };
        // Pending deliveries are replayed even when the listing cannot be read.
        let replayer = super::replayer(Marketplace::Github, deps, process_timeout).ok();
        targets.push(Target {
            marketplace: Marketplace::Github,
            source,
            replayer,
        });
    }
    if wanted(Marketplace::Gcp, deps.settings.gcp_provider_id.is_some()) {
        let source = match deps.settings.gcp_provider_id {
            None => Err("TOLLGATE_GCP_PROVIDER_ID is not set".to_owned()),
            Some(_) => super::gcp_procurement(deps, clock)
                .map(|p| Source::Gcp(GcpSource::new(p, Arc::clone(&deps.catalog))))
                .map_err(|e| e.to_string()),
        };
        targets.push(Target {
            marketplace: Marketplace::Gcp,
            source,
            // Pub/Sub redelivers: nothing of Google's is left to replay.
            replayer: None,
        });
    }
    Ok(targets)
}

fn github_source(deps: &Deps, product: &str) -> Result<Source, String> {
    let app = AppJwtSigner::from_secrets(&deps.secrets)
        .map_err(|e| format!("cannot authenticate as the GitHub App: {e}"))?;
    let client = GithubClient::new(&deps.settings).map_err(|e| e.to_string())?;
    Ok(Source::Github(GithubSource::new(client, app, product)))
}
