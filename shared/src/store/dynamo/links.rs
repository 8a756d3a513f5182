//! [`UserLinks`] on DynamoDB: one item per link in the user's partition.

use async_trait::async_trait;

use super::items::attr_s;
use super::keys::{CUSTOMER_ID, MARKETPLACE, PK, SK, cust_pk, s, user_pk};
use super::{DynamoStore, sdk_error};
use crate::model::{AppUser, CustomerKey};
use crate::store::{StoreError, UserLinks, codec};

#[async_trait]
impl UserLinks for DynamoStore {
    /// A `PutItem`: linking again overwrites the link with itself.
    async fn link_user(&self, user: &AppUser, customer: &CustomerKey) -> Result<(), StoreError> {
        let pk = user_pk(user);
        let what = format!("link {pk}");
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(&pk))
            .item(SK, s(cust_pk(customer)))
            .item(MARKETPLACE, s(customer.marketplace.as_str()))
            .item(CUSTOMER_ID, s(&customer.id))
            .send()
            .await
            .map_err(|e| sdk_error(&what, e))?;
        Ok(())
    }

    /// One strongly consistent query of the user's partition, in key order
    /// (marketplace, then customer id).
    async fn linked_customers(&self, user: &AppUser) -> Result<Vec<CustomerKey>, StoreError> {
        let pk = user_pk(user);
        let what = format!("links of {pk}");
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("PK = :pk AND begins_with(SK, :cust)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":cust", s("CUST#"));
        self.query_all(&what, query)
            .await?
            .iter()
            .map(|item| {
                let marketplace = codec::parse_marketplace(attr_s(item, MARKETPLACE, &pk)?, &pk)?;
                Ok(CustomerKey::new(
                    marketplace,
                    attr_s(item, CUSTOMER_ID, &pk)?,
                ))
            })
            .collect()
    }
}
