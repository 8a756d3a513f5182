//! Tollgate's library: the normalized subscription model, the rules that
//! evolve it, entitlement decisions, storage and the marketplace adapters.
//! The Lambda binaries in `functions/` are wiring around this crate.

pub mod api;
pub mod clock;
pub mod config;
pub mod entitlement;
pub mod functions;
pub mod github;
pub mod http;
pub mod ingest;
pub mod model;
pub mod rules;
pub mod setup;
pub mod store;
