//! GitHub Marketplace: the `X-Hub-Signature-256` check ([`signature`]) and
//! the tolerant `marketplace_purchase` parser ([`webhook`]).

pub mod signature;
pub mod webhook;
