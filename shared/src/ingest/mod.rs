//! The ingest pipeline: how an authenticated marketplace delivery becomes
//! committed subscription state.
//!
//! ```text
//! request ─► Adapter::authenticate (headers + raw body) ─► Admission
//!         ─► Deliveries::record_delivery (pending, raw body kept)   dedupe
//!         ─► Adapter::resolve ─► MarketEvent                         (async: may call the marketplace)
//!         ─► ingest: rules::apply + one conditional commit of
//!            state + log entry + dedupe mark                         atomic, retried on conflict
//!         ─► Adapter::follow_up (actions at the marketplace)
//!         ─► Adapter::reply
//! ```
//!
//! - [`adapter`]: the seam a marketplace implements, and its [`Durability`].
//! - [`pipeline`]: the steps above, their time bounds, failures by durability.
//! - [`apply`]: read → rules → conditional commit, retried on version conflicts.
//! - [`replay`]: finishing deliveries left pending, for any record-first marketplace.

pub mod adapter;
pub mod apply;
pub mod pipeline;
pub mod replay;
#[cfg(test)]
mod tests;

pub use adapter::{Adapter, Admission, Durability, FollowUpError, Resolution, ResolveFailure};
pub use apply::{DEDUPE_TTL, Ingested, ingest};
pub use pipeline::{Failure, Handled, Pipeline, Processed, ProcessedStatus, pending_delivery};
