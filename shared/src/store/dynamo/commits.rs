//! [`Commits`] on DynamoDB: one `TransactWriteItems` of state, log entry,
//! delivery mark and outbox entry (see "Commits" in the module docs).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{CancellationReason, ConditionCheck, Put, TransactWriteItem, Update};

use super::keys::{
    DELIVERY_SK, DOC, PK, SK, STATE_SK, STATUS, cust_pk, delivery_pk, log_sk, n, s, sub_pk,
    ttl_seconds,
};
use super::{DynamoStore, build_error, sdk_error};
use crate::store::{Commit, Commits, DeliveryMark, DeliveryStatus, OutboxEntry, StoreError, codec};

/// Positions of the actions in a commit transaction; cancellation reasons
/// come back in the same order.
const TX_STATE: usize = 0;
const TX_DELIVERY: usize = 2;

#[async_trait]
impl Commits for DynamoStore {
    /// One `TransactWriteItems`: state update (or version check), log entry
    /// put and delivery mark, in that order. "Now" for the delivery's expiry
    /// is the log entry's `recorded_at`.
    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        codec::check_commit(commit)?;
        let subject = sub_pk(&commit.subscription);
        let mut actions = vec![self.state_action(commit, &subject)?];

        let log = Put::builder()
            .table_name(&self.table)
            .item(PK, s(&subject))
            .item(SK, s(log_sk(&commit.log)?))
            .item(DOC, s(codec::to_json(&commit.log, &subject)?))
            .build()
            .map_err(|e| build_error(&subject, e))?;
        actions.push(TransactWriteItem::builder().put(log).build());

        if let Some(mark) = &commit.delivery {
            actions.push(self.delivery_action(commit, mark, &subject)?);
        }
        // Last, so the positions above (read back from cancellation
        // reasons) do not move.
        if let Some(entry) = OutboxEntry::of_commit(commit) {
            actions.push(self.outbox_put(&entry)?);
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
                TransactWriteItemsError::TransactionCanceledException(tce) => {
                    Err(cancelled_commit(commit, tce.cancellation_reasons()))
                }
                _ => Err(sdk_error(
                    &format!("commit {subject}"),
                    SdkError::ServiceError(se),
                )),
            },
            Err(e) => Err(sdk_error(&format!("commit {subject}"), e)),
        }
    }
}

