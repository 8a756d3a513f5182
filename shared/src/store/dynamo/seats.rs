//! [`SeatClaims`] on DynamoDB: one item per holder in the subscription's
//! partition and a counter on its state item, kept in step by transactions
//! (see "Seats" in the module docs).

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsError;
use aws_sdk_dynamodb::types::{Delete, Get, Put, TransactGetItem, TransactWriteItem, Update};

use super::counted::Cancelled;
use super::enrollments::backoff;
use super::items::{seat_limit, seats_used};
use super::keys::{
    Item, PK, SEAT_LIMIT, SEAT_SK_PREFIX, SEATS_USED, SK, STATE_SK, USER, n, s, seat_sk, sub_pk,
};
use super::{DynamoStore, build_error, sdk_error};
use crate::model::SubscriptionKey;
use crate::store::{SeatClaim, SeatClaims, SeatLimit, StoreError, codec};

/// Attempts when other transactions keep touching the same state item (a
/// rush of logins on one subscription, or a commit in flight).
const MAX_ATTEMPTS: u32 = 32;

/// The condition on the state item that admits one more holder when the
/// limit is the unit count stored on that item. No count: no limit. A
/// state item always carries `seats_used` once committed; the
/// `attribute_not_exists` branch only keeps an item without it claimable.
const BELOW_STORED_LIMIT: &str = "attribute_exists(PK) AND (attribute_not_exists(seat_limit) \
     OR seats_used < seat_limit \
     OR (attribute_not_exists(seats_used) AND seat_limit > :zero))";

/// The same for a limit from the configuration, passed as `:cap`. Only
/// sent once the read found fewer than `:cap` seats used, so `:cap` is at
/// least 1 and a missing counter (0) is below it.
const BELOW_FIXED_LIMIT: &str =
    "attribute_exists(PK) AND (attribute_not_exists(seats_used) OR seats_used < :cap)";

/// The state item as a claim sees it.
#[derive(Debug, Clone, Copy)]
struct Counted {
    used: u32,
    /// The unit count stored with the current state.
    purchased: Option<u32>,
}

/// What a claim's read found.
enum Seen {
    /// The state's count and limit (`None`: no subscription), and whether
    /// the user holds a seat.
    Now(Option<Counted>, bool),
    /// A write transaction on one of the items was in flight: read again.
    Busy,
}

#[async_trait]
impl SeatClaims for DynamoStore {
    /// One `TransactGetItems` of the state's counter and the user's seat
    /// item decides "already held" and "full" without writing; otherwise a
    /// `TransactWriteItems` puts the seat item (unless it exists) and adds
    /// one to the counter (unless that passes the limit on the state item
    /// as it is then). A failed condition means something changed in
    /// between: read again.
    async fn claim_seat(
        &self,
        key: &SubscriptionKey,
        user: &str,
        limit: SeatLimit,
    ) -> Result<SeatClaim, StoreError> {
        let pk = sub_pk(key);
        let what = format!("claim seat on {pk}");
        for attempt in 0..MAX_ATTEMPTS {
            let (state, held) = match self.seat_snapshot(&pk, user, &what).await? {
                Seen::Now(state, held) => (state, held),
                Seen::Busy => {
                    backoff(attempt).await;
                    continue;
                }
            };
            let Some(state) = state else {
                return Err(codec::no_subscription(key));
            };
            let now_limit = limit.resolve(state.purchased);
            if held {
                return Ok(SeatClaim::AlreadyHeld {
                    used: state.used,
                    limit: now_limit,
                });
            }
            if let Some(l) = now_limit
                && state.used >= l
            {
                return Ok(SeatClaim::LimitReached {
                    used: state.used,
                    limit: l,
                });
            }
            let actions = self.claim_actions(&pk, user, limit, &what)?;
            match self.transact_counted(&what, actions).await {
                Ok(()) => {
                    return Ok(SeatClaim::Granted {
                        used: state.used.saturating_add(1),
                        limit: now_limit,
                    });
                }
                // The same user claimed, or the count or limit moved, in
                // between: the next read says which.
                Err(Cancelled::Member | Cancelled::Count) => {}
                Err(Cancelled::Conflict) => backoff(attempt).await,
                Err(Cancelled::Other(e)) => return Err(e),
            }
        }
        Err(gave_up(&what))
    }

