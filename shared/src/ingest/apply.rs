//! Applying one resolved event: read, apply the rules, commit conditionally,
//! retry on conflict.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::MarketEvent;
use crate::rules::{self, Outcome};
use crate::store::{Commit, DeliveryMark, EventLedger, StoreError};

/// How long a delivery id is remembered for dedupe. Marketplaces redeliver
/// within days (Pub/Sub keeps messages 7 days); a month is comfortably more.
pub const DEDUPE_TTL: chrono::Duration = chrono::Duration::days(35);

/// Optimistic-concurrency retries before giving up with a transient error.
const MAX_ATTEMPTS: u32 = 64;

/// What happened to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Committed (applied, or only logged when stale or ignored). Boxed: the
    /// outcome carries a whole subscription and the other variant is empty.
    Committed(Box<Outcome>),
    /// The delivery was already processed; nothing changed.
    Duplicate,
}

/// Applies `event` to its subscription and commits state, log entry and the
/// delivery's dedupe mark in one conditional write. Concurrent deliveries for
/// the same subscription re-read and retry, so none is lost.
pub async fn ingest<S: EventLedger + ?Sized>(
    store: &S,
    event: &MarketEvent,
    now: DateTime<Utc>,
) -> Result<Ingested, StoreError> {
    let mark = DeliveryMark {
        marketplace: event.subscription.marketplace,
        id: event.id.clone(),
        expires_at: now + DEDUPE_TTL,
    };
    ingest_marked(store, event, Some(&mark), now).await
}

/// [`ingest`] with an explicit dedupe mark: `None` for all but the last of
/// several events one delivery resolved to (the last commit marks the
/// delivery done; re-applying the earlier ones is harmless).
pub async fn ingest_marked<S: EventLedger + ?Sized>(
    store: &S,
    event: &MarketEvent,
    mark: Option<&DeliveryMark>,
    now: DateTime<Utc>,
) -> Result<Ingested, StoreError> {
    for attempt in 0..MAX_ATTEMPTS {
        let current = store.get(&event.subscription).await?;
        let outcome = rules::apply(current.as_ref(), event, now);
        let commit = Commit {
            subscription: event.subscription.clone(),
            expected_version: current.as_ref().map_or(0, |c| c.version),
            state: outcome.next.clone(),
            log: outcome.log.clone(),
            delivery: mark.cloned(),
        };
        match store.commit(&commit).await {
            Ok(()) => return Ok(Ingested::Committed(Box::new(outcome))),
            Err(StoreError::Duplicate(_)) => return Ok(Ingested::Duplicate),
            Err(StoreError::Conflict(_)) => tokio::time::sleep(backoff(attempt)).await,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Transient(format!(
        "gave up on {} after {MAX_ATTEMPTS} version conflicts",
        event.subscription
    )))
}

/// Jittered exponential backoff, capped at 50 ms: contention on one
/// subscription is brief (a handful of deliveries at once).
fn backoff(attempt: u32) -> Duration {
    let cap_us = (1u64 << attempt.min(10)) * 50;
    let mut b = [0u8; 8];
    let jitter = match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b) % cap_us.max(1),
        Err(_) => cap_us / 2,
    };
    Duration::from_micros(jitter.min(50_000))
}
