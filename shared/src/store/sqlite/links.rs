//! [`UserLinks`] on SQLite: the `user_links` table.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::model::{AppUser, CustomerKey};
use crate::store::{StoreError, UserLinks, codec};

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

    /// In key order (marketplace, then customer id), like DynamoDB's.
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
            let what = format!("link of {user}");
            rows.into_iter()
                .map(|(mkt, id)| Ok(CustomerKey::new(codec::parse_marketplace(&mkt, &what)?, id)))
                .collect()
        })
        .await
    }
}
