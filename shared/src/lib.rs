//! Tollgate's library: the normalized subscription model, the rules that
//! evolve it, entitlement decisions, storage and the marketplace adapters.
//! The Lambda binaries in `functions/` are wiring around this crate.

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

pub mod api;
pub mod functions;
pub mod https;
pub mod ingest;
pub mod marketplace;
pub mod notify;
pub mod outbound;
pub mod reconcile;
pub mod settings;
pub mod setup;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod web;

// The pure domain lives in `tollgate-core`; re-exported so every crate
// names one path for it.
pub use tollgate_core::{clock, config, entitlement, model, rules, secret};
