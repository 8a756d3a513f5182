//! Embedded store: one SQLite file, for `make dev` and fast tests.
//!
//! Several processes may share the file (`make dev` runs the four functions
//! against one): the database is in WAL mode, every write is a
//! `BEGIN IMMEDIATE` transaction (so writers queue on the file lock instead
//! of failing half-way), and a busy timeout makes them wait for each other.
//! A lock still held after the timeout surfaces as [`StoreError::Transient`].
//!
//! rusqlite is synchronous, so every call runs on tokio's blocking pool with
//! the store's one connection behind a mutex; the async runtime never waits
//! on SQLite.
//!
//! Layout: a subscription is a JSON document plus the columns that are
//! queried (key, version, customer). Seat holders live in their own table,
//! written only by the seat operations, so a state commit can never drop a
//! seat claimed since the state was read. Timestamps are stored as
//! fixed-width RFC 3339 text (`2026-03-01T00:00:00.000000000Z`), which sorts
//! and compares as time for years 0000-9999.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::{
    Commit, Commits, Deliveries, Delivery, DeliveryStatus, Recorded, SeatClaim, SeatClaims,
    StoreError, Subscriptions, Token, Tokens, UserLinks,
};
use crate::model::{AppUser, CustomerKey, LogEntry, Marketplace, Subscription, SubscriptionKey};

/// How long a writer waits for another process's transaction before giving
/// up with [`StoreError::Transient`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Bumped when the schema changes incompatibly.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS subscriptions (
    marketplace          TEXT    NOT NULL,
    id                   TEXT    NOT NULL,
    version              INTEGER NOT NULL,
    customer_marketplace TEXT    NOT NULL,
    customer_id          TEXT    NOT NULL,
    doc                  TEXT    NOT NULL,  -- serde_json of Subscription, seat holders cleared
    PRIMARY KEY (marketplace, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS subscriptions_by_customer
    ON subscriptions (customer_marketplace, customer_id);

CREATE TABLE IF NOT EXISTS seats (
    marketplace TEXT NOT NULL,
    sub_id      TEXT NOT NULL,
    user        TEXT NOT NULL,
    PRIMARY KEY (marketplace, sub_id, user)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS event_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    marketplace TEXT NOT NULL,
    sub_id      TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    entry       TEXT NOT NULL  -- serde_json of LogEntry
);
CREATE INDEX IF NOT EXISTS event_log_by_subscription
    ON event_log (marketplace, sub_id, recorded_at, seq);

CREATE TABLE IF NOT EXISTS deliveries (
    marketplace TEXT NOT NULL,
    id          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,  -- 'pending' | 'done'
    body_sha256 TEXT NOT NULL,
    body        BLOB,           -- kept only while pending
    received_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    PRIMARY KEY (marketplace, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_pending
    ON deliveries (marketplace, status, received_at);

CREATE TABLE IF NOT EXISTS tokens (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    payload    TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS user_links (
    user                 TEXT NOT NULL,
    customer_marketplace TEXT NOT NULL,
    customer_id          TEXT NOT NULL,
    PRIMARY KEY (user, customer_marketplace, customer_id)
) WITHOUT ROWID;
";

/// The embedded [`Store`]. Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, its parent
    /// directory and the schema. Safe to call from several processes at once.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| context(e, path))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| context(e, path))?;
        let mode = switch_to_wal(&conn).map_err(|e| context(e, path))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "{}: could not switch to WAL mode (journal mode is {mode})",
                path.display()
            )));
        }
        // In WAL mode NORMAL cannot corrupt the file; a power cut may lose the
        // last commits, which is fine for a development store.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| context(e, path))?;
        Self::init(conn).map_err(|e| match e {
            StoreError::Backend(m) => StoreError::Backend(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// A private database that lives as long as the store (and its clones).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()?;
        Self::init(conn)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        match found {
            0 => {
                tx.execute_batch(SCHEMA)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            SCHEMA_VERSION => {}
            other => {
                return Err(StoreError::Backend(format!(
                    "database schema version {other}, this build knows {SCHEMA_VERSION}"
                )));
            }
        }
        tx.commit()?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock rolled its transaction back (the
            // `Transaction` guard does that on drop); the connection is fine.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("sqlite task failed: {e}")))?
    }

    /// Runs `f` in a write transaction: committed if `f` succeeds, rolled back
    /// otherwise. `BEGIN IMMEDIATE` takes the file's write lock up front, so
    /// concurrent writers wait (busy timeout) rather than fail mid-way.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Runs `f` in a read transaction, so its queries see one snapshot.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            f(&tx)
        })
        .await
    }
}

