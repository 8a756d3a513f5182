//! Keys and attribute names of the table layout (see the module docs), and
//! the two number encodings DynamoDB needs of times.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use chrono::{DateTime, Utc};

use crate::model::{AppUser, CustomerKey, LogEntry, Marketplace, SubscriptionKey};
use crate::store::{GroupKey, StoreError, codec};

pub(super) type Item = HashMap<String, Av>;

pub(super) const PK: &str = "PK";
pub(super) const SK: &str = "SK";
pub(super) const GSI1: &str = "GSI1";
pub(super) const GSI1PK: &str = "GSI1PK";
pub(super) const GSI1SK: &str = "GSI1SK";
pub(super) const STATE_SK: &str = "STATE";
pub(super) const DELIVERY_SK: &str = "DELIVERY";
pub(super) const TOKEN_SK: &str = "TOKEN";
pub(super) const COUNT_SK: &str = "COUNT";
pub(super) const MEMBER_SK_PREFIX: &str = "MEMBER#";
pub(super) const SEAT_SK_PREFIX: &str = "SEAT#";

pub(super) const DOC: &str = "doc";
pub(super) const VERSION: &str = "version";
pub(super) const SEATS_USED: &str = "seats_used";
pub(super) const SEAT_LIMIT: &str = "seat_limit";
pub(super) const USER: &str = "user";
pub(super) const STATUS: &str = "status";
pub(super) const KIND: &str = "kind";
pub(super) const BODY_SHA256: &str = "body_sha256";
pub(super) const BODY: &str = "body";
pub(super) const RECEIVED_AT: &str = "received_at";
pub(super) const EXPIRES_AT: &str = "expires_at";
pub(super) const EXPIRES_AT_NS: &str = "expires_at_ns";
pub(super) const PAYLOAD: &str = "payload";
pub(super) const MARKETPLACE: &str = "marketplace";
pub(super) const CUSTOMER_ID: &str = "customer_id";

pub(super) fn sub_pk(key: &SubscriptionKey) -> String {
    format!("SUB#{}#{}", key.marketplace, key.id)
}

/// A seat holder's item, in its subscription's partition.
pub(super) fn seat_sk(user: &str) -> String {
    format!("{SEAT_SK_PREFIX}{user}")
}

pub(super) fn cust_pk(key: &CustomerKey) -> String {
    format!("CUST#{}#{}", key.marketplace, key.id)
}

pub(super) fn log_sk(entry: &LogEntry) -> Result<String, StoreError> {
    Ok(format!(
        "EVT#{}#{}",
        codec::time_text(entry.recorded_at)?,
        entry.event_id
    ))
}

/// What every delivery item's `PK` starts with, up to the delivery id.
pub(super) fn delivery_prefix(marketplace: Marketplace) -> String {
    format!("DELIVERY#{marketplace}#")
}

pub(super) fn delivery_pk(marketplace: Marketplace, id: &str) -> String {
    format!("{}{id}", delivery_prefix(marketplace))
}

pub(super) fn pending_pk(marketplace: Marketplace) -> String {
    format!("PENDING#{marketplace}")
}

pub(super) fn pending_sk(received_at: DateTime<Utc>, id: &str) -> Result<String, StoreError> {
    Ok(format!("{}#{id}", codec::time_text(received_at)?))
}

pub(super) fn token_pk(kind: &str, id: &str) -> Result<String, StoreError> {
    codec::check_token_kind(kind)?;
    Ok(format!("TOKEN#{kind}#{id}"))
}

/// The partition of a capped group: its count item and one item per member.
pub(super) fn group_pk(group: &GroupKey) -> Result<String, StoreError> {
    codec::check_group(group)?;
    Ok(format!(
        "GROUP#{}#{}#{}",
        group.marketplace, group.product, group.group
    ))
}

pub(super) fn member_sk(member: &str) -> String {
    format!("{MEMBER_SK_PREFIX}{member}")
}

pub(super) fn user_pk(user: &AppUser) -> String {
    format!("USER#{}", user.0)
}

/// TTL value: epoch seconds, rounded up so TTL never removes a live item.
pub(super) fn ttl_seconds(t: DateTime<Utc>) -> i64 {
    t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)
}

pub(super) fn s(v: impl Into<String>) -> Av {
    Av::S(v.into())
}

pub(super) fn n(v: impl ToString) -> Av {
    Av::N(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_so_live_items_are_never_deleted_early() {
        let t = DateTime::from_timestamp(100, 1).unwrap();
        assert_eq!(ttl_seconds(t), 101);
        assert_eq!(ttl_seconds(DateTime::from_timestamp(100, 0).unwrap()), 100);
    }

    #[test]
    fn key_times_sort_as_strings() {
        let early = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
        let late = DateTime::from_timestamp(1_700_000_000, 400_000_000).unwrap();
        let (a, b) = (
            pending_sk(early, "z").unwrap(),
            pending_sk(late, "a").unwrap(),
        );
        assert_eq!(a.len(), b.len());
        assert!(a < b);
        assert_eq!(a, "2023-11-14T22:13:20.000000005Z#z");
    }

    #[test]
    fn a_token_kind_with_the_separator_has_no_key() {
        assert_eq!(
            token_pk("oauth_state", "a#b").as_deref(),
            Ok("TOKEN#oauth_state#a#b")
        );
        assert!(matches!(token_pk("a#b", "c"), Err(StoreError::Backend(_))));
    }
}
