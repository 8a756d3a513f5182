//! Where subscription state lives.
//!
//! Role traits ([`Subscriptions`], [`Commits`], [`Deliveries`], [`SeatClaims`],
//! [`Tokens`], [`UserLinks`], [`Enrollments`], [`Inventory`]; [`Store`] is all
//! of them),
//! two implementations that pass one conformance suite
//! (`tests/src/conformance.rs`): DynamoDB in production ([`dynamo`]) and an
//! embedded SQLite file for `make dev` and fast tests ([`sqlite`]). What the two write and say alike (time format,
//! status names, documents, commit checks, error wording) is encoded once,
//! in `codec`, so they cannot drift apart.
//!
//! Every write that must be atomic is one store call: [`Commits::commit`]
//! writes the next state, the log entry, the delivery's dedupe mark and,
//! for an applied change, the notification [`Outbox`] entry together,
//! conditional on the version that was read.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::entitlement::SeatLimit;
use crate::model::{AppUser, CustomerKey, LogEntry, Marketplace, Subscription, SubscriptionKey};

mod codec;
pub mod dynamo;
mod outbox;
pub use outbox::{DeadLetter, EndpointProgress, Outbox, OutboxEntry};
#[cfg(feature = "embedded-store")]
pub mod sqlite;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The version read is no longer current: read again and retry.
    #[error("version conflict on subscription {0}")]
    Conflict(String),
    /// The delivery was already processed, or the token already exists.
    #[error("duplicate: {0}")]
    Duplicate(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// Throttling, timeouts, a busy database: safe to retry later.
    #[error("transient store failure: {0}")]
    Transient(String),
    /// Anything else (missing table, corrupt item): an operator must look.
    #[error("store failure: {0}")]
    Backend(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient(_) | StoreError::Conflict(_))
    }
}

/// Processing state of one marketplace delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Verified and recorded, not (yet successfully) processed.
    Pending,
    /// Processed; a redelivery is a no-op.
    Done,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 2] = [DeliveryStatus::Pending, DeliveryStatus::Done];

    /// The name both stores write (the same as its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Done => "done",
        }
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delivery status `{0}` (expected pending or done)")]
pub struct UnknownDeliveryStatus(pub String);

impl std::str::FromStr for DeliveryStatus {
    type Err = UnknownDeliveryStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownDeliveryStatus(s.to_owned()))
    }
}

/// A verified delivery, recorded before processing so that a failure leaves
/// something to replay (GitHub never retries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub marketplace: Marketplace,
    /// The marketplace's delivery id (`X-GitHub-Delivery`, Pub/Sub `messageId`, ...).
    pub id: String,
    /// What kind of delivery it is (`marketplace_purchase`, `pubsub`, `q2`), for replay.
    pub kind: String,
    pub status: DeliveryStatus,
    /// Hex SHA-256 of the raw body, to spot a redelivery that differs.
    pub body_sha256: String,
    /// The verified raw body, kept only while pending so replay can finish it.
    pub body: Option<Vec<u8>>,
    pub received_at: DateTime<Utc>,
    /// The dedupe record expires (TTL) after this.
    pub expires_at: DateTime<Utc>,
}

/// What [`Deliveries::record_delivery`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First time seen: process it.
    New,
    /// Seen before but never finished: process it again.
    Pending,
    /// Already processed: acknowledge and do nothing.
    Done,
}

/// Marks a delivery done as part of a [`Commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryMark {
    pub marketplace: Marketplace,
    pub id: String,
    pub expires_at: DateTime<Utc>,
}

/// One atomic write: all of it or none of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub subscription: SubscriptionKey,
    /// The version read (`0`: the subscription did not exist). The commit
    /// fails with [`StoreError::Conflict`] unless it is still current.
    pub expected_version: u64,
    /// The next state (its `version` is `expected_version + 1`); `None` for an
    /// event that is only logged (stale, ignored).
    pub state: Option<Subscription>,
    pub log: LogEntry,
    /// Dedupe mark; the commit fails with [`StoreError::Duplicate`] if the
    /// delivery is already done.
    pub delivery: Option<DeliveryMark>,
}

/// Result of a seat claim. `limit` is the limit the claim was checked
/// against (`None`: none), `used` the seats in use as the claim saw them,
/// its own included: exact without concurrent claims or releases on the
/// same subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatClaim {
    Granted {
        used: u32,
        limit: Option<u32>,
    },
    /// The user already held a seat (claims are idempotent per user).
    AlreadyHeld {
        used: u32,
        limit: Option<u32>,
    },
    LimitReached {
        used: u32,
        limit: u32,
    },
}

