//! The notification outbox: every commit that applies a change writes an
//! [`OutboxEntry`] in the same transaction as the state and the log entry
//! (derived from them by [`OutboxEntry::of_commit`]), so a crash between
//! the commit and the send loses no notification. A sender
//! (the `notify` module) drains it: sends, reschedules with backoff, and turns
//! an endpoint that keeps failing into a [`DeadLetter`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Commit, StoreError};
use crate::model::{Disposition, LogEntry, Subscription};

/// One applied change waiting to be sent to every endpoint that wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The Standard Webhooks message id (`webhook-id`): the same on every
    /// attempt, to every endpoint.
    pub id: String,
    /// The log entry of the change.
    pub log: LogEntry,
    /// The state the change committed.
    pub state: Subscription,
    /// When the drain should look at it again (when it was committed, at
    /// first; later the earliest retry of an endpoint, or the end of a
    /// sender's lease).
    pub due_at: DateTime<Utc>,
    /// Bumped by every write after the first; updates are conditional on it.
    pub version: u64,
    /// Per endpoint name: what has happened so far. An endpoint not listed
    /// has not been tried.
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointProgress>,
}

/// One endpoint's share of an [`OutboxEntry`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointProgress {
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<DateTime<Utc>>,
    /// Delivered (2xx), dead-lettered, or not wanted: nothing more to do.
    #[serde(default)]
    pub finished: bool,
    /// The last failure, as the sender describes it (a status or a
    /// transport error kind; never a body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl OutboxEntry {
    /// The entry a commit writes: `Some` for a commit that applies a change
    /// (a next state and an `applied` log entry), `None` for one that only
    /// logs.
    pub fn of_commit(commit: &Commit) -> Option<Self> {
        let state = commit.state.as_ref()?;
        if commit.log.disposition != Disposition::Applied {
            return None;
        }
        Some(Self {
            id: tollgate_core::notify::message_id(&commit.log),
            log: commit.log.clone(),
            state: state.clone(),
            due_at: commit.log.recorded_at,
            version: 0,
            endpoints: BTreeMap::new(),
        })
    }
}

/// A notification an endpoint never accepted: kept until `tollgate notify
/// replay` delivers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The message id (`webhook-id`), kept on replay.
    pub id: String,
    /// The endpoint's name in `tollgate.toml`.
    pub endpoint: String,
    /// The body as it was sent (replayed byte for byte).
    pub body: String,
    pub event_type: String,
    pub attempts: u32,
    pub last_error: String,
    pub dead_at: DateTime<Utc>,
}

/// The outbox and its dead letters. Held by whatever drains it: the
/// purchase-webhook function (DynamoDB stream and schedule), `tollgate
/// notify`, tests.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Entries due at `now`, oldest first, at most `limit`.
    async fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Atomically, if entry `id` is still at `expected_version`: replaces it
    /// with `next` (whose `version` must be `expected_version + 1`) or, when
    /// `next` is `None`, removes it; and writes `dead` letters.
    /// [`StoreError::Conflict`] (nothing written) if another sender wrote
    /// it first or it is gone.
    async fn settle_notification(
        &self,
        id: &str,
        expected_version: u64,
        next: Option<&OutboxEntry>,
        dead: &[DeadLetter],
    ) -> Result<(), StoreError>;

    /// Every dead letter, oldest first.
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError>;

    /// Removes a dead letter (after a replay delivered it); `false` if
    /// there was none.
    async fn remove_dead_letter(&self, id: &str, endpoint: &str) -> Result<bool, StoreError>;
}

/// Checks a [`Outbox::settle_notification`] call before any write.
pub(crate) fn check_settle(
    id: &str,
    expected_version: u64,
    next: Option<&OutboxEntry>,
) -> Result<(), StoreError> {
    if let Some(next) = next
        && (next.id != id || Some(next.version) != expected_version.checked_add(1))
    {
        return Err(StoreError::Backend(format!(
            "outbox entry {id}: the next entry must keep the id and have version {}",
            expected_version.saturating_add(1)
        )));
    }
    Ok(())
}

/// The conflict a lost race on an outbox entry reports.
pub(crate) fn outbox_conflict(id: &str, expected_version: u64) -> StoreError {
    StoreError::Conflict(format!(
        "outbox entry {id} (expected version {expected_version})"
    ))
}
