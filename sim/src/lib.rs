//! Local stand-ins for the marketplaces Tollgate talks to, for tests and
//! `make dev`: real HTTP servers on 127.0.0.1 whose routes and replies follow
//! the marketplaces' published descriptions, with state a test scripts.
//!
//! - [`github`]: github.com (OAuth authorize + code exchange) and
//!   api.github.com (`/user`, `/user/marketplace_purchases`,
//!   `/marketplace_listing/...`), per GitHub's OpenAPI description; and the
//!   marketplace itself ([`github::control`]): it changes a purchase and
//!   delivers the signed `marketplace_purchase` webhook.
//! - [`gcp`]: Google's OAuth2 token endpoint, the OIDC and sign-up signing
//!   keys, the Partner Procurement API (per its discovery document) and
//!   Marketplace's Pub/Sub push notifications.
//! - [`q2`]: the subscription events the vendor's Q2 marketplace extension
//!   relays to Tollgate, signed (Q2 itself calls nothing of Tollgate's),
//!   and a stand-in for Q2's marketplace and that extension
//!   ([`q2::stand_in`]) which holds the subscriptions and relays them.

pub mod control_client;
pub mod gcp;
pub mod github;
pub mod q2;
