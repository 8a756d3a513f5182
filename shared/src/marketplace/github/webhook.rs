//! The `marketplace_purchase` payload parser and normalizer: pure, so it
//! lives in the core ([`tollgate_core::marketplace::github::webhook`]);
//! re-exported here so this path keeps working. How a `ParseError` is
//! answered is the adapter's (`super::adapter`).

pub use tollgate_core::marketplace::github::webhook::*;
