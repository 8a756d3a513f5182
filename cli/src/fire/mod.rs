//! `tollgate fire <marketplace> …`: plays the marketplace against a running
//! `tollgate dev` — the local counterpart of Q2's
//! `q2 marketplace invoke_subscribe / invoke_cancel / invoke_update`.
//!
//! `fire` never signs an event itself: it asks the marketplace's stand-in
//! (GitHub's, Google's, Q2's, all started by `tollgate dev`) to change the
//! customer's purchase, entitlement or subscription, and the stand-in sends
//! the signed event, as the marketplace would. So the marketplace's API
//! (which the sign-in pages and reconciliation read), the sign-in pages and
//! `/v1/check` always agree, and each step starts from what the customer
//! holds now.
//!
//! One module and one [`Marketplace`] variant per marketplace; [`check`]
//! asks entitlement-check what the customer may now do.

pub mod check;
pub mod gcp;
pub mod github;
pub mod q2;

/// entitlement-check's `/v1/check` under `make dev`.
pub const DEFAULT_CHECK_URL: &str = "http://127.0.0.1:9104/v1/check";

/// What went wrong in a `fire` step.
#[derive(Debug, thiserror::Error)]
pub enum FireError {
    /// A stand-in or function could not be reached or read.
    #[error("{0}")]
    Unreachable(String),
    /// The stand-in refused the step (the customer's state does not allow it).
    #[error("{0}")]
    Refused(String),
    /// The function answered, but did not apply the event.
    #[error("{0}")]
    NotApplied(String),
    /// Reading the configuration or the secrets failed.
    #[error("{0}")]
    Setup(String),
}

impl From<FireError> for String {
    fn from(e: FireError) -> Self {
        e.to_string()
    }
}

/// What to say when a function answered "stale" or "ignored": the store
/// already holds later events for this customer — usually an earlier run.
pub const RESET_HINT: &str = "Tollgate's store already holds later events for this customer (an earlier run today?): start over with `make dev-reset` (or `tollgate dev --reset`), or use another customer";

#[derive(Debug, clap::Subcommand)]
pub enum Marketplace {
    /// Play GitHub Marketplace through the GitHub stand-in: it changes the account's purchase and sends the signed marketplace_purchase webhook to purchase-webhook
    Github(github::Args),
    /// Play Google Cloud Marketplace through the Google stand-in: an order, the sign-up, plan changes, cancellations (signed Pub/Sub pushes to pubsub-push)
    #[command(subcommand)]
    Gcp(gcp::Step),
    /// Play Q2 through the Q2 stand-in: it changes the user's subscription and relays the signed event (subscribe, update, cancel) to purchase-webhook
    Q2(q2::Args),
}

pub async fn run(marketplace: Marketplace) -> Result<(), String> {
    match marketplace {
        Marketplace::Github(args) => github::run(args).await,
        Marketplace::Gcp(step) => gcp::run(step).await,
        Marketplace::Q2(args) => q2::run(args).await,
    }
}
