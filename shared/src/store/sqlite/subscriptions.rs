//! [`Subscriptions`] on SQLite: the `subscriptions`, `seats` and
//! `event_log` tables.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

use super::SqliteStore;
use super::seats::seats_used;
use crate::model::{CustomerKey, LogEntry, Subscription, SubscriptionKey};
use crate::store::{StoreError, Subscriptions, codec};

/// The check's reads (the hot path): by key through the primary key, by
/// customer through `subscriptions_by_customer`. Never a table scan, so a
/// check costs the same with a hundred subscriptions stored or a million
/// (`the_hot_path_reads_use_an_index` below; `make bench` measures it).
pub(super) const BY_KEY: &str =
    "SELECT version, doc FROM subscriptions WHERE marketplace = ?1 AND id = ?2";
pub(super) const BY_CUSTOMER: &str = "SELECT marketplace, id, version, doc FROM subscriptions
     WHERE customer_marketplace = ?1 AND customer_id = ?2
     ORDER BY marketplace, id";

#[async_trait]
impl Subscriptions for SqliteStore {
    async fn get(&self, key: &SubscriptionKey) -> Result<Option<Subscription>, StoreError> {
        let key = key.clone();
        self.read(move |tx| {
            let mkt = key.marketplace.as_str();
            let row: Option<(i64, String)> = tx
                .prepare_cached(BY_KEY)?
                .query_row(params![mkt, key.id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            row.map(|(version, doc)| load_subscription(tx, mkt, &key.id, version, &doc))
                .transpose()
        })
        .await
    }

    /// Ordered by `recorded_at`, then by insertion.
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
            let what = format!("log entry of {key}");
            docs.iter()
                .map(|doc| codec::from_json(doc, &what))
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
            let mut stmt = tx.prepare_cached(BY_CUSTOMER)?;
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

/// The stored version of a subscription; 0 if it was never stored.
pub(super) fn current_version(
    tx: &Transaction<'_>,
    key: &SubscriptionKey,
) -> Result<u64, StoreError> {
    let v: Option<i64> = tx
        .prepare_cached("SELECT version FROM subscriptions WHERE marketplace = ?1 AND id = ?2")?
        .query_row(params![key.marketplace.as_str(), key.id], |row| row.get(0))
        .optional()?;
    v.map_or(Ok(0), |v| {
        codec::version_from_i64(v, &format!("subscription {key}"))
    })
}

/// A subscription row with its count of seat holders filled in.
fn load_subscription(
    tx: &Transaction<'_>,
    marketplace: &str,
    id: &str,
    version: i64,
    doc: &str,
) -> Result<Subscription, StoreError> {
    let what = format!("subscription {marketplace}:{id}");
    codec::state_from_doc(
        doc,
        codec::version_from_i64(version, &what)?,
        seats_used(tx, marketplace, id)?,
        &what,
    )
}

#[cfg(test)]
mod tests {
    use super::{BY_CUSTOMER, BY_KEY};
    use crate::store::sqlite::SqliteStore;

    /// `EXPLAIN QUERY PLAN` of each hot-path read: an index search, never a
    /// scan of the table.
    #[tokio::test]
    async fn the_hot_path_reads_use_an_index() {
        let store = SqliteStore::open_in_memory().unwrap();
        let plans = store
            .run(|conn| {
                let mut plans = Vec::new();
                for sql in [BY_KEY, BY_CUSTOMER] {
                    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let detail: Vec<String> = stmt
                        .query_map(["github", "1"], |row| row.get::<_, String>(3))?
                        .collect::<Result<_, _>>()?;
                    plans.push(detail.join("; "));
                }
                Ok(plans)
            })
            .await
            .unwrap();
        assert!(plans[0].contains("USING PRIMARY KEY"), "{}", plans[0]);
        assert!(
            plans[1].contains("USING INDEX subscriptions_by_customer"),
            "{}",
            plans[1]
        );
        for plan in &plans {
            assert!(!plan.contains("SCAN"), "a table scan: {plan}");
        }
    }
}
