//! Tollgate's pure domain, shared by every function, the CLI and the client
//! library: what a subscription is ([`model`]), how marketplace events move
//! it ([`rules`]), what a customer may use ([`entitlement`]), what the vendor
//! sells ([`config`]), the injected [`clock`], [`secret`] types and the
//! entitlement-check API's [`wire`] types.
//!
//! Nothing here performs I/O: no async runtime, no AWS SDK, no HTTP client,
//! no database. That keeps the rules testable in microseconds and lets the
//! client library link this crate without the server's weight.

pub mod clock;
pub mod config;
pub mod entitlement;
pub mod model;
pub mod rules;
pub mod secret;
pub mod wire;
