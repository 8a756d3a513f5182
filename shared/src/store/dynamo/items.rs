//! Reading items back: typed attributes, and the state and delivery items
//! as the model's values. A missing or mistyped attribute is a corrupt item.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use chrono::{DateTime, Utc};

use super::keys::{
    BODY, BODY_SHA256, DOC, EXPIRES_AT_NS, HOLDERS, Item, KIND, PK, RECEIVED_AT, STATUS, VERSION,
    delivery_pk,
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

/// The seat holders of a state item (none if the set is absent).
pub(super) fn holders(item: &Item, what: &str) -> Result<BTreeSet<String>, StoreError> {
    match item.get(HOLDERS) {
        None => Ok(BTreeSet::new()),
        Some(Av::Ss(v)) => Ok(v.iter().cloned().collect()),
        Some(_) => Err(codec::corrupt(
            what,
            format!("attribute `{HOLDERS}` is not a string set"),
        )),
    }
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
/// `seat_holders` attributes are authoritative over the JSON document.
pub(super) fn subscription_from_item(item: &Item) -> Result<Subscription, StoreError> {
    let what = item_name(item);
    codec::state_from_doc(
        attr_s(item, DOC, what)?,
        attr_n(item, VERSION, what)?,
        holders(item, what)?,
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
