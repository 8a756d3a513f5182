//! [`Enrollments`] on SQLite: the `enrollments` table, one row per member.
//! Every method is one write transaction, which holds the file's write
//! lock, so the count a cap is checked against cannot change before the
//! insert.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::SqliteStore;
use crate::store::{Enrolled, Enrollment, Enrollments, GroupKey, StoreError, codec};

#[async_trait]
impl Enrollments for SqliteStore {
    async fn enroll(
        &self,
        group: &GroupKey,
        member: &str,
        subscription: &str,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Enrolled, StoreError> {
        codec::check_group(group)?;
        let since = codec::time_text(now)?;
        let group = group.clone();
        let member = member.to_owned();
        let subscription = subscription.to_owned();
        self.write(move |tx| {
            if let Some(held) = member_row(tx, &group, &member)? {
                return Ok(if held.subscription == subscription {
                    Enrolled::Already
                } else {
                    Enrolled::HeldBy(held)
                });
            }
            if let Some(cap) = cap {
                let n: i64 = tx
                    .prepare_cached(
                        "SELECT count(*) FROM enrollments
                         WHERE marketplace = ?1 AND product = ?2 AND grp = ?3",
                    )?
                    .query_row(
                        params![group.marketplace.as_str(), group.product, group.group],
                        |row| row.get(0),
                    )?;
                if codec::seat_count(n, &format!("enrollments of {group}"))? >= cap {
                    return Ok(Enrolled::Full { cap });
                }
            }
            tx.prepare_cached(
                "INSERT INTO enrollments (marketplace, product, grp, member, subscription, since)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                group.marketplace.as_str(),
                group.product,
                group.group,
                member,
                subscription,
                since
            ])?;
            Ok(Enrolled::New)
        })
        .await
    }

    async fn enrollment(
        &self,
        group: &GroupKey,
        member: &str,
    ) -> Result<Option<Enrollment>, StoreError> {
        codec::check_group(group)?;
        let group = group.clone();
        let member = member.to_owned();
        self.read(move |tx| member_row(tx, &group, &member)).await
    }

    async fn enrollments(&self, group: &GroupKey) -> Result<Vec<Enrollment>, StoreError> {
        codec::check_group(group)?;
        let group = group.clone();
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT member, subscription, since FROM enrollments
                 WHERE marketplace = ?1 AND product = ?2 AND grp = ?3
                 ORDER BY member",
            )?;
            let what = format!("enrollments of {group}");
            let rows = stmt.query_map(
                params![group.marketplace.as_str(), group.product, group.group],
                raw_row,
            )?;
            rows.map(|row| from_raw(row?, &what)).collect()
        })
        .await
    }

    async fn transfer_enrollment(
        &self,
        group: &GroupKey,
        member: &str,
        from: &str,
        to: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        codec::check_group(group)?;
        let since = codec::time_text(now)?;
        let (group, member, from, to) = (
            group.clone(),
            member.to_owned(),
            from.to_owned(),
            to.to_owned(),
        );
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE enrollments SET subscription = ?6, since = ?7
                     WHERE marketplace = ?1 AND product = ?2 AND grp = ?3 AND member = ?4
                       AND subscription = ?5",
                )?
                .execute(params![
                    group.marketplace.as_str(),
                    group.product,
                    group.group,
                    member,
                    from,
                    to,
                    since
                ])?;
            Ok(n > 0)
        })
        .await
    }

    async fn unenroll(
        &self,
        group: &GroupKey,
        member: &str,
        subscription: &str,
    ) -> Result<bool, StoreError> {
        codec::check_group(group)?;
        let (group, member, subscription) =
            (group.clone(), member.to_owned(), subscription.to_owned());
        self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "DELETE FROM enrollments
                     WHERE marketplace = ?1 AND product = ?2 AND grp = ?3 AND member = ?4
                       AND subscription = ?5",
                )?
                .execute(params![
                    group.marketplace.as_str(),
                    group.product,
                    group.group,
                    member,
                    subscription
                ])?;
            Ok(n > 0)
        })
        .await
    }
}

type RawRow = (String, String, String);

fn raw_row(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn from_raw((member, subscription, since): RawRow, what: &str) -> Result<Enrollment, StoreError> {
    Ok(Enrollment {
        member,
        subscription,
        since: codec::parse_time(&since, what)?,
    })
}

fn member_row(
    tx: &Transaction<'_>,
    group: &GroupKey,
    member: &str,
) -> Result<Option<Enrollment>, StoreError> {
    let raw = tx
        .prepare_cached(
            "SELECT member, subscription, since FROM enrollments
             WHERE marketplace = ?1 AND product = ?2 AND grp = ?3 AND member = ?4",
        )?
        .query_row(
            params![
                group.marketplace.as_str(),
                group.product,
                group.group,
                member
            ],
            raw_row,
        )
        .optional()?;
    raw.map(|raw| from_raw(raw, &format!("enrollment {group}:{member}")))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Marketplace;

    /// A development database made before enrollments existed gets their
    /// table when it is opened, and keeps its data.
    #[tokio::test]
    async fn a_version_1_file_is_upgraded_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            let conn = rusqlite::Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE subscriptions (marketplace TEXT, id TEXT);
                 INSERT INTO subscriptions VALUES ('github', 'kept');
                 PRAGMA user_version = 1;",
            )
            .expect("old schema");
        }
        let store = SqliteStore::open(&path).expect("upgrade");
        let group = GroupKey::new(Marketplace::Q2, "p", "fi");
        let at = DateTime::from_timestamp(1_772_323_200, 0).expect("in range");
        assert_eq!(
            store.enroll(&group, "u", "s", Some(1), at).await,
            Ok(Enrolled::New)
        );
        let kept: i64 = store
            .run(|conn| Ok(conn.query_row("SELECT count(*) FROM subscriptions", [], |r| r.get(0))?))
            .await
            .expect("count");
        assert_eq!(kept, 1);
    }
}
