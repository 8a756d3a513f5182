//! Tollgate's library: the normalized subscription model, the rules that
//! evolve it, entitlement decisions, storage and the marketplace adapters.
//! The Lambda binaries in `functions/` are wiring around this crate.

pub mod api;
pub mod functions;
pub mod ingest;
pub mod marketplace;
pub mod settings;
pub mod setup;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod web;

// The pure domain lives in `tollgate-core`; re-exported so every crate
// names one path for it.
pub use tollgate_core::{clock, config, entitlement, model, rules, secret};
