//! Google Cloud Marketplace: Pub/Sub push notifications on the ingest
//! pipeline ([`adapter`], authenticated by [`push_auth`], read by
//! [`notification`]), the Partner Procurement API ([`procurement`]) with
//! credentials from AWS ([`credentials`]), and the sign-up page's token
//! ([`signup_token`]). Google's signing keys are cached by [`keys`].

pub mod adapter;
pub mod credentials;
pub mod keys;
pub mod notification;
pub mod port;
pub mod procurement;
pub mod push_auth;
pub mod signup;
pub mod signup_token;
