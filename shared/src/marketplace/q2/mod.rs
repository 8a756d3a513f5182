//! Q2's banking marketplace: subscription events relayed by the vendor's
//! Q2 marketplace extension (`subscribe`, `update`, `cancel` forward the
//! SDK's `SubscriptionEvent`), signed ([`signature`]), read tolerantly
//! ([`event`]), decided by pure rules ([`decide`]) and answered in Q2's
//! success/failure shape with its error codes ([`answer`]). The
//! [`adapter`] puts them on the ingest pipeline as its synchronous case.
//!
//! A subscription is Q2's `subscription_id`; who holds it is one user of
//! one financial institution (customer id `<fi_name>:<user_id>`); the
//! product is the one whose `products.<p>.q2.product_identifier` the event
//! names, and each extension it bundles is a feature apps check.

pub mod adapter;
pub mod answer;
pub mod decide;
pub mod event;
pub mod signature;

pub use adapter::{PREVIOUS_SECRET_NAME, Q2Adapter, SECRET_NAME, SigningSecrets, with_request_id};
pub use answer::{Answer, ErrorCode};
