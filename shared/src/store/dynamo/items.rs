//! Reading items back: typed attributes, and the state and delivery items
//! as the model's values. A missing or mistyped attribute is a corrupt item.

use aws_sdk_dynamodb::types::AttributeValue as Av;
use chrono::{DateTime, Utc};

use super::keys::{
    BODY, BODY_SHA256, DOC, EXPIRES_AT_NS, Item, KIND, PK, RECEIVED_AT, SEAT_LIMIT, SEATS_USED,
    STATUS, VERSION, delivery_pk,
};
use crate::model::{Marketplace, Subscription};
use crate::store::{Delivery, StoreError, codec};

/// A string attribute; `what` names the item in errors.
pub(super) fn attr_s<'a>(item: &'a Item, name: &str, what: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(Av::S(v)) => Ok(v),
        Some(_) => Err(codec::corrupt(
            what,
            format!("attribute `{name}` is not a string"),
        )),
        None => Err(codec::corrupt(
            what,
            format!("attribute `{name}` is missing"),
        )),
    }
}

pub(super) fn attr_n<T: std::str::FromStr>(
    item: &Item,
    name: &str,
    what: &str,
) -> Result<T, StoreError> {
    match item.get(name) {
        Some(Av::N(v)) => v
            .parse()
            .map_err(|_| codec::corrupt(what, format!("attribute `{name}` = {v} is out of range"))),
        Some(_) => Err(codec::corrupt(
            what,
            format!("attribute `{name}` is not a number"),
        )),
        None => Err(codec::corrupt(
            what,
            format!("attribute `{name}` is missing"),
        )),
    }
}

fn attr_time(item: &Item, name: &str, what: &str) -> Result<DateTime<Utc>, StoreError> {
    codec::parse_time(attr_s(item, name, what)?, what)
}

fn attr_expiry(item: &Item, what: &str) -> Result<DateTime<Utc>, StoreError> {
    Ok(DateTime::from_timestamp_nanos(attr_n(
        item,
        EXPIRES_AT_NS,
        what,
    )?))
}

/// An optional number attribute: `None` if absent.
fn attr_n_opt<T: std::str::FromStr>(
    item: &Item,
    name: &str,
    what: &str,
) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(_) => attr_n(item, name, what).map(Some),
    }
}

/// The seat counter of a state item (0 before the first commit set it).
/// Out of range (negative, say) is a corrupt item, never a wrapped count.
pub(super) fn seats_used(item: &Item, what: &str) -> Result<u32, StoreError> {
    Ok(attr_n_opt(item, SEATS_USED, what)?.unwrap_or(0))
}

/// The purchased unit count a state item carries beside its document, for
/// seat claims to be checked against (`None`: the plan counts no seats).
pub(super) fn seat_limit(item: &Item, what: &str) -> Result<Option<u32>, StoreError> {
    attr_n_opt(item, SEAT_LIMIT, what)
}

/// The JSON document of a state or log item.
pub(super) fn doc<T: serde::de::DeserializeOwned>(
    item: &Item,
    what: &str,
) -> Result<T, StoreError> {
    codec::from_json(attr_s(item, DOC, what)?, what)
}

/// The name of an item for errors: its `PK`.
pub(super) fn item_name(item: &Item) -> &str {
    item.get(PK)
        .and_then(|v| v.as_s().ok())
        .map_or("?", String::as_str)
}

/// A state item back to a [`Subscription`]: the `version` and
/// `seats_used` attributes are authoritative over the JSON document.
pub(super) fn subscription_from_item(item: &Item) -> Result<Subscription, StoreError> {
    let what = item_name(item);
    codec::state_from_doc(
        attr_s(item, DOC, what)?,
        attr_n(item, VERSION, what)?,
        seats_used(item, what)?,
        what,
    )
}

pub(super) fn delivery_from_item(
    marketplace: Marketplace,
    id: &str,
    item: &Item,
) -> Result<Delivery, StoreError> {
    let what = &delivery_pk(marketplace, id);
    let body = match item.get(BODY) {
        None => None,
        Some(Av::B(b)) => Some(b.as_ref().to_vec()),
        Some(_) => {
            return Err(codec::corrupt(
                what,
                format!("attribute `{BODY}` is not binary"),
            ));
        }
    };
    Ok(Delivery {
        marketplace,
        id: id.to_owned(),
        kind: attr_s(item, KIND, what)?.to_owned(),
        status: codec::parse_status(attr_s(item, STATUS, what)?, what)?,
        body_sha256: attr_s(item, BODY_SHA256, what)?.to_owned(),
        body,
        received_at: attr_time(item, RECEIVED_AT, what)?,
        expires_at: attr_expiry(item, what)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dynamo::keys::{n, s};
    use std::collections::HashMap;

    #[test]
    fn garbled_state_item_names_its_key() {
        let item = HashMap::from([
            (PK.to_owned(), s("SUB#q2#7")),
            (DOC.to_owned(), s("{not json")),
            (VERSION.to_owned(), n(1)),
        ]);
        let err = subscription_from_item(&item).unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend(m) if m.contains("SUB#q2#7")),
            "{err}"
        );
    }

    #[test]
    fn a_negative_seat_count_is_a_corrupt_item_not_a_huge_one() {
        let item = HashMap::from([
            (PK.to_owned(), s("SUB#q2#7")),
            (SEATS_USED.to_owned(), n(-1)),
        ]);
        let err = seats_used(&item, "SUB#q2#7").unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend(m) if m.contains("seats_used")),
            "{err}"
        );
        let fresh = HashMap::from([(PK.to_owned(), s("SUB#q2#7"))]);
        assert_eq!(seats_used(&fresh, "x"), Ok(0));
        assert_eq!(seat_limit(&fresh, "x"), Ok(None));
    }

    #[test]
    fn an_unknown_delivery_status_is_a_corrupt_item() {
        let item = HashMap::from([
            (STATUS.to_owned(), s("weird")),
            (KIND.to_owned(), s("k")),
            (BODY_SHA256.to_owned(), s("")),
            (RECEIVED_AT.to_owned(), s("2026-03-01T00:00:00.000000000Z")),
            (EXPIRES_AT_NS.to_owned(), n(1)),
        ]);
        let err = delivery_from_item(Marketplace::Github, "d", &item).unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend(m) if m.contains("DELIVERY#github#d")),
            "{err}"
        );
    }
}