/// Sets WAL mode and returns the journal mode now in force. Switching a
/// fresh file needs an exclusive lock, and SQLite answers "locked" at once,
/// without waiting in the busy handler, while another process is opening
/// the same file; so this retries until the busy timeout.
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

/// Another connection holds the lock: worth retrying.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if is_busy(&e) {
            StoreError::Transient(format!("sqlite: {e}"))
        } else {
            StoreError::Backend(format!("sqlite: {e}"))
        }
    }
}

fn context(e: rusqlite::Error, path: &Path) -> StoreError {
    match StoreError::from(e) {
        StoreError::Transient(m) => StoreError::Transient(format!("{}: {m}", path.display())),
        StoreError::Backend(m) => StoreError::Backend(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// Fixed-width UTC text: compares like the instant it names.
fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(format!("timestamp `{s}`: {e}")))
}

fn parse_marketplace(s: &str) -> Result<Marketplace, StoreError> {
    s.parse().map_err(|e| corrupt(format!("{e}")))
}

fn version_to_sql(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("version {v} is out of range")))
}

fn version_from_sql(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(format!("negative version {v}")))
}

fn count_to_u32(n: i64) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| corrupt(format!("seat count {n}")))
}

fn corrupt(what: String) -> StoreError {
    StoreError::Backend(format!("corrupt row: {what}"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("serializing: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, doc: &str) -> Result<T, StoreError> {
    serde_json::from_str(doc).map_err(|e| corrupt(format!("{what}: {e}")))
}

fn status_from_sql(s: &str) -> Result<DeliveryStatus, StoreError> {
    match s {
        "pending" => Ok(DeliveryStatus::Pending),
        "done" => Ok(DeliveryStatus::Done),
        other => Err(corrupt(format!("delivery status `{other}`"))),
    }
}

/// A commit the store refuses outright: writing it would corrupt the
/// version sequence or file state under the wrong key.
fn check_commit(c: &Commit) -> Result<(), StoreError> {
    let key = &c.subscription;
    if c.log.subscription != *key {
        return Err(StoreError::Backend(format!(
            "commit for {key} carries a log entry for {}",
            c.log.subscription
        )));
    }
    if let Some(state) = &c.state {
        if state.key != *key {
            return Err(StoreError::Backend(format!(
                "commit for {key} carries the state of {}",
                state.key
            )));
        }
        if Some(state.version) != c.expected_version.checked_add(1) {
            return Err(StoreError::Backend(format!(
                "commit for {key} at version {} carries state version {} (must be the next)",
                c.expected_version, state.version
            )));
        }
    }
    Ok(())
}

fn current_version(tx: &Transaction<'_>, key: &SubscriptionKey) -> Result<u64, StoreError> {
    let v: Option<i64> = tx
        .prepare_cached("SELECT version FROM subscriptions WHERE marketplace = ?1 AND id = ?2")?
        .query_row(params![key.marketplace.as_str(), key.id], |row| row.get(0))
        .optional()?;
    v.map_or(Ok(0), version_from_sql)
}

fn holders(
    tx: &Transaction<'_>,
    marketplace: &str,
    id: &str,
) -> Result<std::collections::BTreeSet<String>, StoreError> {
    let mut stmt =
        tx.prepare_cached("SELECT user FROM seats WHERE marketplace = ?1 AND sub_id = ?2")?;
    let users = stmt
        .query_map(params![marketplace, id], |row| row.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    Ok(users)
}

fn seats_used(tx: &Transaction<'_>, key: &SubscriptionKey) -> Result<u32, StoreError> {
    let n: i64 = tx
        .prepare_cached("SELECT count(*) FROM seats WHERE marketplace = ?1 AND sub_id = ?2")?
        .query_row(params![key.marketplace.as_str(), key.id], |row| row.get(0))?;
    count_to_u32(n)
}

/// A subscription row with its seat holders filled in.
fn load_subscription(
    tx: &Transaction<'_>,
    marketplace: &str,
    id: &str,
    version: i64,
    doc: &str,
) -> Result<Subscription, StoreError> {
    let mut sub: Subscription = from_json(&format!("subscription {marketplace}:{id}"), doc)?;
    sub.version = version_from_sql(version)?;
    sub.seats.holders = holders(tx, marketplace, id)?;
    Ok(sub)
}

fn commit_tx(tx: &Transaction<'_>, c: &Commit) -> Result<(), StoreError> {
    let key = &c.subscription;
    let mkt = key.marketplace.as_str();
    // A commit has no clock of its own; the log entry's time is "now".
    let now = ts(c.log.recorded_at);

    // Duplicate first: it is final, whereas a conflict would only make the
    // caller re-read and find the duplicate anyway.
    if let Some(mark) = &c.delivery {
        let status: Option<String> = tx
            .prepare_cached(
                "SELECT status FROM deliveries
                 WHERE marketplace = ?1 AND id = ?2 AND expires_at > ?3",
            )?
            .query_row(params![mark.marketplace.as_str(), mark.id, now], |row| {
                row.get(0)
            })
            .optional()?;
        if let Some(status) = status
            && status_from_sql(&status)? == DeliveryStatus::Done
        {
            return Err(StoreError::Duplicate(format!(
                "delivery {}:{} is already processed",
                mark.marketplace, mark.id
            )));
        }
    }

    let found = current_version(tx, key)?;
    if found != c.expected_version {
        return Err(StoreError::Conflict(format!(
            "{key} (expected version {}, found {found})",
            c.expected_version
        )));
    }

    if let Some(state) = &c.state {
        let mut doc = state.clone();
        doc.seats.holders.clear();
        tx.prepare_cached(
            "INSERT INTO subscriptions
                 (marketplace, id, version, customer_marketplace, customer_id, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (marketplace, id) DO UPDATE SET
                 version = excluded.version,
                 customer_marketplace = excluded.customer_marketplace,
                 customer_id = excluded.customer_id,
                 doc = excluded.doc",
        )?
        .execute(params![
            mkt,
            key.id,
            version_to_sql(state.version)?,
            state.customer.key.marketplace.as_str(),
            state.customer.key.id,
            to_json(&doc)?,
        ])?;
    }

    tx.prepare_cached(
        "INSERT INTO event_log (marketplace, sub_id, recorded_at, entry) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![mkt, key.id, now, to_json(&c.log)?])?;

    if let Some(mark) = &c.delivery {
        let mark_mkt = mark.marketplace.as_str();
        let updated = tx
            .prepare_cached(
                "UPDATE deliveries SET status = 'done', body = NULL, expires_at = ?3
                 WHERE marketplace = ?1 AND id = ?2 AND expires_at > ?4",
            )?
            .execute(params![mark_mkt, mark.id, ts(mark.expires_at), now])?;
        if updated == 0 {
            // Never recorded (or expired): the mark alone is the record.
            tx.prepare_cached(
                "INSERT OR REPLACE INTO deliveries
                     (marketplace, id, kind, status, body_sha256, body, received_at, expires_at)
                 VALUES (?1, ?2, '', 'done', '', NULL, ?3, ?4)",
            )?
            .execute(params![mark_mkt, mark.id, now, ts(mark.expires_at)])?;
        }
    }
    Ok(())
}

fn delivery_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        marketplace: row.get(0)?,
        id: row.get(1)?,
        kind: row.get(2)?,
        status: row.get(3)?,
        body_sha256: row.get(4)?,
        body: row.get(5)?,
        received_at: row.get(6)?,
        expires_at: row.get(7)?,
    })
}

const DELIVERY_COLUMNS: &str =
    "marketplace, id, kind, status, body_sha256, body, received_at, expires_at";

/// A `deliveries` row as stored, before validation.
struct DeliveryRow {
    marketplace: String,
    id: String,
    kind: String,
    status: String,
    body_sha256: String,
    body: Option<Vec<u8>>,
    received_at: String,
    expires_at: String,
}

impl DeliveryRow {
    fn into_delivery(self) -> Result<Delivery, StoreError> {
        Ok(Delivery {
            marketplace: parse_marketplace(&self.marketplace)?,
            id: self.id,
            kind: self.kind,
            status: status_from_sql(&self.status)?,
            body_sha256: self.body_sha256,
            body: self.body,
            received_at: parse_ts(&self.received_at)?,
            expires_at: parse_ts(&self.expires_at)?,
        })
    }
}

#[async_trait]
impl Subscriptions for SqliteStore {
    async fn get(&self, key: &SubscriptionKey) -> Result<Option<Subscription>, StoreError> {
        let key = key.clone();
        self.read(move |tx| {
            let mkt = key.marketplace.as_str();
            let row: Option<(i64, String)> = tx
                .prepare_cached(
                    "SELECT version, doc FROM subscriptions WHERE marketplace = ?1 AND id = ?2",
                )?
                .query_row(params![mkt, key.id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            row.map(|(version, doc)| load_subscription(tx, mkt, &key.id, version, &doc))
                .transpose()
        })
        .await
    }

    async fn log(&self, key: &SubscriptionKey) -> Result<Vec<LogEntry>, StoreError> {
        let key = key.clone();
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT entry FROM event_log WHERE marketplace = ?1 AND sub_id = ?2
                 ORDER BY recorded_at, seq",
            )?;
            let docs = stmt
                .query_map(params![key.marketplace.as_str(), key.id], |row| {
                    row.get::<_, String>(0)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            docs.iter()
                .map(|doc| from_json(&format!("log entry of {key}"), doc))
                .collect()
        })
        .await
    }

    async fn customer_subscriptions(
        &self,
        customer: &CustomerKey,
    ) -> Result<Vec<Subscription>, StoreError> {
        let customer = customer.clone();
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT marketplace, id, version, doc FROM subscriptions
                 WHERE customer_marketplace = ?1 AND customer_id = ?2
                 ORDER BY marketplace, id",
            )?;
            let rows = stmt
                .query_map(params![customer.marketplace.as_str(), customer.id], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.iter()
                .map(|(mkt, id, version, doc)| load_subscription(tx, mkt, id, *version, doc))
                .collect()
        })
        .await
    }
}

#[async_trait]
impl Commits for SqliteStore {
    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        check_commit(commit)?;
        let commit = commit.clone();
        self.write(move |tx| commit_tx(tx, &commit)).await
    }
}

#[async_trait]
impl Deliveries for SqliteStore {
    async fn record_delivery(&self, delivery: &Delivery) -> Result<Recorded, StoreError> {
        let d = delivery.clone();
        self.write(move |tx| {
            let mkt = d.marketplace.as_str();
            let received = ts(d.received_at);
            let status: Option<String> = tx
                .prepare_cached(
                    "SELECT status FROM deliveries
                     WHERE marketplace = ?1 AND id = ?2 AND expires_at > ?3",
                )?
                .query_row(params![mkt, d.id, received], |row| row.get(0))
                .optional()?;
            if let Some(status) = status {
                return Ok(match status_from_sql(&status)? {
                    DeliveryStatus::Pending => Recorded::Pending,
                    DeliveryStatus::Done => Recorded::Done,
                });
            }
            // Absent or expired: (re)record it as pending.
            tx.prepare_cached(
                "INSERT OR REPLACE INTO deliveries
                     (marketplace, id, kind, status, body_sha256, body, received_at, expires_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                mkt,
                d.id,
                d.kind,
                d.body_sha256,
                d.body,
                received,
                ts(d.expires_at)
            ])?;
            Ok(Recorded::New)
        })
        .await
    }

    async fn delivery(
        &self,
        marketplace: Marketplace,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, StoreError> {
        let id = id.to_owned();
        self.read(move |tx| {
            let row = tx
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries
                     WHERE marketplace = ?1 AND id = ?2 AND expires_at > ?3"
                ))?
                .query_row(
                    params![marketplace.as_str(), id, ts(now)],
                    delivery_from_row,
                )
                .optional()?;
            row.map(DeliveryRow::into_delivery).transpose()
        })
        .await
    }

    async fn pending_deliveries(
        &self,
        marketplace: Marketplace,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries
                 WHERE marketplace = ?1 AND status = 'pending' AND expires_at > ?2
                 ORDER BY received_at, id"
            ))?;
            let rows = stmt
                .query_map(params![marketplace.as_str(), ts(now)], delivery_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(DeliveryRow::into_delivery).collect()
        })
        .await
    }
}