    /// One `TransactWriteItems`: delete the seat item (if it exists) and
    /// take one from the counter.
    async fn release_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError> {
        let pk = sub_pk(key);
        let what = format!("release seat on {pk}");
        for attempt in 0..MAX_ATTEMPTS {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(self.key(pk.clone(), &seat_sk(user))))
                .condition_expression("attribute_exists(PK)")
                .build()
                .map_err(|e| build_error(&what, e))?;
            let count = Update::builder()
                .table_name(&self.table)
                .set_key(Some(self.key(pk.clone(), STATE_SK)))
                .update_expression("ADD seats_used :minus_one")
                // A seat item without a state, or a counter already at 0,
                // would mean the two are out of step: refuse, say so.
                .condition_expression("attribute_exists(PK) AND seats_used > :zero")
                .expression_attribute_values(":minus_one", n(-1))
                .expression_attribute_values(":zero", n(0))
                .build()
                .map_err(|e| build_error(&what, e))?;
            let actions = vec![
                TransactWriteItem::builder().delete(delete).build(),
                TransactWriteItem::builder().update(count).build(),
            ];
            match self.transact_counted(&what, actions).await {
                Ok(()) => return Ok(true),
                Err(Cancelled::Member) => return Ok(false),
                Err(Cancelled::Count) => {
                    return Err(StoreError::Backend(format!(
                        "{what}: the seat of {user} exists but the subscription's seat count \
                         is missing or 0"
                    )));
                }
                Err(Cancelled::Conflict) => backoff(attempt).await,
                Err(Cancelled::Other(e)) => return Err(e),
            }
        }
        Err(gave_up(&what))
    }

    /// One strongly consistent `GetItem` of the seat item.
    async fn holds_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError> {
        Ok(self.get_item(sub_pk(key), &seat_sk(user)).await?.is_some())
    }

    /// One strongly consistent `Query` of the partition's seat items (a
    /// page per MB: about 2,000 holders of 200-byte ids).
    async fn seat_holders(&self, key: &SubscriptionKey) -> Result<Vec<String>, StoreError> {
        let pk = sub_pk(key);
        let what = format!("seat holders of {pk}");
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("PK = :pk AND begins_with(SK, :seat)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":seat", s(SEAT_SK_PREFIX))
            .projection_expression("SK");
        let mut users = self
            .query_all(&what, query)
            .await?
            .iter()
            .map(|item| holder_of(item, &what))
            .collect::<Result<Vec<_>, _>>()?;
        // The sort key orders by `SEAT#<user>`, which is user order; sorting
        // again keeps the promise whatever the key encoding.
        users.sort();
        Ok(users)
    }
}

impl DynamoStore {
    /// The state's counter and stored limit (`None`: no subscription) and
    /// whether `user` holds a seat, read together and strongly consistent
    /// (one `TransactGetItems`).
    async fn seat_snapshot(&self, pk: &str, user: &str, what: &str) -> Result<Seen, StoreError> {
        let build = |e| build_error(what, e);
        let state = Get::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(pk.to_owned(), STATE_SK)))
            .projection_expression(format!("{PK}, {SEATS_USED}, {SEAT_LIMIT}"))
            .build()
            .map_err(build)?;
        let seat = Get::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(pk.to_owned(), &seat_sk(user))))
            .projection_expression(PK)
            .build()
            .map_err(build)?;
        let out = self
            .client
            .transact_get_items()
            .transact_items(TransactGetItem::builder().get(state).build())
            .transact_items(TransactGetItem::builder().get(seat).build())
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(SdkError::ServiceError(se)) => {
                return match se.err() {
                    // A write transaction on one of the items was in flight.
                    TransactGetItemsError::TransactionCanceledException(_) => Ok(Seen::Busy),
                    _ => Err(sdk_error(what, SdkError::ServiceError(se))),
                };
            }
            Err(e) => return Err(sdk_error(what, e)),
        };
        let responses = out.responses.unwrap_or_default();
        let item = |i: usize| responses.get(i).and_then(|r| r.item.as_ref());
        let state = item(0)
            .map(|item| {
                Ok::<_, StoreError>(Counted {
                    used: seats_used(item, pk)?,
                    purchased: seat_limit(item, pk)?,
                })
            })
            .transpose()?;
        Ok(Seen::Now(state, item(1).is_some()))
    }

    /// The two actions of a claim: put the seat item unless it exists, add
    /// one to the counter unless the limit is reached.
    fn claim_actions(
        &self,
        pk: &str,
        user: &str,
        limit: SeatLimit,
        what: &str,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let seat = Put::builder()
            .table_name(&self.table)
            .item(PK, s(pk))
            .item(SK, s(seat_sk(user)))
            .item(USER, s(user))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(|e| build_error(what, e))?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(pk.to_owned(), STATE_SK)))
            .update_expression("ADD seats_used :one")
            .expression_attribute_values(":one", n(1));
        let count = match limit {
            SeatLimit::Purchased => count
                .condition_expression(BELOW_STORED_LIMIT)
                .expression_attribute_values(":zero", n(0)),
            SeatLimit::Fixed(cap) => count
                .condition_expression(BELOW_FIXED_LIMIT)
                .expression_attribute_values(":cap", n(cap)),
        };
        let count = count.build().map_err(|e| build_error(what, e))?;
        Ok(vec![
            TransactWriteItem::builder().put(seat).build(),
            TransactWriteItem::builder().update(count).build(),
        ])
    }
}

/// The user a seat item is for, from its sort key (the `user` attribute
/// says the same; the key is what the query projects).
fn holder_of(item: &Item, what: &str) -> Result<String, StoreError> {
    match item.get(SK).and_then(|v| v.as_s().ok()) {
        Some(sk) => sk
            .strip_prefix(SEAT_SK_PREFIX)
            .map(str::to_owned)
            .ok_or_else(|| codec::corrupt(what, format!("seat item with sort key `{sk}`"))),
        None => Err(codec::corrupt(what, "seat item without a sort key")),
    }
}

fn gave_up(what: &str) -> StoreError {
    StoreError::Transient(format!(
        "{what}: gave up after {MAX_ATTEMPTS} conflicting transactions"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seat_item_names_its_holder_by_its_sort_key() {
        let item = Item::from([(SK.to_owned(), s(seat_sk("a#b")))]);
        assert_eq!(holder_of(&item, "x"), Ok("a#b".to_owned()));
        let stray = Item::from([(SK.to_owned(), s("EVT#1"))]);
        assert!(matches!(
            holder_of(&stray, "x"),
            Err(StoreError::Backend(_))
        ));
    }
}
