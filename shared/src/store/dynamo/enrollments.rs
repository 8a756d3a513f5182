//! [`Enrollments`] on DynamoDB: a count item and one item per member in
//! the group's partition (see "Capped groups" in the module docs).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::counted::Cancelled;
use super::items::{attr_s, item_name};
use super::keys::{COUNT_SK, Item, MEMBER_SK_PREFIX, PK, SK, group_pk, member_sk, n, s};
use super::{DynamoStore, build_error, sdk_error};
use crate::store::{Enrolled, Enrollment, Enrollments, GroupKey, StoreError, codec};

const MEMBERS: &str = "members";
const MEMBER: &str = "member";
const SUBSCRIPTION: &str = "subscription";
const SINCE: &str = "since";

/// Attempts when other transactions keep touching the same count item.
/// Enrollments of one group are rare (people buying); a burst settles fast.
const MAX_ATTEMPTS: u32 = 32;

#[async_trait]
impl Enrollments for DynamoStore {
    async fn enroll(
        &self,
        group: &GroupKey,
        member: &str,
        subscription: &str,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Enrolled, StoreError> {
        let pk = group_pk(group)?;
        let since = codec::time_text(now)?;
        let what = format!("enroll {member} in {pk}");
        for attempt in 0..MAX_ATTEMPTS {
            // A cap of 0 admits nobody new: the count's condition could not
            // say so for a group whose count item does not exist yet.
            if cap == Some(0) {
                return Ok(match self.enrollment(group, member).await? {
                    Some(held) => verdict(held, subscription),
                    None => Enrolled::Full { cap: 0 },
                });
            }
            let put = Put::builder()
                .table_name(&self.table)
                .item(PK, s(&pk))
                .item(SK, s(member_sk(member)))
                .item(MEMBER, s(member))
                .item(SUBSCRIPTION, s(subscription))
                .item(SINCE, s(&since))
                .condition_expression("attribute_not_exists(PK)")
                .build()
                .map_err(|e| build_error(&what, e))?;
            let mut count = Update::builder()
                .table_name(&self.table)
                .set_key(Some(self.key(pk.clone(), COUNT_SK)))
                .update_expression("ADD #members :one")
                .expression_attribute_names("#members", MEMBERS)
                .expression_attribute_values(":one", n(1));
            if let Some(cap) = cap {
                count = count
                    .condition_expression("attribute_not_exists(#members) OR #members < :cap")
                    .expression_attribute_values(":cap", n(cap));
            }
            let count = count.build().map_err(|e| build_error(&what, e))?;
            let actions = vec![
                TransactWriteItem::builder().put(put).build(),
                TransactWriteItem::builder().update(count).build(),
            ];
            match self.transact_counted(&what, actions).await {
                Ok(()) => return Ok(Enrolled::New),
                Err(Cancelled::Member) => match self.enrollment(group, member).await? {
                    Some(held) => return Ok(verdict(held, subscription)),
                    // It left in between: enroll again.
                    None => continue,
                },
                Err(Cancelled::Count) => {
                    return Ok(Enrolled::Full {
                        cap: cap.unwrap_or_default(),
                    });
                }
                Err(Cancelled::Conflict) => backoff(attempt).await,
                Err(Cancelled::Other(e)) => return Err(e),
            }
        }
        Err(gave_up(&what))
    }

    async fn enrollment(
        &self,
        group: &GroupKey,
        member: &str,
    ) -> Result<Option<Enrollment>, StoreError> {
        let pk = group_pk(group)?;
        self.get_item(pk, &member_sk(member))
            .await?
            .map(|item| enrollment_from_item(&item))
            .transpose()
    }

    /// One strongly consistent query of the group's member items.
    async fn enrollments(&self, group: &GroupKey) -> Result<Vec<Enrollment>, StoreError> {
        let pk = group_pk(group)?;
        let what = format!("members of {pk}");
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("PK = :pk AND begins_with(SK, :member)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":member", s(MEMBER_SK_PREFIX));
        let mut all: Vec<Enrollment> = self
            .query_all(&what, query)
            .await?
            .iter()
            .map(enrollment_from_item)
            .collect::<Result<_, _>>()?;
        // The sort key orders by `MEMBER#<member>`, which is member order;
        // sorting again keeps the promise whatever the key encoding.
        all.sort_by(|a, b| a.member.cmp(&b.member));
        Ok(all)
    }

    /// One `UpdateItem` of the member item, conditional on its holder.
    async fn transfer_enrollment(
        &self,
        group: &GroupKey,
        member: &str,
        from: &str,
        to: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let pk = group_pk(group)?;
        let what = format!("transfer {member} in {pk}");
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(pk, &member_sk(member))))
            .update_expression("SET #sub = :to, #since = :since")
            .condition_expression("#sub = :from")
            .expression_attribute_names("#sub", SUBSCRIPTION)
            .expression_attribute_names("#since", SINCE)
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":to", s(to))
            .expression_attribute_values(":since", s(codec::time_text(now)?))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error(&what, e)),
        }
    }

    async fn unenroll(
        &self,
        group: &GroupKey,
        member: &str,
        subscription: &str,
    ) -> Result<bool, StoreError> {
        let pk = group_pk(group)?;
        let what = format!("unenroll {member} from {pk}");
        for attempt in 0..MAX_ATTEMPTS {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(self.key(pk.clone(), &member_sk(member))))
                .condition_expression("#sub = :sub")
                .expression_attribute_names("#sub", SUBSCRIPTION)
                .expression_attribute_values(":sub", s(subscription))
                .build()
                .map_err(|e| build_error(&what, e))?;
            let count = Update::builder()
                .table_name(&self.table)
                .set_key(Some(self.key(pk.clone(), COUNT_SK)))
                .update_expression("ADD #members :minus_one")
                .expression_attribute_names("#members", MEMBERS)
                .expression_attribute_values(":minus_one", n(-1))
                .build()
                .map_err(|e| build_error(&what, e))?;
            let actions = vec![
                TransactWriteItem::builder().delete(delete).build(),
                TransactWriteItem::builder().update(count).build(),
            ];
            match self.transact_counted(&what, actions).await {
                Ok(()) => return Ok(true),
                Err(Cancelled::Member) => return Ok(false),
                Err(Cancelled::Conflict) => backoff(attempt).await,
                Err(Cancelled::Count) => {
                    return Err(StoreError::Backend(format!(
                        "{what}: the count refused an unconditional update"
                    )));
                }
                Err(Cancelled::Other(e)) => return Err(e),
            }
        }
        Err(gave_up(&what))
    }
}

fn verdict(held: Enrollment, subscription: &str) -> Enrolled {
    if held.subscription == subscription {
        Enrolled::Already
    } else {
        Enrolled::HeldBy(held)
    }
}

fn enrollment_from_item(item: &Item) -> Result<Enrollment, StoreError> {
    let what = item_name(item);
    Ok(Enrollment {
        member: attr_s(item, MEMBER, what)?.to_owned(),
        subscription: attr_s(item, SUBSCRIPTION, what)?.to_owned(),
        since: codec::parse_time(attr_s(item, SINCE, what)?, what)?,
    })
}

fn gave_up(what: &str) -> StoreError {
    StoreError::Transient(format!(
        "{what}: gave up after {MAX_ATTEMPTS} conflicting transactions"
    ))
}

/// Jittered exponential backoff, capped at 50 ms.
pub(super) async fn backoff(attempt: u32) {
    let cap_us = (1u64 << attempt.min(10)) * 50;
    let mut b = [0u8; 8];
    let jitter = match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b) % cap_us.max(1),
        Err(_) => cap_us / 2,
    };
    tokio::time::sleep(Duration::from_micros(jitter.min(50_000))).await;
}
