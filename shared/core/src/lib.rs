//! Tollgate's pure domain, shared by every function, the CLI and the client
//! library: what a subscription is ([`model`]), how marketplace events move
//! it ([`rules`]), what a customer may use ([`entitlement`]), what the vendor
//! sells ([`config`]), the injected [`clock`], [`secret`] types and the
//! entitlement-check API's [`wire`] types.
//!
//! Nothing here performs I/O: no async runtime, no AWS SDK, no HTTP client,
//! no database. That keeps the rules testable in microseconds and lets the
//! client library link this crate without the server's weight.

// Panic policy (README "Security" → "Panic policy"): release builds abort on
// panic, so no panic may be reachable from input. Outside tests this crate
// has no panic site: slices are read with `get`, strings split at found
// boundaries, `Option`s and `Result`s handled. (`make test` runs clippy with
// `-D warnings`.)
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::indexing_slicing,
        clippy::string_slice
    )
)]

pub mod clock;
pub mod config;
pub mod entitlement;
pub mod json_error;
pub mod marketplace;
pub mod model;
pub mod notify;
pub mod reconcile;
pub mod rules;
pub mod secret;
pub mod token;
pub mod wire;
