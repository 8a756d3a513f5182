//! [`Inventory`] on SQLite: the `subscriptions` table in id order, a page
//! at a time.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::model::{Marketplace, SubscriptionKey};
use crate::store::{Inventory, KeyPage, StoreError};

/// Keys per page.
const PAGE: i64 = 500;

#[async_trait]
impl Inventory for SqliteStore {
    /// The cursor is the last id of the previous page.
    async fn subscription_keys(
        &self,
        marketplace: Marketplace,
        cursor: Option<&str>,
    ) -> Result<KeyPage, StoreError> {
        let after = cursor.map(str::to_owned);
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT id FROM subscriptions WHERE marketplace = ?1 AND (?2 IS NULL OR id > ?2)
                 ORDER BY id LIMIT ?3",
            )?;
            let ids = stmt
                .query_map(params![marketplace.as_str(), after, PAGE], |row| {
                    row.get::<_, String>(0)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let next = (ids.len() as i64 == PAGE)
                .then(|| ids.last().cloned())
                .flatten();
            Ok(KeyPage {
                keys: ids
                    .into_iter()
                    .map(|id| SubscriptionKey::new(marketplace, id))
                    .collect(),
                next,
            })
        })
        .await
    }
}
