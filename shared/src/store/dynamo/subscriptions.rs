//! [`Subscriptions`] on DynamoDB: state items and their log partitions.

use async_trait::async_trait;

use super::DynamoStore;
use super::items::{doc, subscription_from_item};
use super::keys::{GSI1, STATE_SK, cust_pk, s, sub_pk};
use crate::model::{CustomerKey, LogEntry, Subscription, SubscriptionKey};
use crate::store::{StoreError, Subscriptions};

#[async_trait]
impl Subscriptions for DynamoStore {
    async fn get(&self, key: &SubscriptionKey) -> Result<Option<Subscription>, StoreError> {
        self.get_item(sub_pk(key), STATE_SK)
            .await?
            .map(|item| subscription_from_item(&item))
            .transpose()
    }

    /// One strongly consistent query of the subscription's partition; the
    /// sort key orders entries by `recorded_at`.
    async fn log(&self, key: &SubscriptionKey) -> Result<Vec<LogEntry>, StoreError> {
        let pk = sub_pk(key);
        let what = format!("log of {pk}");
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("PK = :pk AND begins_with(SK, :evt)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":evt", s("EVT#"));
        self.query_all(&what, query)
            .await?
            .iter()
            .map(|item| doc(item, &what))
            .collect()
    }

    /// One query of `GSI1`. Global secondary indexes are **eventually
    /// consistent** (typically well under a second behind): a purchase
    /// committed a moment ago may not be visible to an entitlement check
    /// yet. That is the accepted price of answering checks with one read.
    async fn customer_subscriptions(
        &self,
        customer: &CustomerKey,
    ) -> Result<Vec<Subscription>, StoreError> {
        let what = format!("subscriptions of {}", cust_pk(customer));
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("GSI1PK = :pk AND begins_with(GSI1SK, :sub)")
            .expression_attribute_values(":pk", s(cust_pk(customer)))
            .expression_attribute_values(":sub", s("SUB#"));
        self.query_all(&what, query)
            .await?
            .iter()
            .map(subscription_from_item)
            .collect()
    }
}
