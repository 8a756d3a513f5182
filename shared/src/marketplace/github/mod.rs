//! GitHub Marketplace: signed `marketplace_purchase` webhooks
//! ([`signature`], [`webhook`], [`delivery`]) and the calls back to GitHub
//! (OAuth, REST client, app JWT). Contract with sources:
//! `specs/github-marketplace.md`.

pub mod app_jwt;
pub mod client;
pub mod delivery;
pub mod oauth;
pub mod signature;
pub mod webhook;