/// A single-use token with an expiry (OAuth `state`, sign-up JWT ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Namespace, e.g. `oauth_state`, `gcp_signup_jti`.
    pub kind: String,
    pub id: String,
    /// Opaque data returned when the token is taken.
    pub payload: String,
    pub expires_at: DateTime<Utc>,
}

// The store is split by role, so each function holds (and its IAM policy
// grants) only what it uses: entitlement-check reads subscriptions and
// manages seats but cannot commit events; oauth-callback handles tokens and
// user links but cannot read deliveries.

/// Reading subscription state and its event log.
#[async_trait]
pub trait Subscriptions: Send + Sync {
    /// The current state, with its count of seat holders; `None` if never
    /// stored.
    async fn get(&self, key: &SubscriptionKey) -> Result<Option<Subscription>, StoreError>;

    /// A subscription's event log, oldest first.
    async fn log(&self, key: &SubscriptionKey) -> Result<Vec<LogEntry>, StoreError>;

    /// Every subscription a customer holds (the entitlement hot path: one read).
    async fn customer_subscriptions(
        &self,
        customer: &CustomerKey,
    ) -> Result<Vec<Subscription>, StoreError>;
}

/// Applying events: the one atomic write of state, log entry and dedupe mark.
#[async_trait]
pub trait Commits: Send + Sync {
    /// Writes state + log entry + dedupe mark atomically, conditional on
    /// `expected_version`. On any error nothing is written. "Now", for the
    /// liveness of the delivery's dedupe mark, is the log entry's
    /// `recorded_at`.
    async fn commit(&self, commit: &Commit) -> Result<(), StoreError>;
}

/// Verified marketplace deliveries: dedupe records and the pending queue.
#[async_trait]
pub trait Deliveries: Send + Sync {
    /// Records a verified delivery as pending unless a live record exists
    /// (at `delivery.received_at`); says what it found.
    async fn record_delivery(&self, delivery: &Delivery) -> Result<Recorded, StoreError>;

