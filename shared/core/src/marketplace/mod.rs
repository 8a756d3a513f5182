//! The pure part of each marketplace: signature checks and payload parsers,
//! bytes in, typed values or typed errors out. They run on every delivery
//! before anything is stored, so they are kept free of I/O and tested (and
//! mutation-tested, `make mutants`) here; the adapters in
//! `tollgate::marketplace` wire them to HTTP and the store, and map their
//! errors to HTTP answers.

pub mod gcp;
pub mod github;
pub mod q2;
pub mod signing;
