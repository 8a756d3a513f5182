//! `tollgate fire <marketplace> …`: sends a realistic, correctly signed
//! marketplace event to a running function (`tollgate dev`), the way the
//! marketplace would — the local counterpart of Q2's
//! `q2 marketplace invoke_subscribe / invoke_cancel / invoke_update`.
//!
//! One module and one [`Marketplace`] variant per marketplace.

pub mod github;

#[derive(Debug, clap::Subcommand)]
pub enum Marketplace {
    /// Send a signed GitHub Marketplace `marketplace_purchase` delivery to purchase-webhook
    Github(github::Args),
}

pub async fn run(marketplace: Marketplace) -> Result<(), String> {
    match marketplace {
        Marketplace::Github(args) => github::run(args).await,
    }
}
