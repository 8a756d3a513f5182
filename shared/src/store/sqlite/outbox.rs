//! [`Outbox`] on SQLite: the `outbox` table (a row per applied change,
//! inserted by the commit's own transaction) and `dead_letters`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};

use super::SqliteStore;
use crate::store::outbox::{check_settle, outbox_conflict};
use crate::store::{DeadLetter, Outbox, OutboxEntry, StoreError, codec};

/// Inserts a new entry (from a commit's transaction).
pub(super) fn insert(tx: &Transaction<'_>, entry: &OutboxEntry) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO outbox (id, due_at, version, doc) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        entry.id,
        codec::time_text(entry.due_at)?,
        codec::version_to_i64(entry.version)?,
        codec::to_json(entry, &format!("outbox entry {}", entry.id))?,
    ])?;
    Ok(())
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let now = codec::time_text(now)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |tx| {
            let docs: Vec<String> = tx
                .prepare_cached(
                    "SELECT doc FROM outbox WHERE due_at <= ?1 ORDER BY due_at, id LIMIT ?2",
                )?
                .query_map(params![now, limit], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            docs.iter()
                .map(|doc| codec::from_json(doc, "outbox entry"))
                .collect()
        })
        .await
    }

    async fn settle_notification(
        &self,
        id: &str,
        expected_version: u64,
        next: Option<&OutboxEntry>,
        dead: &[DeadLetter],
    ) -> Result<(), StoreError> {
        check_settle(id, expected_version, next)?;
        let id = id.to_owned();
        let next = next.cloned();
        let dead = dead.to_vec();
        self.write(move |tx| {
            let expected = codec::version_to_i64(expected_version)?;
            let changed = match &next {
                Some(entry) => tx
                    .prepare_cached(
                        "UPDATE outbox SET due_at = ?3, version = ?4, doc = ?5
                         WHERE id = ?1 AND version = ?2",
                    )?
                    .execute(params![
                        id,
                        expected,
                        codec::time_text(entry.due_at)?,
                        codec::version_to_i64(entry.version)?,
                        codec::to_json(entry, &format!("outbox entry {id}"))?,
                    ])?,
                None => tx
                    .prepare_cached("DELETE FROM outbox WHERE id = ?1 AND version = ?2")?
                    .execute(params![id, expected])?,
            };
            if changed == 0 {
                return Err(outbox_conflict(&id, expected_version));
            }
            for letter in &dead {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO dead_letters (id, endpoint, dead_at, doc)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    letter.id,
                    letter.endpoint,
                    codec::time_text(letter.dead_at)?,
                    codec::to_json(letter, &format!("dead letter {}", letter.id))?,
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.read(|tx| {
            let docs: Vec<String> = tx
                .prepare_cached("SELECT doc FROM dead_letters ORDER BY dead_at, id, endpoint")?
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            docs.iter()
                .map(|doc| codec::from_json(doc, "dead letter"))
                .collect()
        })
        .await
    }

    async fn remove_dead_letter(&self, id: &str, endpoint: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let endpoint = endpoint.to_owned();
        self.write(move |tx| {
            let removed = tx
                .prepare_cached("DELETE FROM dead_letters WHERE id = ?1 AND endpoint = ?2")?
                .execute(params![id, endpoint])?;
            Ok(removed > 0)
        })
        .await
    }
}
