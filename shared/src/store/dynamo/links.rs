//! [`UserLinks`] on DynamoDB: one item per link in the user's partition
//! (`PK=USER#<app user>`, `SK=CUST#<mkt>#<id>`), with `linked_at`, the TTL
//! attribute `expires_at` and the exact `expires_at_ns` every read compares
//! with "now" (TTL deletes lazily). An item without `expires_at_ns` was
//! written before links expired: its age is unknown, so it counts as
//! expired, and the user's next sign-in (or a removal) deletes it.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};

use super::items::attr_s;
use super::keys::{
    CUSTOMER_ID, EXPIRES_AT, EXPIRES_AT_NS, Item, MARKETPLACE, PK, SK, cust_pk, n, s, user_pk,
};
use super::{DynamoStore, sdk_error};
use crate::model::{AppUser, CustomerKey, Marketplace};
use crate::store::{StoreError, UserLink, UserLinks, codec};

const LINKED_AT: &str = "linked_at";

/// A link item back; `None` for an item of unknown age (no expiry).
fn link_from_item(item: &Item, what: &str) -> Result<Option<UserLink>, StoreError> {
    if !item.contains_key(EXPIRES_AT_NS) {
        return Ok(None);
    }
    let marketplace = codec::parse_marketplace(attr_s(item, MARKETPLACE, what)?, what)?;
    Ok(Some(UserLink {
        customer: CustomerKey::new(marketplace, attr_s(item, CUSTOMER_ID, what)?),
        linked_at: codec::parse_time(attr_s(item, LINKED_AT, what)?, what)?,
        expires_at: DateTime::from_timestamp_nanos(super::items::attr_n(
            item,
            EXPIRES_AT_NS,
            what,
        )?),
    }))
}

impl DynamoStore {
    /// A `PutItem` of the link: linking again overwrites it, renewed.
    async fn put_link(&self, pk: &str, link: &UserLink) -> Result<(), StoreError> {
        let what = format!("link {pk}");
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(pk))
            .item(SK, s(cust_pk(&link.customer)))
            .item(MARKETPLACE, s(link.customer.marketplace.as_str()))
            .item(CUSTOMER_ID, s(&link.customer.id))
            .item(LINKED_AT, s(codec::time_text(link.linked_at)?))
            .item(EXPIRES_AT, n(super::keys::ttl_seconds(link.expires_at)))
            .item(EXPIRES_AT_NS, n(codec::epoch_ns(link.expires_at)?))
            .send()
            .await
            .map_err(|e| sdk_error(&what, e))?;
        Ok(())
    }

    /// Every link item of the user whose sort key starts with `prefix`,
    /// expired or not, strongly consistent.
    async fn link_items(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let what = format!("links of {pk}");
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("PK = :pk AND begins_with(SK, :cust)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":cust", s(prefix));
        self.query_all(&what, query).await
    }
}

#[async_trait]
impl UserLinks for DynamoStore {
    async fn link_user(&self, user: &AppUser, link: &UserLink) -> Result<(), StoreError> {
        self.put_link(&user_pk(user), link).await
    }

    /// Reads the user's links to the marketplace (one strongly consistent
    /// `Query`), deletes those not in `links` (a `DeleteItem` each), then
    /// puts every one of `links` (a `PutItem` each, renewing those kept).
    /// Not one transaction — a `Query` is only read-committed against a
    /// transaction anyway, so it could not promise more — but ordered so
    /// that a check at any moment sees a subset of the old set (while links
    /// go) or of the new one (while they are written), never their union.
    async fn replace_links(
        &self,
        user: &AppUser,
        marketplace: Marketplace,
        links: &[UserLink],
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        codec::check_links(marketplace, links)?;
        let pk = user_pk(user);
        let what = format!("unlink {pk}");
        let keep: Vec<String> = links.iter().map(|l| cust_pk(&l.customer)).collect();
        for item in self
            .link_items(&pk, &format!("CUST#{marketplace}#"))
            .await?
        {
            let sk = attr_s(&item, SK, &what)?;
            if keep.iter().any(|k| k == sk) {
                continue;
            }
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(self.key(pk.clone(), sk)))
                .send()
                .await
                .map_err(|e| sdk_error(&what, e))?;
        }
        for link in links {
            self.put_link(&pk, link).await?;
        }
        Ok(())
    }

    /// One strongly consistent `Query` of the user's partition, in key
    /// order (marketplace, then customer id); expired links are skipped.
    async fn user_links(
        &self,
        user: &AppUser,
        now: DateTime<Utc>,
    ) -> Result<Vec<UserLink>, StoreError> {
        let pk = user_pk(user);
        codec::check_time(now)?;
        let mut live = Vec::new();
        for item in self.link_items(&pk, "CUST#").await? {
            if let Some(link) = link_from_item(&item, &pk)?.filter(|l| l.is_live(now)) {
                live.push(link);
            }
        }
        Ok(live)
    }

    /// One `DeleteItem` returning the old item, to tell a live link from an
    /// expired (or absent) one.
    async fn unlink_user(
        &self,
        user: &AppUser,
        customer: &CustomerKey,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let pk = user_pk(user);
        codec::check_time(now)?;
        let what = format!("unlink {pk}");
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(pk.clone(), &cust_pk(customer))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_error(&what, e))?;
        Ok(match out.attributes {
            Some(old) => link_from_item(&old, &what)?.is_some_and(|l| l.is_live(now)),
            None => false,
        })
    }
}
