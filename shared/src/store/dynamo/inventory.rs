//! [`Inventory`] on DynamoDB: a `Scan` for the state items of one
//! marketplace, keys only. The only scan the store makes; see the role's
//! docs for who may call it.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue as Av;

use super::DynamoStore;
use super::keys::{Item, PK, SK, STATE_SK, s};
use crate::model::{Marketplace, SubscriptionKey};
use crate::store::{Inventory, KeyPage, StoreError, codec};

#[async_trait]
impl Inventory for DynamoStore {
    /// One `Scan` call (DynamoDB's page: up to 1 MB read), filtered to
    /// `SUB#<mkt>#…`/`STATE` items and projected to their key. A page may
    /// hold few keys or none while `next` says the scan goes on: the filter
    /// applies after the read.
    async fn subscription_keys(
        &self,
        marketplace: Marketplace,
        cursor: Option<&str>,
    ) -> Result<KeyPage, StoreError> {
        let what = format!("subscriptions of {marketplace}");
        let prefix = format!("SUB#{marketplace}#");
        let start = cursor.map(|c| decode_cursor(c, &what)).transpose()?;
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("SK = :state AND begins_with(PK, :prefix)")
            .projection_expression("PK")
            .expression_attribute_values(":state", s(STATE_SK))
            .expression_attribute_values(":prefix", s(&prefix))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| super::sdk_error(&what, e))?;
        let keys = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| match item.get(PK) {
                Some(Av::S(pk)) => pk.strip_prefix(&prefix).map(str::to_owned),
                _ => None,
            })
            .map(|id| SubscriptionKey::new(marketplace, id))
            .collect();
        let next = match out.last_evaluated_key {
            Some(k) if !k.is_empty() => Some(encode_cursor(&k, &what)?),
            _ => None,
        };
        Ok(KeyPage { keys, next })
    }
}

/// The scan's `LastEvaluatedKey` (`PK`, `SK`) as an opaque cursor.
fn encode_cursor(key: &Item, what: &str) -> Result<String, StoreError> {
    let part = |name: &str| match key.get(name) {
        Some(Av::S(v)) => Ok(v.clone()),
        _ => Err(StoreError::Backend(format!(
            "{what}: the scan's last key has no string `{name}`"
        ))),
    };
    codec::to_json(&[part(PK)?, part(SK)?], what)
}

fn decode_cursor(cursor: &str, what: &str) -> Result<Item, StoreError> {
    let [pk, sk]: [String; 2] = codec::from_json(cursor, &format!("{what} (cursor)"))?;
    Ok(Item::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))]))
}
