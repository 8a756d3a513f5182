//! HMAC-SHA256 and rotating secrets for the marketplaces that sign with a
//! shared secret (GitHub, Q2). Pure, so they live in the core
//! ([`tollgate_core::marketplace::signing`]); re-exported here so this path
//! keeps working. An empty secret is a cold-start error
//! (`SetupError::EmptySecret`, in `crate::settings`).

pub use tollgate_core::marketplace::signing::*;
