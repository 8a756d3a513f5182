//! GitHub Marketplace: signed `marketplace_purchase` webhooks (verification,
//! tolerant parsing, normalization, recording and processing of deliveries).
//! Contract with sources: `specs/github-marketplace.md`.

pub mod delivery;
pub mod signature;
pub mod webhook;
