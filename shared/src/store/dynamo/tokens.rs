//! [`Tokens`] on DynamoDB: one item per token, judged live by
//! `expires_at_ns` against the "now" the caller passes.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};

use super::items::{attr_n, attr_s};
use super::keys::{
    EXPIRES_AT, EXPIRES_AT_NS, PAYLOAD, PK, SK, TOKEN_SK, n, s, token_pk, ttl_seconds,
};
use super::{DynamoStore, sdk_error};
use crate::store::{StoreError, Token, Tokens, codec};

#[async_trait]
impl Tokens for DynamoStore {
    /// A `PutItem` conditional on no token being live at `now`.
    async fn put_token(&self, token: &Token, now: DateTime<Utc>) -> Result<(), StoreError> {
        let pk = token_pk(&token.kind, &token.id)?;
        // Not the key: the id may be a secret (an OAuth `state`).
        let what = format!("put `{}` token", token.kind);
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(&pk))
            .item(SK, s(TOKEN_SK))
            .item(PAYLOAD, s(&token.payload))
            .item(EXPIRES_AT, n(ttl_seconds(token.expires_at)))
            .item(EXPIRES_AT_NS, n(codec::epoch_ns(token.expires_at)?))
            .condition_expression("attribute_not_exists(PK) OR expires_at_ns <= :now")
            .expression_attribute_values(":now", n(codec::epoch_ns(now)?))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se))
                if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(codec::duplicate_token(&token.kind))
            }
            Err(e) => Err(sdk_error(&what, e)),
        }
    }

    /// A consistent `GetItem`, judged live against `now` like a put is (the
    /// table's TTL deletes expired items only eventually).
    async fn peek_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let pk = token_pk(kind, id)?;
        let what = format!("peek `{kind}` token");
        let now_ns = codec::epoch_ns(now)?;
        let Some(item) = self.get_item(pk, TOKEN_SK).await? else {
            return Ok(None);
        };
        if attr_n::<i64>(&item, EXPIRES_AT_NS, &what)? <= now_ns {
            return Ok(None);
        }
        Ok(Some(attr_s(&item, PAYLOAD, &what)?.to_owned()))
    }

    /// A conditional `DeleteItem` returning the old item: of two concurrent
    /// takes, exactly one gets the payload.
    async fn take_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let pk = token_pk(kind, id)?;
        let what = format!("take `{kind}` token");
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(pk, TOKEN_SK)))
            .condition_expression("expires_at_ns > :now")
            .expression_attribute_values(":now", n(codec::epoch_ns(now)?))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match res {
            Ok(out) => {
                let old = out.attributes.ok_or_else(|| {
                    StoreError::Backend(format!("{what}: deleted, but no old item returned"))
                })?;
                Ok(Some(attr_s(&old, PAYLOAD, &what)?.to_owned()))
            }
            Err(SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    DeleteItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(&what, e)),
        }
    }
}