    /// The delivery record, unless missing or expired at `now`.
    async fn delivery(
        &self,
        marketplace: Marketplace,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, StoreError>;

    /// Deliveries recorded but never finished, oldest first (for replay).
    async fn pending_deliveries(
        &self,
        marketplace: Marketplace,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError>;
}

/// Seat claims on per-unit subscriptions: one record per holder beside the
/// subscription's state, and the state's count of them kept in step.
#[async_trait]
pub trait SeatClaims: Send + Sync {
    /// Gives `user` a seat unless the seats `limit` allows are taken;
    /// atomic and idempotent per user. The limit is judged against the
    /// state as it is when the seat is written ([`SeatLimit::Purchased`]:
    /// the unit count of that state), never a copy the caller read, and no
    /// number of concurrent claims exceeds it. A holder keeps a seat when
    /// the limit drops below the count. [`StoreError::NotFound`] if the
    /// subscription is.
    async fn claim_seat(
        &self,
        key: &SubscriptionKey,
        user: &str,
        limit: SeatLimit,
    ) -> Result<SeatClaim, StoreError>;

    /// Frees `user`'s seat; `false` if the user held none.
    async fn release_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError>;

    /// Whether `user` holds a seat, as of now (not eventually consistent).
    async fn holds_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError>;

    /// Every holder, sorted, as of now.
    async fn seat_holders(&self, key: &SubscriptionKey) -> Result<Vec<String>, StoreError>;
}

/// Single-use tokens with an expiry (OAuth `state`, sign-up JWT ids).
#[async_trait]
pub trait Tokens: Send + Sync {
    /// Stores a single-use token; [`StoreError::Duplicate`] if one is still
    /// live at `now`.
    async fn put_token(&self, token: &Token, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// The payload of a live token, left in place; `None` if it never
    /// existed, was taken, or expired at `now`. Read strongly: a token whose
    /// put has returned is seen (who holds a claim decides who may apply).
    async fn peek_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;

    /// Takes (deletes and returns the payload of) a live token; `None` if it
    /// never existed, was taken, or expired. Two concurrent takes: one wins.
    async fn take_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;
}

/// One link from an app user to a paying customer, as the marketplace last
/// vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLink {
    pub customer: CustomerKey,
    /// When it was last written: the sign-in (or sign-up) that vouched for it.
    pub linked_at: DateTime<Utc>,
    /// From this instant on it grants nothing (reads judge it against the
    /// `now` they are given); DynamoDB's TTL, or the embedded store's sweep,
    /// removes it later.
    pub expires_at: DateTime<Utc>,
}

impl UserLink {
    /// A link written at `now` that lives for `ttl`.
    pub fn new(customer: CustomerKey, now: DateTime<Utc>, ttl: chrono::Duration) -> Self {
        Self {
            customer,
            linked_at: now,
            expires_at: now + ttl,
        }
    }

    /// Whether it still grants anything at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

/// Links between the vendor's app users and paying customers: written at
/// sign-in, each with an expiry, so a user the marketplace no longer
/// vouches for (who left the organization, or stopped signing in) loses
/// the customer's entitlement.
#[async_trait]
pub trait UserLinks: Send + Sync {
    /// Links `user` to `link.customer` until `link.expires_at`, replacing
    /// any earlier link to the same customer (so linking again renews it).
    /// The user's other links are left alone (a Google sign-up names one
    /// procurement account; the user may belong to others).
    async fn link_user(&self, user: &AppUser, link: &UserLink) -> Result<(), StoreError>;

    /// Makes `user`'s links to customers of `marketplace` exactly `links`
    /// (each for that marketplace, or nothing is written and the call fails),
    /// renewing those kept; links to other marketplaces are left alone. What
    /// a concurrent reader can see is never more than the old set or the
    /// new one: the links that go are removed before any new one is
    /// written. A failure part-way leaves a subset of the old set or of the
    /// new one. (GitHub sign-in: what GitHub lists now is the whole truth.)
    async fn replace_links(
        &self,
        user: &AppUser,
        marketplace: Marketplace,
        links: &[UserLink],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The user's links live at `now`, in key order (marketplace, then
    /// customer id).
    async fn user_links(
        &self,
        user: &AppUser,
        now: DateTime<Utc>,
    ) -> Result<Vec<UserLink>, StoreError>;

    /// Removes the link from `user` to `customer`; `true` if a link live
    /// at `now` was removed (an expired one is removed too, but granted
    /// nothing, so `false`).
    async fn unlink_user(
        &self,
        user: &AppUser,
        customer: &CustomerKey,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// A group of users counted against one cap. On Q2: the users of one
/// financial institution (`group`) holding one product.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pub marketplace: Marketplace,
    /// The product id of `tollgate.toml` (no `#`: it is part of a key).
    pub product: String,
    /// The marketplace's group, e.g. the financial institution.
    pub group: String,
}

impl GroupKey {
    pub fn new(
        marketplace: Marketplace,
        product: impl Into<String>,
        group: impl Into<String>,
    ) -> Self {
        Self {
            marketplace,
            product: product.into(),
            group: group.into(),
        }
    }
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.marketplace, self.product, self.group)
    }
}

/// A member's place in a group: which subscription holds it, since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub member: String,
    pub subscription: String,
    pub since: DateTime<Utc>,
}

/// What [`Enrollments::enroll`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrolled {
    /// The member now holds a place for the subscription.
    New,
    /// The member already held a place for this subscription (enrolling
    /// is idempotent per member and subscription).
    Already,
    /// The member holds a place for another subscription; nothing written.
    HeldBy(Enrollment),
    /// The group has `cap` members already; nothing written.
    Full { cap: u32 },
}

/// Places in capped groups: at most one subscription per member, at most
/// `cap` members per group (Q2: a product's users per institution). Every
/// method is atomic on its own; concurrent enrollments never exceed a cap.
#[async_trait]
pub trait Enrollments: Send + Sync {
    /// Gives `member` a place in `group` for `subscription` (at `now`)
    /// unless the member holds one already or the group has `cap` members
    /// (`None`: no cap).
    async fn enroll(
        &self,
        group: &GroupKey,
        member: &str,
        subscription: &str,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Enrolled, StoreError>;

    /// The member's place, if it holds one.
    async fn enrollment(
        &self,
        group: &GroupKey,
        member: &str,
    ) -> Result<Option<Enrollment>, StoreError>;

    /// Every place in the group, in member order.
    async fn enrollments(&self, group: &GroupKey) -> Result<Vec<Enrollment>, StoreError>;

    /// Hands `member`'s place from subscription `from` to `to` (at `now`),
    /// the group's count unchanged; `false` if it is not held for `from`.
    async fn transfer_enrollment(
        &self,
        group: &GroupKey,
        member: &str,
        from: &str,
        to: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Frees `member`'s place if it is held for `subscription`; `false`
    /// otherwise.
    async fn unenroll(
        &self,
        group: &GroupKey,
        member: &str,
        subscription: &str,
    ) -> Result<bool, StoreError>;
}

/// Walking the stored subscriptions of a marketplace, a page at a time:
/// what reconciliation reads to find the subscriptions a marketplace no
/// longer lists. On no request path (on DynamoDB it is a `Scan` of the
/// table, which grows with it), so only the scheduled reconciliation and
/// the CLI hold it.
#[async_trait]
pub trait Inventory: Send + Sync {
    /// One page of the keys of `marketplace`'s stored subscriptions, in no
    /// particular order; `cursor` is the previous page's `next`.
    async fn subscription_keys(
        &self,
        marketplace: Marketplace,
        cursor: Option<&str>,
    ) -> Result<KeyPage, StoreError>;
}

/// A page of [`Inventory::subscription_keys`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<SubscriptionKey>,
    /// Where the next page starts (opaque); `None` on the last page.
    pub next: Option<String>,
}

/// What applying an event needs: read the state, commit the next one. The
/// ingest pipeline holds this (plus [`Deliveries`]); it is a supertrait of
/// [`Store`] so a whole store can be handed over as one.
pub trait EventLedger: Subscriptions + Commits {}

impl<T: Subscriptions + Commits + ?Sized> EventLedger for T {}

/// Every role at once: what a backend implements and what `setup` opens.
/// Functions take the roles they use from it (trait upcasting), never the
/// whole store.
pub trait Store:
    EventLedger + Deliveries + SeatClaims + Tokens + UserLinks + Enrollments + Inventory
{
}

impl<T> Store for T where
    T: Subscriptions
        + Commits
        + Deliveries
        + SeatClaims
        + Tokens
        + UserLinks
        + Enrollments
        + Inventory
        + ?Sized
{
}

/// What a backend implements: every role of [`Store`] and the notification
/// [`Outbox`]. The outbox stays out of `Store` because only the sender holds
/// it (purchase-webhook, `tollgate notify`), so the test doubles that wrap
/// a `Store` need not forward it; its entries are written by
/// [`Commits::commit`] all the same.
pub trait Backend: Store + Outbox {}

impl<T: Store + Outbox + ?Sized> Backend for T {}

/// Hex SHA-256, used for delivery body hashes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// What a store failure means to a caller: transient failures are 503 so
/// marketplaces that retry (Pub/Sub) do; backend details stay in the logs.
impl From<StoreError> for crate::web::ApiError {
    fn from(e: StoreError) -> Self {
        let answer = match &e {
            StoreError::NotFound(what) => {
                crate::web::ApiError::not_found(format!("{what} not found"))
            }
            StoreError::Duplicate(what) => crate::web::ApiError::new(
                http::StatusCode::CONFLICT,
                "duplicate",
                format!("{what} exists"),
            ),
            // Transient failures are 503 so marketplaces that retry (Pub/Sub) do.
            StoreError::Conflict(_) | StoreError::Transient(_) => crate::web::ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "storage is busy; retry later",
            ),
            StoreError::Backend(_) => crate::web::ApiError::internal("storage failure"),
        };
        // The caller gets the short answer; the log gets the store call and
        // the backend's own error chain. Store messages name the call and
        // the subscription or delivery, never a token's id (an OAuth `state`
        // is a secret until used): each backend builds them that way.
        answer.caused_by(e)
    }
}

/// The role traits, imported anonymously: `use tollgate::store::prelude::*;`
/// brings every store method into scope (tests, tools) without naming each
/// role.
pub mod prelude {
    pub use super::{
        Commits as _, Deliveries as _, Enrollments as _, Outbox as _, SeatClaims as _,
        Subscriptions as _, Tokens as _, UserLinks as _,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_status_names_round_trip_and_match_serde() {
        for status in DeliveryStatus::ALL {
            assert_eq!(status.as_str().parse::<DeliveryStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).expect("serialize"),
                serde_json::Value::String(status.as_str().to_owned())
            );
        }
        assert_eq!(
            "Done".parse::<DeliveryStatus>(),
            Err(UnknownDeliveryStatus("Done".into()))
        );
    }

    #[test]
    fn store_errors_map_to_statuses() {
        use crate::web::ApiError;
        assert_eq!(
            ApiError::from(StoreError::Transient("x".into())).status,
            503
        );
        assert_eq!(ApiError::from(StoreError::NotFound("x".into())).status, 404);
        let internal = ApiError::from(StoreError::Backend("secret table name".into()));
        assert_eq!(internal.status, 500);
        assert!(
            !internal.message.contains("secret"),
            "backend details stay in logs"
        );
    }
}
