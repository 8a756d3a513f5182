//! The Pub/Sub push envelope and the Marketplace notification in it: pure,
//! so they live in the core ([`tollgate_core::marketplace::gcp::notification`]);
//! re-exported here so this path keeps working. What an unreadable message
//! means is the adapter's (`super::adapter`: recorded and acknowledged).

pub use tollgate_core::marketplace::gcp::notification::*;
