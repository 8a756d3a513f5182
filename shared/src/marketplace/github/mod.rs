//! GitHub Marketplace: signed `marketplace_purchase` webhooks on the ingest
//! pipeline ([`adapter`], with [`signature`] and the tolerant payload parser
//! [`webhook`]) and the calls back to GitHub ([`oauth`] sign-in with its signed [`oauth_state`], the REST
//! [`client`], the [`app_jwt`] for listing calls). GitHub's own references:
//! <https://docs.github.com/en/apps/github-marketplace>.

pub mod adapter;
pub mod app_jwt;
pub mod client;
pub mod oauth;
pub mod oauth_state;
pub mod signature;
pub mod webhook;

pub use adapter::{GithubAdapter, PREVIOUS_SECRET_NAME, SECRET_NAME, WebhookSecrets};
