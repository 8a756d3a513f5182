//! The marketplaces, each an adapter on the one ingest pipeline
//! ([`crate::ingest`]): how its requests are authenticated, what a delivery
//! means as a [`crate::model::MarketEvent`], what must be done after a
//! commit, and how the marketplace wants to be answered.

pub mod gcp;
pub mod github;
pub mod q2;
pub mod signing;
