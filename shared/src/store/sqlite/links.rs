//! [`UserLinks`] on SQLite: the `user_links` table, one row per link with
//! its expiry. Reads skip expired rows; every write also sweeps them (of
//! every user: the `expires_at` index makes that one range delete), which
//! is the embedded store's stand-in for DynamoDB's TTL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};

use super::SqliteStore;
use crate::model::{AppUser, CustomerKey, Marketplace};
use crate::store::{StoreError, UserLink, UserLinks, codec};

/// Deletes every link expired at `now`.
fn sweep(tx: &Transaction<'_>, now: &str) -> Result<(), StoreError> {
    tx.prepare_cached("DELETE FROM user_links WHERE expires_at <= ?1")?
        .execute(params![now])?;
    Ok(())
}

/// Writes (or overwrites, renewing) one link.
fn put(tx: &Transaction<'_>, user: &str, link: &UserLink) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO user_links
             (user, customer_marketplace, customer_id, linked_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        user,
        link.customer.marketplace.as_str(),
        link.customer.id,
        codec::time_text(link.linked_at)?,
        codec::time_text(link.expires_at)?,
    ])?;
    Ok(())
}

#[async_trait]
impl UserLinks for SqliteStore {
    /// "Now", for the sweep, is the link's `linked_at`.
    async fn link_user(&self, user: &AppUser, link: &UserLink) -> Result<(), StoreError> {
        let user = user.0.clone();
        let link = link.clone();
        let now = codec::time_text(link.linked_at)?;
        self.write(move |tx| {
            sweep(tx, &now)?;
            put(tx, &user, &link)
        })
        .await
    }

    /// One transaction: readers see the old set or the new one.
    async fn replace_links(
        &self,
        user: &AppUser,
        marketplace: Marketplace,
        links: &[UserLink],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        codec::check_links(marketplace, links)?;
        let user = user.0.clone();
        let links = links.to_vec();
        let now = codec::time_text(now)?;
        self.write(move |tx| {
            sweep(tx, &now)?;
            tx.prepare_cached(
                "DELETE FROM user_links WHERE user = ?1 AND customer_marketplace = ?2",
            )?
            .execute(params![user, marketplace.as_str()])?;
            for link in &links {
                put(tx, &user, link)?;
            }
            Ok(())
        })
        .await
    }

    /// In key order (marketplace, then customer id), like DynamoDB's.
    async fn user_links(
        &self,
        user: &AppUser,
        now: DateTime<Utc>,
    ) -> Result<Vec<UserLink>, StoreError> {
        let user = user.0.clone();
        let now = codec::time_text(now)?;
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT customer_marketplace, customer_id, linked_at, expires_at FROM user_links
                 WHERE user = ?1 AND expires_at > ?2
                 ORDER BY customer_marketplace, customer_id",
            )?;
            let rows = stmt
                .query_map(params![user, now], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let what = format!("link of {user}");
            rows.into_iter()
                .map(|(mkt, id, linked_at, expires_at)| {
                    Ok(UserLink {
                        customer: CustomerKey::new(codec::parse_marketplace(&mkt, &what)?, id),
                        linked_at: codec::parse_time(&linked_at, &what)?,
                        expires_at: codec::parse_time(&expires_at, &what)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn unlink_user(
        &self,
        user: &AppUser,
        customer: &CustomerKey,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let user = user.0.clone();
        let customer = customer.clone();
        let now = codec::time_text(now)?;
        self.write(move |tx| {
            let live = tx
                .prepare_cached(
                    "DELETE FROM user_links
                     WHERE user = ?1 AND customer_marketplace = ?2 AND customer_id = ?3
                       AND expires_at > ?4",
                )?
                .execute(params![
                    user,
                    customer.marketplace.as_str(),
                    customer.id,
                    now
                ])?;
            sweep(tx, &now)?;
            Ok(live > 0)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::fixtures::at;

    /// A development database from before links expired keeps its other
    /// data; its links, of unknown age, count as expired and are swept.
    #[tokio::test]
    async fn a_version_2_file_gets_link_expiry_and_its_old_links_grant_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            let conn = rusqlite::Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE user_links (
                     user TEXT NOT NULL, customer_marketplace TEXT NOT NULL,
                     customer_id TEXT NOT NULL,
                     PRIMARY KEY (user, customer_marketplace, customer_id)) WITHOUT ROWID;
                 INSERT INTO user_links VALUES ('github:1', 'github', '42');
                 PRAGMA user_version = 2;",
            )
            .expect("old schema");
        }
        let store = SqliteStore::open(&path).expect("upgrade");
        let user = AppUser("github:1".into());
        assert_eq!(store.user_links(&user, at(0)).await, Ok(vec![]));
        let kept: i64 = store
            .run(|conn| Ok(conn.query_row("SELECT count(*) FROM user_links", [], |r| r.get(0))?))
            .await
            .expect("count");
        assert_eq!(kept, 1, "still there until a write sweeps it");
        let link = UserLink::new(
            CustomerKey::new(Marketplace::Github, "7"),
            at(0),
            chrono::Duration::days(1),
        );
        store.link_user(&user, &link).await.expect("link");
        assert_eq!(store.user_links(&user, at(1)).await, Ok(vec![link]));
        let left: i64 = store
            .run(|conn| Ok(conn.query_row("SELECT count(*) FROM user_links", [], |r| r.get(0))?))
            .await
            .expect("count");
        assert_eq!(left, 1, "the old link was swept");
    }
}