#[async_trait]
impl SeatClaims for SqliteStore {
    async fn claim_seat(
        &self,
        key: &SubscriptionKey,
        user: &str,
        limit: u32,
    ) -> Result<SeatClaim, StoreError> {
        let key = key.clone();
        let user = user.to_owned();
        self.write(move |tx| {
            let mkt = key.marketplace.as_str();
            let exists = tx
                .prepare_cached("SELECT 1 FROM subscriptions WHERE marketplace = ?1 AND id = ?2")?
                .exists(params![mkt, key.id])?;
            if !exists {
                return Err(StoreError::NotFound(format!("subscription {key}")));
            }
            let used = seats_used(tx, &key)?;
            let held = tx
                .prepare_cached(
                    "SELECT 1 FROM seats WHERE marketplace = ?1 AND sub_id = ?2 AND user = ?3",
                )?
                .exists(params![mkt, key.id, user])?;
            if held {
                return Ok(SeatClaim::AlreadyHeld { used });
            }
            if used >= limit {
                return Ok(SeatClaim::LimitReached { used });
            }
            tx.prepare_cached("INSERT INTO seats (marketplace, sub_id, user) VALUES (?1, ?2, ?3)")?
                .execute(params![mkt, key.id, user])?;
            Ok(SeatClaim::Granted { used: used + 1 })
        })
        .await
    }

