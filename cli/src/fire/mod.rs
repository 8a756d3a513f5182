//! `tollgate fire <marketplace> …`: sends a realistic, correctly signed
//! marketplace event to a running function (`tollgate dev`), the way the
//! marketplace would — the local counterpart of Q2's
//! `q2 marketplace invoke_subscribe / invoke_cancel / invoke_update`.
//!
//! One module and one [`Marketplace`] variant per marketplace.

pub mod gcp;
pub mod github;
pub mod q2;

#[derive(Debug, clap::Subcommand)]
pub enum Marketplace {
    /// Send a signed GitHub Marketplace `marketplace_purchase` delivery to purchase-webhook
    Github(github::Args),
    /// Play Google Cloud Marketplace through the Google stand-in: an order, the sign-up, plan changes, cancellations (signed Pub/Sub pushes to pubsub-push)
    #[command(subcommand)]
    Gcp(gcp::Step),
    /// Send a signed Q2 subscription event (subscribe, update, cancel) to purchase-webhook, as the Q2 extension relays it
    Q2(q2::Args),
}

pub async fn run(marketplace: Marketplace) -> Result<(), String> {
    match marketplace {
        Marketplace::Github(args) => github::run(args).await,
        Marketplace::Gcp(step) => gcp::run(step).await,
        Marketplace::Q2(args) => q2::run(args).await,
    }
}
