//! Reading a Q2 subscription event: pure, so it lives in the core
//! ([`tollgate_core::marketplace::q2::event`]); re-exported here so this
//! path keeps working. How an `EventError` is answered is the adapter's
//! (`super::adapter`).

pub use tollgate_core::marketplace::q2::event::*;
