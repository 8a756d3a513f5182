//! The tables, and creating them in a new file.

use rusqlite::Transaction;

use crate::store::StoreError;

/// Bumped when the schema changes; [`create_or_check`] upgrades older files.
const SCHEMA_VERSION: i64 = 4;

/// Version 2: places in capped groups (Q2's users per institution).
const ENROLLMENTS: &str = "
CREATE TABLE IF NOT EXISTS enrollments (
    marketplace  TEXT NOT NULL,
    product      TEXT NOT NULL,
    grp          TEXT NOT NULL,
    member       TEXT NOT NULL,
    subscription TEXT NOT NULL,
    since        TEXT NOT NULL,
    PRIMARY KEY (marketplace, product, grp, member)
) WITHOUT ROWID;
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS subscriptions (
    marketplace          TEXT    NOT NULL,
    id                   TEXT    NOT NULL,
    version              INTEGER NOT NULL,
    customer_marketplace TEXT    NOT NULL,
    customer_id          TEXT    NOT NULL,
    doc                  TEXT    NOT NULL,  -- serde_json of Subscription, seat count cleared
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
    status      TEXT NOT NULL,  -- DeliveryStatus::as_str: 'pending' | 'done'
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
";

/// App user → customer links; since version 3 each with its expiry.
/// The notification outbox (written by commits) and its dead letters.
const OUTBOX: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id      TEXT    NOT NULL PRIMARY KEY,
    due_at  TEXT    NOT NULL,
    version INTEGER NOT NULL,
    doc     TEXT    NOT NULL  -- serde_json of OutboxEntry
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_by_due ON outbox (due_at);

CREATE TABLE IF NOT EXISTS dead_letters (
    id       TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    dead_at  TEXT NOT NULL,
    doc      TEXT NOT NULL,  -- serde_json of DeadLetter
    PRIMARY KEY (id, endpoint)
) WITHOUT ROWID;
";

const USER_LINKS: &str = "
CREATE TABLE IF NOT EXISTS user_links (
    user                 TEXT NOT NULL,
    customer_marketplace TEXT NOT NULL,
    customer_id          TEXT NOT NULL,
    linked_at            TEXT NOT NULL,
    expires_at           TEXT NOT NULL,
    PRIMARY KEY (user, customer_marketplace, customer_id)
) WITHOUT ROWID;
";

/// The sweep of expired links deletes by expiry.
const USER_LINKS_BY_EXPIRY: &str =
    "CREATE INDEX IF NOT EXISTS user_links_by_expiry ON user_links (expires_at);";

/// Version 3: links expire. A link written before carries no expiry, so it
/// is given the empty text, which sorts before every time: it counts as
/// expired (it grants nothing until the user signs in again) and the next
/// sweep removes it.
const LINK_EXPIRY: &str = "
ALTER TABLE user_links ADD COLUMN linked_at TEXT NOT NULL DEFAULT '';
ALTER TABLE user_links ADD COLUMN expires_at TEXT NOT NULL DEFAULT '';
";

/// Creates the tables in a new database (`user_version` 0) or checks that
/// an existing one has the schema this build knows.
pub(super) fn create_or_check(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    match found {
        0 => {
            tx.execute_batch(SCHEMA)?;
            tx.execute_batch(ENROLLMENTS)?;
            tx.execute_batch(USER_LINKS)?;
            tx.execute_batch(USER_LINKS_BY_EXPIRY)?;
            tx.execute_batch(OUTBOX)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            Ok(())
        }
        // A development file from before enrollments (1), before links
        // expired (2) or before the outbox (3): bring it up to date.
        1..=3 => {
            if found == 1 {
                tx.execute_batch(ENROLLMENTS)?;
            }
            if found < 3 {
                upgrade_links(tx)?;
            }
            tx.execute_batch(OUTBOX)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            Ok(())
        }
        SCHEMA_VERSION => Ok(()),
        other => Err(StoreError::Backend(format!(
            "database schema version {other}, this build knows {SCHEMA_VERSION}"
        ))),
    }
}

/// Gives an older file's `user_links` the expiry columns (creating the
/// table if the file somehow lacks it) and the sweep's index.
fn upgrade_links(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let columns: Vec<String> = tx
        .prepare("SELECT name FROM pragma_table_info('user_links')")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    if columns.is_empty() {
        tx.execute_batch(USER_LINKS)?;
    } else if !columns.iter().any(|c| c == "expires_at") {
        tx.execute_batch(LINK_EXPIRY)?;
    }
    tx.execute_batch(USER_LINKS_BY_EXPIRY)?;
    Ok(())
}
