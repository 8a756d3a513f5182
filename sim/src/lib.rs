//! Local stand-ins for the marketplaces Tollgate talks to, for tests and
//! `make dev`: real HTTP servers on 127.0.0.1 whose routes and replies follow
//! the marketplaces' published descriptions, with state a test scripts.
//!
//! - [`github`]: github.com (OAuth authorize + code exchange) and
//!   api.github.com (`/user`, `/user/marketplace_purchases`,
//!   `/marketplace_listing/...`), per GitHub's OpenAPI description.
//! - [`gcp`]: Google's OAuth2 token endpoint, the OIDC and sign-up signing
//!   keys, the Partner Procurement API (per its discovery document) and
//!   Marketplace's Pub/Sub push notifications.
//! - [`q2`]: the subscription events the vendor's Q2 marketplace extension
//!   relays to Tollgate, signed (Q2 itself calls nothing of Tollgate's).

pub mod gcp;
pub mod github;
pub mod q2;
