//! [`SeatClaims`] on DynamoDB: the `seat_holders` string set of the state
//! item (see "Seat holders" in the module docs).

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue as Av, ReturnValue, ReturnValuesOnConditionCheckFailure,
};

use super::items::holders;
use super::keys::{Item, STATE_SK, n, s, sub_pk};
use super::{DynamoStore, sdk_error};
use crate::model::SubscriptionKey;
use crate::store::{SeatClaim, SeatClaims, StoreError, codec};

#[async_trait]
impl SeatClaims for DynamoStore {
    /// One conditional `UpdateItem` adding `user` to `seat_holders`.
    async fn claim_seat(
        &self,
        key: &SubscriptionKey,
        user: &str,
        limit: u32,
    ) -> Result<SeatClaim, StoreError> {
        let pk = sub_pk(key);
        let what = format!("claim seat on {pk}");
        // No seats at all: nothing to write, only the verdict to read.
        if limit == 0 {
            let old = self.get_item(pk.clone(), STATE_SK).await?;
            return seat_verdict(key, user, old.as_ref(), &pk);
        }
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(pk.clone(), STATE_SK)))
            .update_expression("ADD seat_holders :users")
            .condition_expression(
                "attribute_exists(PK) AND (attribute_not_exists(seat_holders) OR \
                 (NOT contains(seat_holders, :user) AND size(seat_holders) < :limit))",
            )
            .expression_attribute_values(":users", Av::Ss(vec![user.to_owned()]))
            .expression_attribute_values(":user", s(user))
            .expression_attribute_values(":limit", n(limit))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match res {
            Ok(out) => {
                let new = out.attributes.unwrap_or_default();
                return Ok(SeatClaim::Granted {
                    used: codec::seat_count(holders(&new, &pk)?.len(), &pk)?,
                });
            }
            Err(SdkError::ServiceError(se)) => match se.err() {
                UpdateItemError::ConditionalCheckFailedException(ccf) => match ccf.item() {
                    Some(old) => Some(old.clone()),
                    None => self.get_item(pk.clone(), STATE_SK).await?,
                },
                _ => return Err(sdk_error(&what, SdkError::ServiceError(se))),
            },
            Err(e) => return Err(sdk_error(&what, e)),
        };
        seat_verdict(key, user, old.as_ref(), &pk)
    }

    /// One conditional `UpdateItem` removing `user` from `seat_holders`.
    async fn release_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError> {
        let pk = sub_pk(key);
        let what = format!("release seat on {pk}");
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(pk, STATE_SK)))
            .update_expression("DELETE seat_holders :users")
            .condition_expression("contains(seat_holders, :user)")
            .expression_attribute_values(":users", Av::Ss(vec![user.to_owned()]))
            .expression_attribute_values(":user", s(user))
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
}

/// Why a claim was not granted, from the state item as it was.
fn seat_verdict(
    key: &SubscriptionKey,
    user: &str,
    old: Option<&Item>,
    what: &str,
) -> Result<SeatClaim, StoreError> {
    let Some(old) = old else {
        return Err(codec::no_subscription(key));
    };
    let held = holders(old, what)?;
    let used = codec::seat_count(held.len(), what)?;
    Ok(if held.contains(user) {
        SeatClaim::AlreadyHeld { used }
    } else {
        SeatClaim::LimitReached { used }
    })
}
