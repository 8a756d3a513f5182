//! [`Deliveries`] on DynamoDB: one item per delivery, listed in the
//! `PENDING#<mkt>` partitions of `GSI1` while pending.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue as Av, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::items::{attr_s, delivery_from_item};
use super::keys::{
    BODY, BODY_SHA256, DELIVERY_SK, EXPIRES_AT, EXPIRES_AT_NS, GSI1, GSI1PK, GSI1SK, Item, KIND,
    PK, RECEIVED_AT, SK, STATUS, delivery_pk, delivery_prefix, n, pending_pk, pending_sk, s,
    ttl_seconds,
};
use super::{DynamoStore, sdk_error};
use crate::model::Marketplace;
use crate::store::{Deliveries, Delivery, DeliveryStatus, Recorded, StoreError, codec};

#[async_trait]
impl Deliveries for DynamoStore {
    /// A conditional `PutItem` of a pending record; "now" is the delivery's
    /// `received_at`. An expired record is overwritten as new.
    async fn record_delivery(&self, delivery: &Delivery) -> Result<Recorded, StoreError> {
        let pk = delivery_pk(delivery.marketplace, &delivery.id);
        let what = format!("record {pk}");
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(&pk))
            .item(SK, s(DELIVERY_SK))
            .item(STATUS, s(DeliveryStatus::Pending.as_str()))
            .item(KIND, s(&delivery.kind))
            .item(BODY_SHA256, s(&delivery.body_sha256))
            .item(RECEIVED_AT, s(codec::time_text(delivery.received_at)?))
            .item(EXPIRES_AT, n(ttl_seconds(delivery.expires_at)))
            .item(EXPIRES_AT_NS, n(codec::epoch_ns(delivery.expires_at)?))
            .item(GSI1PK, s(pending_pk(delivery.marketplace)))
            .item(GSI1SK, s(pending_sk(delivery.received_at, &delivery.id)?))
            .condition_expression("attribute_not_exists(PK) OR expires_at_ns <= :now")
            .expression_attribute_values(":now", n(codec::epoch_ns(delivery.received_at)?))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(body) = &delivery.body {
            put = put.item(BODY, Av::B(Blob::new(body.clone())));
        }
        match put.send().await {
            Ok(_) => Ok(Recorded::New),
            Err(SdkError::ServiceError(se)) => match se.err() {
                PutItemError::ConditionalCheckFailedException(ccf) => match ccf.item() {
                    Some(old) => recorded(old, &pk),
                    // A server that doesn't return the old item: read it.
                    None => match self.get_item(pk.clone(), DELIVERY_SK).await? {
                        Some(old) => recorded(&old, &pk),
                        None => Err(StoreError::Transient(format!(
                            "{what}: condition failed but the record is gone"
                        ))),
                    },
                },
                _ => Err(sdk_error(&what, SdkError::ServiceError(se))),
            },
            Err(e) => Err(sdk_error(&what, e)),
        }
    }

    async fn delivery(
        &self,
        marketplace: Marketplace,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, StoreError> {
        codec::check_time(now)?;
        let Some(item) = self
            .get_item(delivery_pk(marketplace, id), DELIVERY_SK)
            .await?
        else {
            return Ok(None);
        };
        let delivery = delivery_from_item(marketplace, id, &item)?;
        Ok((delivery.expires_at > now).then_some(delivery))
    }

    /// One query of the `PENDING#<mkt>` partition of `GSI1` (eventually
    /// consistent: a delivery recorded a moment ago may be missing, which
    /// replay tolerates).
    async fn pending_deliveries(
        &self,
        marketplace: Marketplace,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        codec::check_time(now)?;
        let what = format!("pending deliveries of {marketplace}");
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("GSI1PK = :pk")
            .expression_attribute_values(":pk", s(pending_pk(marketplace)));
        let prefix = delivery_prefix(marketplace);
        let mut out = Vec::new();
        for item in self.query_all(&what, query).await? {
            let pk = attr_s(&item, PK, &what)?;
            let id = pk.strip_prefix(&prefix).ok_or_else(|| {
                StoreError::Backend(format!("{what}: unexpected item {pk} in the index"))
            })?;
            let delivery = delivery_from_item(marketplace, id, &item)?;
            if delivery.status == DeliveryStatus::Pending && delivery.expires_at > now {
                out.push(delivery);
            }
        }
        Ok(out)
    }
}

/// What a live record that refused the put says.
fn recorded(old: &Item, what: &str) -> Result<Recorded, StoreError> {
    let status = codec::parse_status(attr_s(old, STATUS, what)?, what)?;
    Ok(codec::recorded(status))
}
