//! Finishing deliveries that were recorded but never processed, for every
//! marketplace whose [`Durability`] is record-first.
//!
//! A record-first marketplace (GitHub) never retries, so its pipeline keeps
//! every authenticated delivery, raw body included, as pending until the
//! commit that applies it marks it done. `tollgate replay` runs each pending
//! delivery through [`Pipeline::process`], the very code the function runs.
//! No authentication: the body was authenticated when it was recorded. A
//! delivery processed in the meantime is a no-op (the commit's dedupe mark).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::model::Marketplace;
use crate::store::{Deliveries, Delivery, StoreError};

use super::adapter::{Adapter, Durability};
use super::pipeline::{Failure, Pipeline, Processed};

/// A pipeline seen as "something that can finish a pending delivery", so the
/// replay loop (and the CLI) need not know which marketplace it is.
#[async_trait]
pub trait Replayer: Send + Sync {
    fn marketplace(&self) -> Marketplace;
    fn durability(&self) -> Durability;
    async fn finish(
        &self,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<Processed, ReplayError>;
}

/// Why a pending delivery is still pending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReplayError {
    pub message: String,
    pub transient: bool,
}

#[async_trait]
impl<A: Adapter> Replayer for Pipeline<A> {
    fn marketplace(&self) -> Marketplace {
        A::MARKETPLACE
    }

    fn durability(&self) -> Durability {
        A::DURABILITY
    }

    async fn finish(
        &self,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<Processed, ReplayError> {
        self.process(delivery, now)
            .await
            .map_err(|e: Failure<A::ResolveError>| ReplayError {
                transient: e.is_transient(),
                message: e.to_string(),
            })
    }
}

/// One pending delivery and what the replay made of it.
#[derive(Debug)]
pub struct Replayed<'a> {
    pub delivery: &'a Delivery,
    pub result: Result<Processed, ReplayError>,
}

/// What a replay run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ReplaySummary {
    /// Processed now (applied, stale, ignored or already done).
    pub done: usize,
    /// Still pending.
    pub failed: usize,
}

/// Why a replay could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ReplayRunError {
    #[error("{marketplace} deliveries are not replayed: {reason}")]
    NotReplayable {
        marketplace: Marketplace,
        reason: &'static str,
    },
    #[error("cannot list pending deliveries: {0}")]
    List(#[from] StoreError),
}

/// Processes every pending delivery of `replayer`'s marketplace, oldest
/// first, reporting each one to `progress` as it finishes.
pub async fn replay_pending(
    replayer: &dyn Replayer,
    deliveries: &dyn Deliveries,
    clock: &dyn Clock,
    mut progress: impl FnMut(&Replayed<'_>),
) -> Result<ReplaySummary, ReplayRunError> {
    let marketplace = replayer.marketplace();
    match replayer.durability() {
        Durability::RecordFirst => {}
        Durability::Redelivered => {
            return Err(ReplayRunError::NotReplayable {
                marketplace,
                reason: "the marketplace redelivers a message until it is acknowledged",
            });
        }
        Durability::Synchronous => {
            return Err(ReplayRunError::NotReplayable {
                marketplace,
                reason: "each event was answered synchronously; the marketplace acted on that answer",
            });
        }
    }
    let pending = deliveries
        .pending_deliveries(marketplace, clock.now())
        .await?;
    let mut summary = ReplaySummary::default();
    for delivery in &pending {
        let result = replayer.finish(delivery, clock.now()).await;
        if result.is_ok() {
            summary.done += 1;
        } else {
            summary.failed += 1;
        }
        progress(&Replayed { delivery, result });
    }
    Ok(summary)
}
