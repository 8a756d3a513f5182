//! [`Tokens`] on SQLite: the `tokens` table, judged live by `expires_at`
//! against the "now" the caller passes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::store::{StoreError, Token, Tokens, codec};

#[async_trait]
impl Tokens for SqliteStore {
    async fn put_token(&self, token: &Token, now: DateTime<Utc>) -> Result<(), StoreError> {
        codec::check_token_kind(&token.kind)?;
        let token = token.clone();
        let now = codec::time_text(now)?;
        let expires_at = codec::time_text(token.expires_at)?;
        self.write(move |tx| {
            let live = tx
                .prepare_cached(
                    "SELECT 1 FROM tokens WHERE kind = ?1 AND id = ?2 AND expires_at > ?3",
                )?
                .exists(params![token.kind, token.id, now])?;
            if live {
                return Err(codec::duplicate_token(&token.kind));
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO tokens (kind, id, payload, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![token.kind, token.id, token.payload, expires_at])?;
            Ok(())
        })
        .await
    }

    async fn peek_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        codec::check_token_kind(kind)?;
        let kind = kind.to_owned();
        let id = id.to_owned();
        let now = codec::time_text(now)?;
        self.read(move |tx| {
            let payload = tx
                .prepare_cached(
                    "SELECT payload FROM tokens WHERE kind = ?1 AND id = ?2 AND expires_at > ?3",
                )?
                .query_row(params![kind, id, now], |row| row.get(0))
                .optional()?;
            Ok(payload)
        })
        .await
    }

    async fn take_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        codec::check_token_kind(kind)?;
        let kind = kind.to_owned();
        let id = id.to_owned();
        let now = codec::time_text(now)?;
        self.write(move |tx| {
            let payload = tx
                .prepare_cached(
                    "DELETE FROM tokens WHERE kind = ?1 AND id = ?2 AND expires_at > ?3
                     RETURNING payload",
                )?
                .query_row(params![kind, id, now], |row| row.get(0))
                .optional()?;
            Ok(payload)
        })
        .await
    }
}
