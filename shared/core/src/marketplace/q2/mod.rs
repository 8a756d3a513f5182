//! Q2: the `Tollgate-Signature` check over `timestamp.body` ([`signature`])
//! and the tolerant subscription-event reader ([`event`]).

pub mod event;
pub mod signature;
