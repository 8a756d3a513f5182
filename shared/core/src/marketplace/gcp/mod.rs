//! Google Cloud Marketplace: the Pub/Sub push envelope and the Marketplace
//! notification inside it ([`notification`]).

pub mod notification;
