//! [`SeatClaims`] on SQLite: the `seats` table, one row per holder.

use async_trait::async_trait;
use rusqlite::{Transaction, params};

use super::SqliteStore;
use crate::model::SubscriptionKey;
use crate::store::{SeatClaim, SeatClaims, StoreError, codec};

#[async_trait]
impl SeatClaims for SqliteStore {
    /// Count, check and insert in one write transaction, which holds the
    /// file's write lock: claims from several processes queue.
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
                return Err(codec::no_subscription(&key));
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

fn seats_used(tx: &Transaction<'_>, key: &SubscriptionKey) -> Result<u32, StoreError> {
    let n: i64 = tx
        .prepare_cached("SELECT count(*) FROM seats WHERE marketplace = ?1 AND sub_id = ?2")?
        .query_row(params![key.marketplace.as_str(), key.id], |row| row.get(0))?;
    codec::seat_count(n, &format!("seats of {key}"))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{create, key};
    use super::*;
    use crate::store::prelude::*;

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
}
