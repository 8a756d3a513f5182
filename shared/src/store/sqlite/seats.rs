//! [`SeatClaims`] on SQLite: the `seats` table, one row per holder; a
//! state's count of holders is the number of its rows.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

use super::SqliteStore;
use crate::model::{Subscription, SubscriptionKey};
use crate::store::{SeatClaim, SeatClaims, SeatLimit, StoreError, codec};

#[async_trait]
impl SeatClaims for SqliteStore {
    /// Reads the current state's unit count, counts, checks and inserts in
    /// one write transaction, which holds the file's write lock: claims and
    /// commits from several processes queue, so the limit is always the
    /// one of the state as it is.
    async fn claim_seat(
        &self,
        key: &SubscriptionKey,
        user: &str,
        limit: SeatLimit,
    ) -> Result<SeatClaim, StoreError> {
        let key = key.clone();
        let user = user.to_owned();
        self.write(move |tx| {
            let mkt = key.marketplace.as_str();
            let what = format!("subscription {key}");
            let doc: Option<String> = tx
                .prepare_cached("SELECT doc FROM subscriptions WHERE marketplace = ?1 AND id = ?2")?
                .query_row(params![mkt, key.id], |row| row.get(0))
                .optional()?;
            let Some(doc) = doc else {
                return Err(codec::no_subscription(&key));
            };
            let state: Subscription = codec::from_json(&doc, &what)?;
            let limit = limit.resolve(state.seats.limit);
            let used = seats_used(tx, mkt, &key.id)?;
            let held = tx
                .prepare_cached(
                    "SELECT 1 FROM seats WHERE marketplace = ?1 AND sub_id = ?2 AND user = ?3",
                )?
                .exists(params![mkt, key.id, user])?;
            if held {
                return Ok(SeatClaim::AlreadyHeld { used, limit });
            }
            if let Some(limit) = limit
                && used >= limit
            {
                return Ok(SeatClaim::LimitReached { used, limit });
            }
            tx.prepare_cached("INSERT INTO seats (marketplace, sub_id, user) VALUES (?1, ?2, ?3)")?
                .execute(params![mkt, key.id, user])?;
            Ok(SeatClaim::Granted {
                used: used.saturating_add(1),
                limit,
            })
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

    async fn holds_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError> {
        let key = key.clone();
        let user = user.to_owned();
        self.read(move |tx| {
            Ok(tx
                .prepare_cached(
                    "SELECT 1 FROM seats WHERE marketplace = ?1 AND sub_id = ?2 AND user = ?3",
                )?
                .exists(params![key.marketplace.as_str(), key.id, user])?)
        })
        .await
    }

    async fn seat_holders(&self, key: &SubscriptionKey) -> Result<Vec<String>, StoreError> {
        let key = key.clone();
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT user FROM seats WHERE marketplace = ?1 AND sub_id = ?2 ORDER BY user",
            )?;
            let users = stmt
                .query_map(params![key.marketplace.as_str(), key.id], |row| {
                    row.get::<_, String>(0)
                })?
                .collect::<Result<_, _>>()?;
            Ok(users)
        })
        .await
    }
}

/// How many users hold a seat of subscription `marketplace:id`.
pub(super) fn seats_used(
    tx: &Transaction<'_>,
    marketplace: &str,
    id: &str,
) -> Result<u32, StoreError> {
    let n: i64 = tx
        .prepare_cached("SELECT count(*) FROM seats WHERE marketplace = ?1 AND sub_id = ?2")?
        .query_row(params![marketplace, id], |row| row.get(0))?;
    codec::seat_count(n, &format!("seats of {marketplace}:{id}"))
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
            tasks.spawn(async move {
                store
                    .claim_seat(&key("1"), &format!("u{i}"), SeatLimit::Fixed(7))
                    .await
            });
        }
        let mut granted = 0;
        while let Some(res) = tasks.join_next().await {
            match res.expect("task").expect("claim") {
                SeatClaim::Granted { .. } => granted += 1,
                SeatClaim::LimitReached { used, limit } => assert_eq!((used, limit), (7, 7)),
                SeatClaim::AlreadyHeld { .. } => panic!("distinct users"),
            }
        }
        assert_eq!(granted, 7);
        let got = stores[3]
            .get(&key("1"))
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(got.seats.used, 7);
    }
}
