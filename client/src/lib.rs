//! Ask Tollgate's entitlement-check from a Rust app.
//!
//! - [`EntitlementClient`]: `check`, `customer`, `claim_seat`, `release_seat`,
//!   `seats` over HTTP, with typed answers and errors.
//! - [`RequireEntitlement`]: a `tower` layer that refuses a request (402/403
//!   with the reason as JSON) unless the customer is entitled, and hands the
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

mod client;
mod layer;
mod types;

pub use client::{ClientError, EntitlementClient, SeatClaim};
pub use layer::{Entitled, RequireEntitlement, RequireEntitlementService, Subject, refusal_status};
pub use types::{
    Awaiting, CheckRequest, CustomerKey, CustomerRef, CustomerView, Decision, Marketplace,
    PendingChange, Reason, SeatClaimed, SeatList, SeatReleased, Seats, Status, SubscriptionKey,
    SubscriptionView,
};
