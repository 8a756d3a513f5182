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
//! Layout (the tables are in `schema`): a subscription is a JSON document
//! plus the columns that are queried (key, version, customer). Seat holders
//! live in their own table, one row per holder, written only by the seat
//! operations, so a state commit can never drop a seat claimed since the
//! state was read; a state's seat count is the number of its rows.
//! Timestamps are stored as fixed-width RFC 3339 text
//! (`2026-03-01T00:00:00.000000000Z`, the format of DynamoDB's keys), which
//! sorts and compares as time; like DynamoDB, the store refuses times
//! outside 1677-2262.
//!
//! This module opens the file and runs closures on the connection
//! ([`SqliteStore::read`], [`SqliteStore::write`]); each role trait has its
//! own file. What both backends encode alike (times, status names,
//! documents, commit checks, error wording) lives in the store's shared
//! codec.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

#[cfg(doc)]
use super::Store;
use super::StoreError;

mod commits;
mod deliveries;
mod enrollments;
mod inventory;
mod links;
mod outbox;
mod schema;
mod seats;
mod subscriptions;
mod tokens;

/// How long a writer waits for another process's transaction before giving
/// up with [`StoreError::Transient`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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
        schema::create_or_check(&tx)?;
        tx.commit()?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Test support: `n` copies of the stored subscription `key`, each under
    /// a new id and customer (`<id>-copy-<i>`), in one statement — fills a
    /// store for the scale benchmark (`make bench`) without `n` commits.
    #[cfg(feature = "test-support")]
    pub async fn copy_subscription_for_bench(
        &self,
        key: &crate::model::SubscriptionKey,
        n: usize,
    ) -> Result<(), StoreError> {
        let (marketplace, id) = (key.marketplace.as_str(), key.id.clone());
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.write(move |tx| {
            tx.execute(
                "WITH RECURSIVE copies(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM copies WHERE i < ?3)
                 INSERT INTO subscriptions
                   (marketplace, id, version, customer_marketplace, customer_id, doc)
                 SELECT marketplace, id || '-copy-' || i, version, customer_marketplace,
                        customer_id || '-copy-' || i, doc
                 FROM subscriptions, copies WHERE marketplace = ?1 AND id = ?2",
                rusqlite::params![marketplace, id, n],
            )?;
            Ok(())
        })
        .await
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

/// Values the tests of every role build on.
#[cfg(test)]
mod fixtures;

#[cfg(test)]
mod tests {
    //! SQLite-specific behaviour. What every store must do is proved by the
    //! conformance suite (`tests/src/conformance.rs`).
    use super::fixtures::{at, create, key, log, sub};
    use super::*;
    use crate::model::Marketplace;
    use crate::store::prelude::*;
    use crate::store::{SeatClaim, SeatLimit};

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
            a.claim_seat(&key("1"), "u1", SeatLimit::Fixed(1)).await,
            Ok(SeatClaim::Granted {
                used: 1,
                limit: Some(1)
            })
        );
        assert_eq!(
            b.claim_seat(&key("1"), "u2", SeatLimit::Fixed(1)).await,
            Ok(SeatClaim::LimitReached { used: 1, limit: 1 })
        );
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
}
