//! Ask Tollgate's entitlement-check from a Rust app.
//!
//! - [`EntitlementClient`]: `check`, `customer`, `claim_seat`, `release_seat`,
//!   `seats`, `remove_link` over HTTP, with typed answers and errors; with
//!   [`EntitlementClient::with_tokens`], `decide` answers from signed
//!   entitlement tokens verified offline ([`token`]) until they expire.
//! - [`notify::verify_notification`]: checks a change notification's
//!   Standard Webhooks signature and reads it.
//! - [`RequireEntitlement`]: a `tower` layer that refuses a request (402/403
//!   with the reason as JSON; 500 when its product or feature is not defined
//!   in `tollgate.toml`) unless the customer is entitled, and hands the
//!   [`Decision`] to the handler — read it with the [`Entitled`] axum
//!   extractor. The counterpart of Q2's `Q2MarketplaceMixin`.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tollgate_client::{EntitlementClient, Entitled, RequireEntitlement, Subject};
//!
//! # fn build() -> Result<Router, tollgate_client::ClientError> {
//! let client = EntitlementClient::new("https://tollgate.example.com", Some("tgk_..."))?;
//! let app = Router::new()
//!     .route("/reports", get(|Entitled(d): Entitled| async move { format!("tier {:?}", d.tier) }))
//!     .layer(
//!         RequireEntitlement::new(client, "acme-ci", Subject::from_headers("x-org", "x-user"))
//!             .feature("reports")
//!             .claim_seat(),
//!     );
//! # Ok(app)
//! # }
//! ```
//!
//! The request and answer types are `tollgate-core`'s wire types, the very
//! ones the entitlement-check handler reads and writes, re-exported here
//! under this crate's names ([`CustomerRef`], [`PendingChange`], [`Seats`]).

mod client;
mod layer;
pub mod notify;
pub mod token;

pub use client::{ClientError, EntitlementClient, SeatClaim};
pub use layer::{Entitled, RequireEntitlement, RequireEntitlementService, Subject, refusal_status};
pub use token::{EntitlementClaims, TokenAnswer, TokenError, TokenOptions, TokenVerifier};
/// A change the marketplace announced for later.
pub use tollgate_core::wire::PendingChangeView as PendingChange;
/// Seat usage; `limit: None` means the tier does not count seats.
pub use tollgate_core::wire::SeatsView as Seats;
/// Whose entitlement to check: a paying marketplace customer, or an app user
/// linked to customers at OAuth/sign-up.
pub use tollgate_core::wire::Subject as CustomerRef;
pub use tollgate_core::wire::{
    AppUser, Awaiting, BillingCycle, CheckRequest, CustomerKey, CustomerView, Decision,
    Marketplace, PendingChangeKind, Reason, SeatClaimed, SeatList, SeatReleased, SeatRequest,
    Status, SubscriptionKey, SubscriptionView, UnknownMarketplace,
};
