//! Counted membership on DynamoDB: one item per member plus a counter on
//! another item, both written in one two-action transaction (the member
//! item first, the counter second), each under its own condition. Seat
//! holders (counter: the subscription's state item) and Q2 enrollments
//! (counter: the group's count item) are both this shape.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};

use super::{DynamoStore, sdk_error};
use crate::store::StoreError;

/// Position of the member item's action in the transaction.
pub(super) const TX_MEMBER: usize = 0;
/// Position of the counter's action.
pub(super) const TX_COUNT: usize = 1;

/// Why a counted transaction did not go through.
#[derive(Debug)]
pub(super) enum Cancelled {
    /// The member item's condition failed.
    Member,
    /// The counter's condition failed (the limit or cap).
    Count,
    /// Another transaction held one of the items: try again.
    Conflict,
    Other(StoreError),
}

impl DynamoStore {
    /// Runs a two-action counted transaction (member item first, counter
    /// second) and reads why it was cancelled.
    pub(super) async fn transact_counted(
        &self,
        what: &str,
        actions: Vec<TransactWriteItem>,
    ) -> Result<(), Cancelled> {
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
                    Err(cancelled(what, tce.cancellation_reasons()))
                }
                // A transaction in flight on the same items (DynamoDB's
                // own idempotency window) is a conflict like any other.
                TransactWriteItemsError::TransactionInProgressException(_) => {
                    Err(Cancelled::Conflict)
                }
                _ => Err(Cancelled::Other(sdk_error(
                    what,
                    SdkError::ServiceError(se),
                ))),
            },
            Err(e) => Err(Cancelled::Other(sdk_error(what, e))),
        }
    }
}

/// Reads the cancellation reasons of a counted transaction by position.
fn cancelled(what: &str, reasons: &[CancellationReason]) -> Cancelled {
    let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
    if code(TX_MEMBER) == "ConditionalCheckFailed" {
        return Cancelled::Member;
    }
    if code(TX_COUNT) == "ConditionalCheckFailed" {
        return Cancelled::Count;
    }
    let codes: Vec<&str> = (0..reasons.len()).map(code).collect();
    if codes.contains(&"TransactionConflict") {
        return Cancelled::Conflict;
    }
    let throttled = codes.iter().any(|c| {
        matches!(
            *c,
            "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded"
        )
    });
    let message = format!("{what} cancelled: {codes:?}");
    Cancelled::Other(if throttled {
        StoreError::Transient(message)
    } else {
        StoreError::Backend(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn cancellation_reasons_are_read_by_position() {
        let read = |codes: &[&str]| {
            let reasons: Vec<_> = codes.iter().map(|c| reason(c)).collect();
            match cancelled("x", &reasons) {
                Cancelled::Member => "member",
                Cancelled::Count => "count",
                Cancelled::Conflict => "conflict",
                Cancelled::Other(StoreError::Transient(_)) => "transient",
                Cancelled::Other(_) => "other",
            }
        };
        assert_eq!(read(&["ConditionalCheckFailed", "None"]), "member");
        assert_eq!(
            read(&["ConditionalCheckFailed", "ConditionalCheckFailed"]),
            "member",
            "a member already there wins: a held seat or place may be its own"
        );
        assert_eq!(read(&["None", "ConditionalCheckFailed"]), "count");
        assert_eq!(read(&["None", "TransactionConflict"]), "conflict");
        assert_eq!(read(&["TransactionConflict", "None"]), "conflict");
        assert_eq!(read(&["ThrottlingError", "None"]), "transient");
        assert_eq!(read(&["None", "ThrottlingError"]), "transient");
        assert_eq!(read(&["ValidationError", "None"]), "other");
    }
}
