//! [`Commits`] on SQLite: state, log entry, delivery mark and outbox entry
//! in one `BEGIN IMMEDIATE` transaction.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

use super::SqliteStore;
use super::subscriptions::current_version;
use crate::store::{Commit, Commits, DeliveryStatus, OutboxEntry, StoreError, codec};

#[async_trait]
impl Commits for SqliteStore {
    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        codec::check_commit(commit)?;
        let commit = commit.clone();
        self.write(move |tx| commit_tx(tx, &commit)).await
    }
}

fn commit_tx(tx: &Transaction<'_>, c: &Commit) -> Result<(), StoreError> {
    let key = &c.subscription;
    let mkt = key.marketplace.as_str();
    let now = codec::time_text(codec::commit_now(c))?;

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
        if let Some(status) = status {
            let what = format!("delivery {}:{}", mark.marketplace, mark.id);
            if codec::parse_status(&status, &what)? == DeliveryStatus::Done {
                return Err(codec::duplicate_delivery(mark.marketplace, &mark.id));
            }
        }
    }

    if current_version(tx, key)? != c.expected_version {
        return Err(codec::conflict(key, c.expected_version));
    }

    if let Some(state) = &c.state {
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
            codec::version_to_i64(state.version)?,
            state.customer.key.marketplace.as_str(),
            state.customer.key.id,
            codec::state_doc(state)?,
        ])?;
    }

    tx.prepare_cached(
        "INSERT INTO event_log (marketplace, sub_id, recorded_at, entry) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        mkt,
        key.id,
        now,
        codec::to_json(&c.log, &format!("log entry of {key}"))?
    ])?;

    if let Some(mark) = &c.delivery {
        let mark_mkt = mark.marketplace.as_str();
        let done = DeliveryStatus::Done.as_str();
        let expires_at = codec::time_text(mark.expires_at)?;
        // A record already there, even an expired one, keeps what it says
        // about the delivery (kind, body hash, received_at).
        let updated = tx
            .prepare_cached(
                "UPDATE deliveries SET status = ?3, body = NULL, expires_at = ?4
                 WHERE marketplace = ?1 AND id = ?2",
            )?
            .execute(params![mark_mkt, mark.id, done, expires_at])?;
        if updated == 0 {
            // Never recorded: the mark alone is the record.
            tx.prepare_cached(
                "INSERT INTO deliveries
                     (marketplace, id, kind, status, body_sha256, body, received_at, expires_at)
                 VALUES (?1, ?2, '', ?3, '', NULL, ?4, ?5)",
            )?
            .execute(params![mark_mkt, mark.id, done, now, expires_at])?;
        }
    }

    if let Some(entry) = OutboxEntry::of_commit(c) {
        super::outbox::insert(tx, &entry)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{create, key, sub};
    use super::*;
    use crate::store::prelude::*;

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

    #[tokio::test]
    async fn the_seat_count_is_not_stored_in_the_state_document() {
        let store = SqliteStore::open_in_memory().expect("open");
        let mut c = create("1");
        if let Some(s) = c.state.as_mut() {
            s.seats.used = 41;
        }
        store.commit(&c).await.expect("commit");
        let doc: String = store
            .run(|conn| Ok(conn.query_row("SELECT doc FROM subscriptions", [], |r| r.get(0))?))
            .await
            .expect("doc");
        assert!(!doc.contains("41"), "{doc}");
        let got = store.get(&key("1")).await.expect("get").expect("exists");
        assert_eq!(got.seats.used, 0);
    }
}
