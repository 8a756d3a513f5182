//! [`Outbox`] on DynamoDB: one item per applied change, `PK=OUTBOX`,
//! `SK=<message id>` (put by the commit's own `TransactWriteItems`), and
//! dead letters under `PK=NOTIFY_DEAD`. The table's stream carries every
//! new outbox item to the sender (`infra/`: an event source mapping on
//! purchase-webhook, filtered on `PK = OUTBOX` inserts).

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Delete, Put, ReturnValue, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::items::doc;
use super::keys::{DOC, PK, SK, VERSION, n, s};
use super::{DynamoStore, build_error, sdk_error};
use crate::store::outbox::{check_settle, outbox_conflict};
use crate::store::{DeadLetter, Outbox, OutboxEntry, StoreError, codec};

/// The partition of outbox entries (what the stream filter matches).
pub(super) const OUTBOX_PK: &str = "OUTBOX";
/// The partition of dead letters.
const DEAD_PK: &str = "NOTIFY_DEAD";
/// When an entry is due, epoch nanoseconds.
const DUE_AT_NS: &str = "due_at_ns";
/// When a letter died, epoch nanoseconds (for ordering).
const DEAD_AT_NS: &str = "dead_at_ns";

impl DynamoStore {
    /// The `Put` of a new outbox entry, for a commit's transaction.
    pub(super) fn outbox_put(&self, entry: &OutboxEntry) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .put(self.entry_put(entry, None)?)
            .build())
    }

    /// A `Put` of `entry`, conditional on the stored version when given.
    fn entry_put(&self, entry: &OutboxEntry, expected: Option<u64>) -> Result<Put, StoreError> {
        let what = format!("outbox entry {}", entry.id);
        let mut put = Put::builder()
            .table_name(&self.table)
            .item(PK, s(OUTBOX_PK))
            .item(SK, s(&entry.id))
            .item(DOC, s(codec::to_json(entry, &what)?))
            .item(VERSION, n(entry.version))
            .item(DUE_AT_NS, n(codec::epoch_ns(entry.due_at)?));
        if let Some(v) = expected {
            put = put
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(v));
        }
        put.build().map_err(|e| build_error(&what, e))
    }

    fn dead_put(&self, letter: &DeadLetter) -> Result<TransactWriteItem, StoreError> {
        let what = format!("dead letter {}", letter.id);
        let put = Put::builder()
            .table_name(&self.table)
            .item(PK, s(DEAD_PK))
            .item(SK, s(dead_sk(&letter.id, &letter.endpoint)))
            .item(DOC, s(codec::to_json(letter, &what)?))
            .item(DEAD_AT_NS, n(codec::epoch_ns(letter.dead_at)?))
            .build()
            .map_err(|e| build_error(&what, e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

fn dead_sk(id: &str, endpoint: &str) -> String {
    format!("{id}#{endpoint}")
}

#[async_trait]
impl Outbox for DynamoStore {
    /// A `Query` of the outbox partition, filtered on `due_at_ns`: the
    /// outbox holds only changes not yet delivered everywhere, so it stays
    /// small however large the table grows.
    async fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let what = "query the outbox";
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .filter_expression("due_at_ns <= :now")
            .expression_attribute_values(":pk", s(OUTBOX_PK))
            .expression_attribute_values(":now", n(codec::epoch_ns(now)?))
            .consistent_read(true);
        let mut entries = self
            .query_all(what, query)
            .await?
            .iter()
            .map(|item| doc::<OutboxEntry>(item, "outbox entry"))
            .collect::<Result<Vec<_>, _>>()?;
        entries.sort_by(|a, b| (a.due_at, &a.id).cmp(&(b.due_at, &b.id)));
        entries.truncate(limit);
        Ok(entries)
    }

    /// One `TransactWriteItems`: the entry's `Put` or `Delete` (conditional
    /// on its version) and a `Put` per dead letter.
    async fn settle_notification(
        &self,
        id: &str,
        expected_version: u64,
        next: Option<&OutboxEntry>,
        dead: &[DeadLetter],
    ) -> Result<(), StoreError> {
        check_settle(id, expected_version, next)?;
        let what = format!("settle outbox entry {id}");
        let first = match next {
            Some(entry) => TransactWriteItem::builder()
                .put(self.entry_put(entry, Some(expected_version))?)
                .build(),
            None => TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(self.key(OUTBOX_PK.to_owned(), id)))
                        .condition_expression("version = :expected")
                        .expression_attribute_values(":expected", n(expected_version))
                        .build()
                        .map_err(|e| build_error(&what, e))?,
                )
                .build(),
        };
        let mut actions = vec![first];
        for letter in dead {
            actions.push(self.dead_put(letter)?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) => match se.err() {
                // Another sender wrote or removed the entry first.
                TransactWriteItemsError::TransactionCanceledException(tce)
                    if tce.cancellation_reasons().iter().any(|r| {
                        matches!(
                            r.code(),
                            Some("ConditionalCheckFailed" | "TransactionConflict")
                        )
                    }) =>
                {
                    Err(outbox_conflict(id, expected_version))
                }
                TransactWriteItemsError::TransactionCanceledException(_) => Err(
                    StoreError::Transient(format!("{what}: transaction cancelled")),
                ),
                _ => Err(sdk_error(&what, SdkError::ServiceError(se))),
            },
            Err(e) => Err(sdk_error(&what, e)),
        }
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(DEAD_PK))
            .consistent_read(true);
        let mut letters = self
            .query_all("query the dead letters", query)
            .await?
            .iter()
            .map(|item| doc::<DeadLetter>(item, "dead letter"))
            .collect::<Result<Vec<_>, _>>()?;
        letters
            .sort_by(|a, b| (a.dead_at, &a.id, &a.endpoint).cmp(&(b.dead_at, &b.id, &b.endpoint)));
        Ok(letters)
    }

    async fn remove_dead_letter(&self, id: &str, endpoint: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(DEAD_PK.to_owned(), &dead_sk(id, endpoint))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("remove dead letter {id}"), e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}