    async fn release_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError> {
        let key = key.clone();
        let user = user.to_owned();
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "DELETE FROM seats WHERE marketplace = ?1 AND sub_id = ?2 AND user = ?3",
                )?
                .execute(params![key.marketplace.as_str(), key.id, user])?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait]
impl Tokens for SqliteStore {
    async fn put_token(&self, token: &Token, now: DateTime<Utc>) -> Result<(), StoreError> {
        let token = token.clone();
        let now = ts(now);
        self.write(move |tx| {
            let live = tx
                .prepare_cached("SELECT 1 FROM tokens WHERE kind = ?1 AND id = ?2 AND expires_at > ?3")?
                .exists(params![token.kind, token.id, now])?;
            if live {
                // The id itself may be a secret (OAuth state): keep it out of errors.
                return Err(StoreError::Duplicate(format!(
                    "a live `{}` token with this id exists",
                    token.kind
                )));
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO tokens (kind, id, payload, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![token.kind, token.id, token.payload, ts(token.expires_at)])?;
            Ok(())
        })
        .await
    }

    async fn take_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let kind = kind.to_owned();
        let id = id.to_owned();
        self.write(move |tx| {
            let payload = tx
                .prepare_cached(
                    "DELETE FROM tokens WHERE kind = ?1 AND id = ?2 AND expires_at > ?3
                     RETURNING payload",
                )?
                .query_row(params![kind, id, ts(now)], |row| row.get(0))
                .optional()?;
            Ok(payload)
        })
        .await
    }
}

