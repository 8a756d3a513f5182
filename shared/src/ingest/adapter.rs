//! The seam between the pipeline and a marketplace.
//!
//! A marketplace plugs into the pipeline by implementing [`Adapter`]: how a
//! request is authenticated and what its delivery id is, what a recorded
//! delivery means (asynchronously: Google must fetch the entitlement before
//! it knows), how its deliveries survive failures ([`Durability`]), what has
//! to be done at the marketplace after a commit ([`Adapter::follow_up`]), and
//! how the marketplace wants to be answered ([`Adapter::reply`]). Rules,
//! store and the HTTP layer never change for a new marketplace.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use http::HeaderMap;

use crate::model::{MarketEvent, Marketplace};
use crate::store::Delivery;
use crate::web::{ApiError, Response};

use super::pipeline::{Handled, Processed};

/// How a marketplace's deliveries survive a failure on our side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The marketplace never retries (GitHub). Every authenticated delivery
    /// is recorded with its raw body before it is resolved; if anything after
    /// that fails it stays pending and `tollgate replay` finishes it.
    RecordFirst,
    /// The marketplace redelivers until it gets a 2xx (Pub/Sub push). A
    /// transient failure is answered 503 so it comes again; a permanent one
    /// is acknowledged once recorded, or it would come back forever.
    Redelivered,
    /// The reply is the outcome (Q2): the marketplace acts on the success or
    /// failure it is answered with, so nothing is left to finish later.
    Synchronous,
}

impl Durability {
    /// Whether `tollgate replay` may finish this marketplace's pending
    /// deliveries. Only where the marketplace will not: redelivered messages
    /// come back by themselves, and a synchronous answer cannot be changed
    /// after it was given.
    pub fn replayable(self) -> bool {
        self == Durability::RecordFirst
    }
}

/// What authentication let through.
#[derive(Debug)]
pub enum Admission {
    /// An authentic delivery, to be recorded and processed.
    Deliver {
        /// The marketplace's id for this delivery: the dedupe key.
        id: String,
        /// What kind of delivery it is (e.g. GitHub's `X-GitHub-Event`),
        /// kept with the record so a replay resolves it the same way.
        kind: String,
    },
    /// An authentic request answered at once and never recorded (GitHub's
    /// `ping` when a hook is created).
    Answer(Response),
}

/// What a delivery resolved to.
#[derive(Debug, Clone)]
pub struct Resolution<C> {
    /// Applied in order; never empty.
    pub events: Vec<MarketEvent>,
    pub context: C,
}

impl<C> Resolution<C> {
    pub fn one(event: MarketEvent, context: C) -> Self {
        Self {
            events: vec![event],
            context,
        }
    }
}

/// A follow-up that failed. `transient`: worth trying again unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("follow-up at the marketplace failed: {message}")]
pub struct FollowUpError {
    pub message: String,
    pub transient: bool,
}

/// Why a recorded delivery could not be turned into an event.
pub trait ResolveFailure: std::error::Error + Send + Sync + 'static {
    /// Worth trying again unchanged (the marketplace's API was down, ...),
    /// as opposed to a payload that will never be readable.
    fn is_transient(&self) -> bool;
}

/// One marketplace, as the pipeline sees it.
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    const MARKETPLACE: Marketplace;
    const DURABILITY: Durability;
    /// Whether the same content under another delivery id is a replay
    /// (claimed by digest, see [`Adapter::content_digest`]). Off only for a
    /// marketplace whose delivery ids already name the content, where a
    /// repeat under a new id is by construction a new request (Q2).
    const CONTENT_CLAIMS: bool = true;

    /// Why a request was refused before anything was stored. Each adapter
    /// maps its own refusals to HTTP answers (`impl From<_> for ApiError`
    /// in its own module).
    type Refusal: std::error::Error + Into<ApiError> + Send + Sync + 'static;
    /// Why a recorded delivery could not be resolved.
    type ResolveError: ResolveFailure;
    /// What resolving learned beyond the events, for the follow-ups (Google:
    /// the fresh entitlement and account). `()` when there is nothing.
    type Context: Send + Sync + 'static;

    /// Authenticates a request from its whole header map and exact raw
    /// body, before anything else about it is read, and names the delivery.
    /// Nothing may be stored or logged in detail before this succeeds.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Admission, Self::Refusal>;

    /// The digest of what a delivery *says*, for content-level dedupe: the
    /// same digest under another delivery id is a replay, a known id with
    /// another digest is refused. The default hashes the whole body; a
    /// marketplace whose envelope changes between redeliveries of the same
    /// message (Pub/Sub's `deliveryAttempt`) hashes only the message.
    fn content_digest(&self, body: &[u8]) -> String {
        crate::store::sha256_hex(body)
    }

    /// What a recorded delivery means: usually one event, several when one
    /// message touches several subscriptions (Google's `ACCOUNT_DELETED`).
    /// Called for fresh deliveries and by `tollgate replay` alike, from the
    /// recorded body only.
    async fn resolve(
        &self,
        delivery: &Delivery,
    ) -> Result<Resolution<Self::Context>, Self::ResolveError>;

    /// Carries out what has to happen at the marketplace after the commit
    /// (Google's Procurement approvals), from the rules' actions and the
    /// resolved context. Must be idempotent: a redelivered message runs it
    /// again (for [`Durability::Redelivered`] even when the delivery was
    /// already applied, so a failed approval is retried by redelivery).
    async fn follow_up(
        &self,
        context: &Self::Context,
        processed: &Processed,
    ) -> Result<(), FollowUpError>;

    /// The answer to the marketplace. The default (JSON status, or the
    /// failure as an API error) suits marketplaces that only read the HTTP
    /// status; Q2 answers success or failure with its own error codes.
    fn reply(
        &self,
        delivery_id: &str,
        handled: Handled<'_, Self::ResolveError>,
    ) -> Result<Response, ApiError> {
        super::pipeline::default_reply(Self::DURABILITY, delivery_id, handled)
    }

    /// The answer to a delivery that was already processed when it came
    /// again (`delivery`: as received now, body included). The default is
    /// [`Adapter::reply`] with [`Handled::AlreadyDone`]; a marketplace that
    /// acts on the answer (Q2) must hear the first answer again, and reads
    /// it back from what was committed.
    async fn reply_to_redelivery(&self, delivery: &Delivery) -> Result<Response, ApiError> {
        self.reply(&delivery.id, Handled::AlreadyDone)
    }
}
