//! [`Deliveries`] on SQLite: the `deliveries` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::model::Marketplace;
use crate::store::{Deliveries, Delivery, DeliveryStatus, Recorded, StoreError, codec};

#[async_trait]
impl Deliveries for SqliteStore {
    async fn record_delivery(&self, delivery: &Delivery) -> Result<Recorded, StoreError> {
        let d = delivery.clone();
        let received = codec::time_text(d.received_at)?;
        let expires = codec::time_text(d.expires_at)?;
        self.write(move |tx| {
            let mkt = d.marketplace.as_str();
            let status: Option<String> = tx
                .prepare_cached(
                    "SELECT status FROM deliveries
                     WHERE marketplace = ?1 AND id = ?2 AND expires_at > ?3",
                )?
                .query_row(params![mkt, d.id, received], |row| row.get(0))
                .optional()?;
            if let Some(status) = status {
                let what = format!("delivery {}:{}", d.marketplace, d.id);
                return Ok(codec::recorded(codec::parse_status(&status, &what)?));
            }
            // Absent or expired: (re)record it as pending.
            tx.prepare_cached(
                "INSERT OR REPLACE INTO deliveries
                     (marketplace, id, kind, status, body_sha256, body, received_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                mkt,
                d.id,
                d.kind,
                DeliveryStatus::Pending.as_str(),
                d.body_sha256,
                d.body,
                received,
                expires
            ])?;
            Ok(Recorded::New)
        })
        .await
    }

    async fn delivery(
        &self,
        marketplace: Marketplace,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, StoreError> {
        let id = id.to_owned();
        let now = codec::time_text(now)?;
        self.read(move |tx| {
            let row = tx
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries
                     WHERE marketplace = ?1 AND id = ?2 AND expires_at > ?3"
                ))?
                .query_row(params![marketplace.as_str(), id, now], delivery_from_row)
                .optional()?;
            row.map(DeliveryRow::into_delivery).transpose()
        })
        .await
    }

    async fn pending_deliveries(
        &self,
        marketplace: Marketplace,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now = codec::time_text(now)?;
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries
                 WHERE marketplace = ?1 AND status = ?2 AND expires_at > ?3
                 ORDER BY received_at, id"
            ))?;
            let rows = stmt
                .query_map(
                    params![marketplace.as_str(), DeliveryStatus::Pending.as_str(), now],
                    delivery_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(DeliveryRow::into_delivery).collect()
        })
        .await
    }
}

const DELIVERY_COLUMNS: &str =
    "marketplace, id, kind, status, body_sha256, body, received_at, expires_at";

fn delivery_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        marketplace: row.get(0)?,
        id: row.get(1)?,
        kind: row.get(2)?,
        status: row.get(3)?,
        body_sha256: row.get(4)?,
        body: row.get(5)?,
        received_at: row.get(6)?,
        expires_at: row.get(7)?,
    })
}

/// A `deliveries` row as stored, before validation.
struct DeliveryRow {
    marketplace: String,
    id: String,
    kind: String,
    status: String,
    body_sha256: String,
    body: Option<Vec<u8>>,
    received_at: String,
    expires_at: String,
}

impl DeliveryRow {
    fn into_delivery(self) -> Result<Delivery, StoreError> {
        let what = &format!("delivery {}:{}", self.marketplace, self.id);
        Ok(Delivery {
            marketplace: codec::parse_marketplace(&self.marketplace, what)?,
            status: codec::parse_status(&self.status, what)?,
            received_at: codec::parse_time(&self.received_at, what)?,
            expires_at: codec::parse_time(&self.expires_at, what)?,
            id: self.id,
            kind: self.kind,
            body_sha256: self.body_sha256,
            body: self.body,
        })
    }
}