#[async_trait]
impl UserLinks for SqliteStore {
    async fn link_user(&self, user: &AppUser, customer: &CustomerKey) -> Result<(), StoreError> {
        let user = user.0.clone();
        let customer = customer.clone();
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO user_links (user, customer_marketplace, customer_id)
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![user, customer.marketplace.as_str(), customer.id])?;
            Ok(())
        })
        .await
    }

    async fn linked_customers(&self, user: &AppUser) -> Result<Vec<CustomerKey>, StoreError> {
        let user = user.0.clone();
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT customer_marketplace, customer_id FROM user_links WHERE user = ?1
                 ORDER BY customer_marketplace, customer_id",
            )?;
            let rows = stmt
                .query_map(params![user], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(mkt, id)| Ok(CustomerKey::new(parse_marketplace(&mkt)?, id)))
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    //! SQLite-specific behaviour. What every store must do is proved by the
    //! conformance suite (`tests/src/conformance.rs`).
    use super::*;
    use crate::model::{Customer, Disposition, Plan, Seats, Status};

    fn key(id: &str) -> SubscriptionKey {
        SubscriptionKey::new(Marketplace::Github, id)
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_323_200 + secs, 0).expect("in range")
    }

    fn sub(id: &str, version: u64) -> Subscription {
        Subscription {
            key: key(id),
            customer: Customer::new(CustomerKey::new(Marketplace::Github, "cust")),
            product: "app".into(),
            plan: Plan::new("pro"),
            status: Status::Active,
            awaiting: None,
            seats: Seats {
                limit: Some(3),
                holders: Default::default(),
            },
            billing_cycle: None,
            trial_ends_at: None,
            next_billing_at: None,
            access_until: None,
            pending_change: None,
            last_applied: None,
            version,
            created_at: at(0),
            updated_at: at(0),
        }
    }

    fn log(id: &str, event: &str) -> LogEntry {
        LogEntry {
            subscription: key(id),
            event_id: event.into(),
            event: "purchased".into(),
            effective_at: at(0),
            recorded_at: at(0),
            disposition: Disposition::Applied,
            note: String::new(),
            status_before: None,
            status_after: Some(Status::Active),
        }
    }

    fn create(id: &str) -> Commit {
        Commit {
            subscription: key(id),
            expected_version: 0,
            state: Some(sub(id, 1)),
            log: log(id, "e1"),
            delivery: None,
        }
    }

    #[tokio::test]
    async fn open_creates_the_parent_directory_and_reopens_with_the_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/deeper/dev.db");
        let store = SqliteStore::open(&path).expect("open");
        store.commit(&create("1")).await.expect("commit");
        drop(store);

        let store = SqliteStore::open(&path).expect("reopen");
        let got = store.get(&key("1")).await.expect("get");
        assert_eq!(got.map(|s| s.version), Some(1));
    }

    #[tokio::test]
    async fn file_is_in_wal_mode_with_a_busy_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("dev.db")).expect("open");
        let (mode, timeout) = store
            .run(|conn| {
                let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
                let timeout: i64 = conn.pragma_query_value(None, "busy_timeout", |r| r.get(0))?;
                Ok((mode, timeout))
            })
            .await
            .expect("pragmas");
        assert_eq!(mode, "wal");
        assert!(timeout >= 1000, "busy_timeout {timeout} ms");
    }

    #[test]
    fn several_processes_may_open_a_fresh_file_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fresh.db");
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            let opens: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        SqliteStore::open(&path).map(|_| ())
                    })
                })
                .collect();
            for open in opens {
                assert_eq!(open.join().expect("thread"), Ok(()));
            }
        });
    }

    #[tokio::test]
    async fn two_stores_on_one_file_see_each_others_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shared.db");
        let a = SqliteStore::open(&path).expect("open a");
        let b = SqliteStore::open(&path).expect("open b");

        a.commit(&create("1")).await.expect("commit via a");
        assert_eq!(
            b.get(&key("1")).await.expect("get").map(|s| s.version),
            Some(1)
        );

        // b's commit at the version it read wins; a's stale retry conflicts.
        let mut next = create("1");
        next.expected_version = 1;
        next.state = Some(sub("1", 2));
        next.log = log("1", "e2");
        b.commit(&next).await.expect("commit via b");
        assert!(matches!(
            a.commit(&next).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(a.log(&key("1")).await.expect("log").len(), 2);

        assert_eq!(
            a.claim_seat(&key("1"), "u1", 1).await,
            Ok(SeatClaim::Granted { used: 1 })
        );
        assert_eq!(
            b.claim_seat(&key("1"), "u2", 1).await,
            Ok(SeatClaim::LimitReached { used: 1 })
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn seat_limit_holds_across_connections_to_one_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shared.db");
        let stores: Vec<SqliteStore> = (0..4)
            .map(|_| SqliteStore::open(&path).expect("open"))
            .collect();
        stores[0].commit(&create("1")).await.expect("commit");

        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let store = stores[i % stores.len()].clone();
            tasks.spawn(async move { store.claim_seat(&key("1"), &format!("u{i}"), 7).await });
        }
        let mut granted = 0;
        while let Some(res) = tasks.join_next().await {
            match res.expect("task").expect("claim") {
                SeatClaim::Granted { .. } => granted += 1,
                SeatClaim::LimitReached { used } => assert_eq!(used, 7),
                SeatClaim::AlreadyHeld { .. } => panic!("distinct users"),
            }
        }
        assert_eq!(granted, 7);
        let got = stores[3]
            .get(&key("1"))
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(got.seats.used(), 7);
    }

    #[tokio::test]
    async fn seat_holders_are_not_stored_in_the_state_document() {
        let store = SqliteStore::open_in_memory().expect("open");
        let mut c = create("1");
        if let Some(s) = c.state.as_mut() {
            s.seats.holders.insert("ghost".into());
        }
        store.commit(&c).await.expect("commit");
        let doc: String = store
            .run(|conn| Ok(conn.query_row("SELECT doc FROM subscriptions", [], |r| r.get(0))?))
            .await
            .expect("doc");
        assert!(!doc.contains("ghost"), "{doc}");
        let got = store.get(&key("1")).await.expect("get").expect("exists");
        assert!(got.seats.holders.is_empty());
    }

    #[tokio::test]
    async fn a_corrupt_row_is_a_backend_error_not_a_panic() {
        let store = SqliteStore::open_in_memory().expect("open");
        store.commit(&create("1")).await.expect("commit");
        store
            .run(|conn| {
                conn.execute("UPDATE subscriptions SET doc = '{not json'", [])?;
                conn.execute("UPDATE event_log SET entry = '[]'", [])?;
                conn.execute(
                    "INSERT INTO deliveries VALUES ('github', 'd', 'k', 'weird', '', NULL, 'x', '9999')",
                    [],
                )?;
                Ok(())
            })
            .await
            .expect("corrupt");
        assert!(matches!(
            store.get(&key("1")).await,
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            store.log(&key("1")).await,
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            store.delivery(Marketplace::Github, "d", at(0)).await,
            Err(StoreError::Backend(_))
        ));
    }

    #[test]
    fn busy_and_locked_are_transient_other_errors_are_backend() {
        let err = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        assert!(matches!(
            StoreError::from(err(rusqlite::ffi::SQLITE_BUSY)),
            StoreError::Transient(_)
        ));
        assert!(matches!(
            StoreError::from(err(rusqlite::ffi::SQLITE_LOCKED)),
            StoreError::Transient(_)
        ));
        assert!(matches!(
            StoreError::from(err(rusqlite::ffi::SQLITE_CORRUPT)),
            StoreError::Backend(_)
        ));
    }

    #[test]
    fn timestamps_sort_as_text_like_the_instants_they_name() {
        let times = [
            at(-1),
            at(0),
            at(0) + chrono::Duration::nanoseconds(1),
            at(1),
            at(86_400 * 400),
        ];
        for pair in times.windows(2) {
            assert!(
                ts(pair[0]) < ts(pair[1]),
                "{} !< {}",
                ts(pair[0]),
                ts(pair[1])
            );
        }
        for t in times {
            assert_eq!(parse_ts(&ts(t)), Ok(t));
        }
    }

    #[tokio::test]
    async fn a_commit_whose_state_is_not_the_next_version_is_refused() {
        let store = SqliteStore::open_in_memory().expect("open");
        let mut c = create("1");
        c.state = Some(sub("1", 5));
        assert!(matches!(
            store.commit(&c).await,
            Err(StoreError::Backend(_))
        ));
        assert_eq!(store.get(&key("1")).await, Ok(None));
        assert!(store.log(&key("1")).await.expect("log").is_empty());
    }
}