impl DynamoStore {
    /// The state action of a commit: an `Update` (so the seat counter
    /// survives) or, for a log-only commit, a `ConditionCheck`; both
    /// conditional on the version read.
    fn state_action(
        &self,
        commit: &Commit,
        subject: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let key = self.key(sub_pk(&commit.subscription), STATE_SK);
        let (condition, expected) = if commit.expected_version == 0 {
            ("attribute_not_exists(PK)", None)
        } else {
            ("version = :expected", Some(n(commit.expected_version)))
        };
        let Some(state) = &commit.state else {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .condition_expression(condition)
                .set_expression_attribute_values(
                    expected.map(|v| HashMap::from([(":expected".to_owned(), v)])),
                )
                .build()
                .map_err(|e| build_error(subject, e))?;
            return Ok(TransactWriteItem::builder().condition_check(check).build());
        };

        // `check_commit` made sure this is `expected_version + 1`.
        let version = state.version;
        // Named attributes only, so the seat counter survives: a commit
        // creates it (at 0) but never sets it. The unit count is mirrored
        // beside the document for the conditions of seat claims.
        const SET: &str = "SET doc = :doc, version = :version, GSI1PK = :gsi1pk, \
                           GSI1SK = :gsi1sk, seats_used = if_not_exists(seats_used, :zero)";
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression(condition)
            .expression_attribute_values(":doc", s(codec::state_doc(state)?))
            .expression_attribute_values(":version", n(version))
            .expression_attribute_values(":gsi1pk", s(cust_pk(&state.customer.key)))
            .expression_attribute_values(":gsi1sk", s(sub_pk(&commit.subscription)))
            .expression_attribute_values(":zero", n(0));
        update = match state.seats.limit {
            Some(limit) => update
                .update_expression(format!("{SET}, seat_limit = :seat_limit"))
                .expression_attribute_values(":seat_limit", n(limit)),
            None => update.update_expression(format!("{SET} REMOVE seat_limit")),
        };
        if let Some(v) = expected {
            update = update.expression_attribute_values(":expected", v);
        }
        let update = update.build().map_err(|e| build_error(subject, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The delivery action of a commit: marks the delivery done unless a
    /// live record says it already is. A record already there keeps its
    /// `kind`, `body_sha256` and `received_at`; without one they are empty
    /// and "now".
    fn delivery_action(
        &self,
        commit: &Commit,
        mark: &DeliveryMark,
        subject: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let now = codec::commit_now(commit);
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(
                self.key(delivery_pk(mark.marketplace, &mark.id), DELIVERY_SK),
            ))
            .update_expression(
                "SET #status = :done, expires_at = :ttl, expires_at_ns = :exp, \
                 received_at = if_not_exists(received_at, :now), \
                 kind = if_not_exists(kind, :none), \
                 body_sha256 = if_not_exists(body_sha256, :none) \
                 REMOVE body, GSI1PK, GSI1SK",
            )
            .condition_expression(
                "attribute_not_exists(PK) OR #status = :pending OR expires_at_ns <= :now_ns",
            )
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":done", s(DeliveryStatus::Done.as_str()))
            .expression_attribute_values(":pending", s(DeliveryStatus::Pending.as_str()))
            .expression_attribute_values(":ttl", n(ttl_seconds(mark.expires_at)))
            .expression_attribute_values(":exp", n(codec::epoch_ns(mark.expires_at)?))
            .expression_attribute_values(":now", s(codec::time_text(now)?))
            .expression_attribute_values(":now_ns", n(codec::epoch_ns(now)?))
            .expression_attribute_values(":none", s(""))
            .build()
            .map_err(|e| build_error(subject, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// Maps the cancellation reasons of a commit transaction (indexed like its
/// actions) to the store's error. A done delivery wins over a version
/// conflict: retrying a delivery that is already processed is pointless.
///
/// `TransactionConflict` means another transaction was writing one of the
/// same items at that moment (concurrent deliveries for one subscription);
/// the version just read is likely stale, so it is reported as
/// [`StoreError::Conflict`] and the caller re-reads and retries.
fn cancelled_commit(commit: &Commit, reasons: &[CancellationReason]) -> StoreError {
    let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
    let codes: Vec<&str> = (0..reasons.len()).map(code).collect();
    if let Some(mark) = &commit.delivery
        && code(TX_DELIVERY) == "ConditionalCheckFailed"
    {
        return codec::duplicate_delivery(mark.marketplace, &mark.id);
    }
    if code(TX_STATE) == "ConditionalCheckFailed" || codes.contains(&"TransactionConflict") {
        return codec::conflict(&commit.subscription, commit.expected_version);
    }
    let transient = codes.iter().any(|c| {
        matches!(
            *c,
            "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded"
        )
    });
    let message = format!(
        "commit {} cancelled: {codes:?}",
        sub_pk(&commit.subscription)
    );
    if transient {
        StoreError::Transient(message)
    } else {
        StoreError::Backend(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Disposition, LogEntry, Marketplace, SubscriptionKey};
    use chrono::DateTime;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    /// A log-only commit on `q2:1` with a delivery mark for `q2:d1`.
    fn commit() -> Commit {
        let key = SubscriptionKey::new(Marketplace::Q2, "1");
        let t = DateTime::from_timestamp(1_700_000_000, 0).expect("in range");
        Commit {
            subscription: key.clone(),
            expected_version: 3,
            state: None,
            log: LogEntry {
                subscription: key,
                event_id: "d1".into(),
                event: "changed".into(),
                effective_at: t,
                recorded_at: t,
                disposition: Disposition::Stale,
                note: String::new(),
                status_before: None,
                status_after: None,
            },
            delivery: Some(DeliveryMark {
                marketplace: Marketplace::Q2,
                id: "d1".into(),
                expires_at: t,
            }),
        }
    }

    #[test]
    fn failed_version_condition_is_a_conflict() {
        let reasons = [
            reason("ConditionalCheckFailed"),
            reason("None"),
            reason("None"),
        ];
        assert_eq!(
            cancelled_commit(&commit(), &reasons),
            codec::conflict(&SubscriptionKey::new(Marketplace::Q2, "1"), 3)
        );
    }

    #[test]
    fn failed_delivery_condition_is_a_duplicate_even_with_a_conflict() {
        let reasons = [
            reason("ConditionalCheckFailed"),
            reason("None"),
            reason("ConditionalCheckFailed"),
        ];
        assert_eq!(
            cancelled_commit(&commit(), &reasons),
            codec::duplicate_delivery(Marketplace::Q2, "d1")
        );
    }

    #[test]
    fn concurrent_transaction_on_the_same_item_is_retried_as_a_conflict() {
        let reasons = [
            reason("TransactionConflict"),
            reason("None"),
            reason("None"),
        ];
        assert!(matches!(
            cancelled_commit(&commit(), &reasons),
            StoreError::Conflict(_)
        ));
    }

    #[test]
    fn throttled_transaction_is_transient_and_validation_is_not() {
        let throttled = [reason("None"), reason("ThrottlingError")];
        assert!(matches!(
            cancelled_commit(&commit(), &throttled),
            StoreError::Transient(_)
        ));
        let invalid = [reason("ValidationError"), reason("None")];
        assert!(matches!(
            cancelled_commit(&commit(), &invalid),
            StoreError::Backend(_)
        ));
    }
}
