//! Reading a Q2 subscription event, tolerantly.
//!
//! Q2 publishes the fields of its SDK's `SubscriptionEvent` but no wire
//! format, so the relay may send any of these shapes, and all read alike:
//!
//! - an envelope whose keys are the dataclass field names
//!   (`event_type`, `subscription_id`, `user_id`, `sso_user_id`,
//!   `product_identifier`, `extension_name`, `extension_url`, `fi_name`,
//!   `created`, `processed`) or their camelCase forms (`eventType`,
//!   `subscriptionId`, ...), with the AppDirect event nested under `event`
//!   (an object, or that object as a JSON string);
//! - a bare AppDirect event (`type`, `marketplace`, `creator`, `payload`,
//!   ...), envelope keys beside it or not. What the envelope would have said
//!   is then taken from AppDirect's own fields: the type from `type`, the
//!   subscription from `payload.account.accountIdentifier`, the user from
//!   `creator.uuid`, the product from `applicationUuid`, the institution
//!   from `marketplace.baseUrl` (else `marketplace.partner`). A bare order
//!   names no subscription yet; its id is derived from institution, user
//!   and product, and returned as `accountIdentifier`, which AppDirect
//!   sends back on the later change and cancel.
//!
//! `user_id` may be a number or a string; timestamps may carry a zone or
//! not (then UTC); unknown fields are ignored (the raw body is kept with the
//! delivery record). Ids become store keys and log fields, so they must be
//! short and free of control characters.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::model::BillingCycle;

/// The three event types Q2 forwards to a marketplace extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Order,
    Change,
    Cancel,
}

impl EventType {
    pub const ALL: [EventType; 3] = [EventType::Order, EventType::Change, EventType::Cancel];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Order => "SUBSCRIPTION_ORDER",
            EventType::Change => "SUBSCRIPTION_CHANGE",
            EventType::Cancel => "SUBSCRIPTION_CANCEL",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }
}

/// A Q2 event as Tollgate reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Q2Event {
    pub event_type: EventType,
    /// Q2's contract id (a GUID): the subscription's key.
    pub subscription_id: String,
    /// The user's id in the institution's Q2 database (else the
    /// marketplace user's uuid, for a bare AppDirect event).
    pub user_id: String,
    /// The user's uuid on the marketplace (AppDirect), when known.
    pub sso_user_id: Option<String>,
    pub product_identifier: String,
    /// The financial institution: `fi_name`.
    pub institution: String,
    pub extension_name: Option<String>,
    pub created: Option<DateTime<Utc>>,
    pub processed: Option<DateTime<Utc>>,
    /// `created`/`processed` exactly as sent (`processed` first), for the
    /// idempotency key.
    pub sent_time: Option<String>,
    /// `payload.order.editionCode`: the edition (plan) ordered.
    pub edition: Option<String>,
    /// The quantity of the order's `USER` item.
    pub users: Option<u32>,
    /// `payload.order.pricingDuration`, when monthly or yearly.
    pub billing_cycle: Option<BillingCycle>,
    /// AppDirect's `flag` is `STATELESS`: a test ping with no side effects.
    pub stateless: bool,
}

/// Why a body cannot be read as a Q2 event (answered `INVALID_RESPONSE`).
/// Messages name fields, never their values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Described by [`crate::json_error::describe`]: position, no value.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not a JSON object")]
    NotAnObject,
    #[error("`event` is neither an object nor a JSON object in a string")]
    BadNestedEvent,
    #[error("no event type (`event_type`, `eventType` or the AppDirect event's `type`)")]
    MissingType,
    #[error(
        "event type is not one Q2 sends to extensions (SUBSCRIPTION_ORDER, SUBSCRIPTION_CHANGE, SUBSCRIPTION_CANCEL)"
    )]
    UnknownType,
    #[error("`event_type` and the AppDirect event's `type` disagree")]
    TypeMismatch,
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("`{0}` is not a usable id (1 to 256 characters, no control characters)")]
    BadId(&'static str),
}

/// Longest id accepted (GUIDs are 36; institution names are short).
const MAX_ID: usize = 256;

/// Reads `body` as a Q2 event.
pub fn parse(body: &[u8]) -> Result<Q2Event, EventError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| EventError::NotJson(crate::json_error::describe(&e)))?;
    let top = value.as_object().ok_or(EventError::NotAnObject)?;
    let nested;
    let appdirect: &Map<String, Value> = match top.get("event") {
        Some(Value::Object(event)) => event,
        Some(Value::String(text)) => {
            nested = serde_json::from_str::<Value>(text).map_err(|_| EventError::BadNestedEvent)?;
            nested.as_object().ok_or(EventError::BadNestedEvent)?
        }
        Some(Value::Null) | None => top,
        Some(_) => return Err(EventError::BadNestedEvent),
    };

    let envelope_type = text(top, &["event_type", "eventType"]);
    let appdirect_type = text(appdirect, &["type"]);
    let event_type = match (envelope_type, appdirect_type) {
        (Some(a), Some(b)) if !a.trim().eq_ignore_ascii_case(b.trim()) => {
            return Err(EventError::TypeMismatch);
        }
        (Some(t), _) | (None, Some(t)) => EventType::parse(&t).ok_or(EventError::UnknownType)?,
        (None, None) => return Err(EventError::MissingType),
    };

    let payload = appdirect.get("payload").and_then(Value::as_object);
    let order = payload
        .and_then(|p| p.get("order"))
        .and_then(Value::as_object);
    let creator_uuid = appdirect
        .get("creator")
        .and_then(Value::as_object)
        .and_then(|c| text(c, &["uuid"]));
    let marketplace = appdirect.get("marketplace").and_then(Value::as_object);

    let institution = id(
        text(top, &["fi_name", "fiName"])
            .or_else(|| marketplace.and_then(|m| text(m, &["baseUrl", "base_url"])))
            .or_else(|| marketplace.and_then(|m| text(m, &["partner"]))),
        "fi_name",
    )?;
    let sso_user_id = text(top, &["sso_user_id", "ssoUserId"])
        .or(creator_uuid)
        .map(|v| id(Some(v), "sso_user_id"))
        .transpose()?;
    let user_id = id(
        text(top, &["user_id", "userId"]).or_else(|| sso_user_id.clone()),
        "user_id",
    )?;
    let product_identifier = id(
        text(top, &["product_identifier", "productIdentifier"])
            .or_else(|| text(appdirect, &["applicationUuid", "application_uuid"])),
        "product_identifier",
    )?;
    let account_identifier = payload
        .and_then(|p| p.get("account"))
        .and_then(Value::as_object)
        .and_then(|a| text(a, &["accountIdentifier", "account_identifier"]));
    let subscription_id =
        match text(top, &["subscription_id", "subscriptionId"]).or(account_identifier) {
            Some(v) => id(Some(v), "subscription_id")?,
            None if event_type == EventType::Order => {
                derived_subscription_id(&institution, &user_id, &product_identifier)
            }
            None => return Err(EventError::Missing("subscription_id")),
        };
    let created_text = text(top, &["created"]);
    let processed_text = text(top, &["processed"]);

    Ok(Q2Event {
        event_type,
        subscription_id,
        user_id,
        sso_user_id,
        product_identifier,
        institution,
        extension_name: text(top, &["extension_name", "extensionName"])
            .map(|v| id(Some(v), "extension_name"))
            .transpose()?,
        created: created_text.as_deref().and_then(timestamp),
        processed: processed_text.as_deref().and_then(timestamp),
        sent_time: processed_text.or(created_text),
        edition: order
            .and_then(|o| text(o, &["editionCode", "edition_code"]))
            .map(|v| id(Some(v), "payload.order.editionCode"))
            .transpose()?,
        users: order.and_then(user_quantity),
        billing_cycle: order
            .and_then(|o| text(o, &["pricingDuration", "pricing_duration"]))
            .and_then(|d| billing_cycle(&d)),
        stateless: text(appdirect, &["flag"]).is_some_and(|f| f.eq_ignore_ascii_case("STATELESS")),
    })
}

/// The dedupe key of a delivery: Q2 gives no event id, so it is derived
/// from the subscription, the event type, the time Q2 stamped on it and
/// the exact bytes. A redelivery of the same request is the same delivery;
/// a new request about the same subscription is a new one.
pub fn delivery_id(event: &Q2Event, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [
        event.subscription_id.as_bytes(),
        event.event_type.as_str().as_bytes(),
        event.sent_time.as_deref().unwrap_or_default().as_bytes(),
        &Sha256::digest(body)[..],
    ] {
        // Length-prefixed, so no two different tuples hash alike.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// The id of a bare order's subscription: stable for one user, product and
/// institution, so the `accountIdentifier` returned for it names it again.
fn derived_subscription_id(institution: &str, user: &str, product: &str) -> String {
    let mut h = Sha256::new();
    for part in [institution, user, product] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    // 128 bits of the digest: as unique as a UUID, short enough for an id.
    let short: Vec<u8> = h.finalize().iter().take(16).copied().collect();
    format!("q2-{}", hex::encode(short))
}

/// The first of `keys` holding a non-empty string or a number, as text.
fn text(obj: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match obj.get(*k)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn id(value: Option<String>, field: &'static str) -> Result<String, EventError> {
    let v = value.ok_or(EventError::Missing(field))?;
    if v.chars().count() > MAX_ID || v.chars().any(char::is_control) {
        return Err(EventError::BadId(field));
    }
    Ok(v)
}

/// RFC 3339 with a zone, or the same without one (read as UTC), `T` or a
/// space between date and time. Anything else is left unread: the time is
/// informative, never required.
fn timestamp(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|t| t.and_utc())
}

/// The quantity of the order's `USER` item (a number or a numeric string).
fn user_quantity(order: &Map<String, Value>) -> Option<u32> {
    order
        .get("items")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find(|item| text(item, &["unit"]).is_some_and(|u| u.eq_ignore_ascii_case("USER")))
        .and_then(|item| text(item, &["quantity"]))
        .and_then(|q| q.parse().ok())
}

fn billing_cycle(duration: &str) -> Option<BillingCycle> {
    match duration.to_ascii_uppercase().as_str() {
        "MONTHLY" | "MONTH" => Some(BillingCycle::Monthly),
        "YEARLY" | "YEAR" | "ANNUAL" | "ANNUALLY" => Some(BillingCycle::Yearly),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn envelope() -> Value {
        json!({
            "event_type": "SUBSCRIPTION_ORDER",
            "subscription_id": "9b0d6a52-2f0e-4e4f-9a39-0c1f7c1d2e11",
            "sso_user_id": "4fc5fb4b-9809-49b5-abc5-7dab4544e685",
            "user_id": 123456,
            "fi_name": "Local Credit Union",
            "product_identifier": "3f2c7f0e-budgethelper",
            "extension_name": "BudgetHelperMarketplace",
            "extension_url": "https://fi.example/marketplace/BudgetHelper",
            "created": "2024-05-01T14:03:11Z",
            "processed": "2024-05-01T14:03:12Z",
            "event": {
                "type": "SUBSCRIPTION_ORDER",
                "flag": null,
                "marketplace": {"partner": "Q2TOTALACCESS", "baseUrl": "https://testq2totalaccess.appdirect.com"},
                "creator": {"uuid": "4fc5fb4b-9809-49b5-abc5-7dab4544e685", "email": "jdoe@q2ebanking.com"},
                "payload": {
                    "company": {"uuid": "bd58b532-323b-4627-a828-57729489b27b", "name": "John Doe"},
                    "order": {"editionCode": "PREMIUM", "pricingDuration": "MONTHLY",
                              "items": [{"unit": "USER", "quantity": "1"}]}
                }
            }
        })
    }

    fn read(v: &Value) -> Result<Q2Event, EventError> {
        parse(&serde_json::to_vec(v).unwrap())
    }

    fn camel(v: &Value) -> Value {
        let mut out = Map::new();
        for (k, val) in v.as_object().unwrap() {
            let mut key = String::new();
            let mut upper = false;
            for c in k.chars() {
                if c == '_' {
                    upper = true;
                } else if upper {
                    key.push(c.to_ascii_uppercase());
                    upper = false;
                } else {
                    key.push(c);
                }
            }
            out.insert(key, val.clone());
        }
        Value::Object(out)
    }

    #[test]
    fn the_proposed_envelope_reads_every_field() {
        let e = read(&envelope()).unwrap();
        assert_eq!(e.event_type, EventType::Order);
        assert_eq!(e.subscription_id, "9b0d6a52-2f0e-4e4f-9a39-0c1f7c1d2e11");
        assert_eq!(e.user_id, "123456");
        assert_eq!(
            e.sso_user_id.as_deref(),
            Some("4fc5fb4b-9809-49b5-abc5-7dab4544e685")
        );
        assert_eq!(e.institution, "Local Credit Union");
        assert_eq!(e.product_identifier, "3f2c7f0e-budgethelper");
        assert_eq!(e.extension_name.as_deref(), Some("BudgetHelperMarketplace"));
        assert_eq!(e.edition.as_deref(), Some("PREMIUM"));
        assert_eq!(e.users, Some(1));
        assert_eq!(e.billing_cycle, Some(BillingCycle::Monthly));
        assert_eq!(
            e.processed,
            Some(Utc.with_ymd_and_hms(2024, 5, 1, 14, 3, 12).unwrap())
        );
        assert_eq!(e.sent_time.as_deref(), Some("2024-05-01T14:03:12Z"));
        assert!(!e.stateless);
    }

    #[test]
    fn camel_case_keys_read_the_same() {
        let snake = read(&envelope()).unwrap();
        let camel = read(&camel(&envelope())).unwrap();
        assert_eq!(snake, camel);
        assert!(camel_has("subscriptionId") && camel_has("fiName"));
    }

    fn camel_has(key: &str) -> bool {
        camel(&envelope()).get(key).is_some()
    }

    #[test]
    fn user_id_may_be_a_string_and_timestamps_may_lack_a_zone() {
        let mut v = envelope();
        v["user_id"] = json!("123456");
        v["processed"] = json!("2024-05-01T14:03:12.5");
        v["created"] = json!("2024-05-01 14:03:11");
        let e = read(&v).unwrap();
        assert_eq!(e.user_id, "123456");
        assert_eq!(
            e.processed,
            Some(
                Utc.with_ymd_and_hms(2024, 5, 1, 14, 3, 12).unwrap()
                    + chrono::Duration::milliseconds(500)
            )
        );
        assert_eq!(
            e.created,
            Some(Utc.with_ymd_and_hms(2024, 5, 1, 14, 3, 11).unwrap())
        );
        v["processed"] = json!("2024-05-01T16:03:12+02:00");
        assert_eq!(
            read(&v).unwrap().processed,
            Some(Utc.with_ymd_and_hms(2024, 5, 1, 14, 3, 12).unwrap())
        );
        v["processed"] = json!("yesterday");
        assert_eq!(read(&v).unwrap().processed, None, "unreadable: left unread");
    }

    #[test]
    fn unknown_fields_are_ignored_and_a_nested_event_may_be_a_json_string() {
        let mut v = envelope();
        v["brand_new_field"] = json!({"x": [1, 2]});
        v["event"]["somethingElse"] = json!(true);
        let with_extra = read(&v).unwrap();
        assert_eq!(with_extra, read(&envelope()).unwrap());
        let inner = envelope()["event"].to_string();
        v["event"] = json!(inner);
        assert_eq!(read(&v).unwrap(), read(&envelope()).unwrap());
    }

    #[test]
    fn a_bare_appdirect_event_takes_the_envelope_from_its_own_fields() {
        let cancel = json!({
            "type": "SUBSCRIPTION_CANCEL",
            "applicationUuid": "3f2c7f0e-budgethelper",
            "marketplace": {"partner": "Q2TOTALACCESS", "baseUrl": "https://fi.appdirect.example"},
            "creator": {"uuid": "4fc5fb4b", "email": "jdoe@q2ebanking.com"},
            "payload": {"account": {"accountIdentifier": "acct-7"}}
        });
        let e = read(&cancel).unwrap();
        assert_eq!(e.event_type, EventType::Cancel);
        assert_eq!(e.subscription_id, "acct-7");
        assert_eq!(e.user_id, "4fc5fb4b");
        assert_eq!(e.institution, "https://fi.appdirect.example");
        assert_eq!(e.product_identifier, "3f2c7f0e-budgethelper");

        let mut order = cancel.clone();
        order["type"] = json!("SUBSCRIPTION_ORDER");
        order["payload"] = json!({"order": {"editionCode": "STANDARD"}});
        let first = read(&order).unwrap();
        assert!(
            first.subscription_id.starts_with("q2-"),
            "{}",
            first.subscription_id
        );
        assert_eq!(read(&order).unwrap().subscription_id, first.subscription_id);
        order["creator"]["uuid"] = json!("someone-else");
        assert_ne!(read(&order).unwrap().subscription_id, first.subscription_id);

        // Envelope keys beside a bare event win over AppDirect's fields.
        let mut mixed = cancel;
        mixed["fi_name"] = json!("Local CU");
        mixed["userId"] = json!(77);
        let e = read(&mixed).unwrap();
        assert_eq!(
            (e.institution.as_str(), e.user_id.as_str()),
            ("Local CU", "77")
        );
    }

    #[test]
    fn a_stateless_ping_is_recognised() {
        let mut v = envelope();
        v["event"]["flag"] = json!("STATELESS");
        assert!(read(&v).unwrap().stateless);
    }

    #[test]
    fn unreadable_events_say_which_field() {
        let cases: Vec<(Value, EventError)> = vec![
            (json!([1]), EventError::NotAnObject),
            (json!({"event": 5}), EventError::BadNestedEvent),
            (json!({"event": "{not json"}), EventError::BadNestedEvent),
            (json!({"subscription_id": "s"}), EventError::MissingType),
            (
                {
                    let mut v = envelope();
                    v["event_type"] = json!("USER_ASSIGNMENT");
                    v["event"]["type"] = json!("USER_ASSIGNMENT");
                    v
                },
                EventError::UnknownType,
            ),
            (
                {
                    let mut v = envelope();
                    v["event"]["type"] = json!("SUBSCRIPTION_CANCEL");
                    v
                },
                EventError::TypeMismatch,
            ),
            (
                {
                    let mut v = envelope();
                    v.as_object_mut().unwrap().remove("fi_name");
                    v["event"].as_object_mut().unwrap().remove("marketplace");
                    v
                },
                EventError::Missing("fi_name"),
            ),
            (
                {
                    let mut v = envelope();
                    v["event_type"] = json!("SUBSCRIPTION_CHANGE");
                    v["event"]["type"] = json!("SUBSCRIPTION_CHANGE");
                    v.as_object_mut().unwrap().remove("subscription_id");
                    v
                },
                EventError::Missing("subscription_id"),
            ),
            (
                {
                    let mut v = envelope();
                    v["user_id"] = json!("a\u{0}b");
                    v
                },
                EventError::BadId("user_id"),
            ),
            (
                {
                    let mut v = envelope();
                    v["subscription_id"] = json!("x".repeat(257));
                    v
                },
                EventError::BadId("subscription_id"),
            ),
        ];
        for (v, expected) in cases {
            assert_eq!(read(&v), Err(expected.clone()), "{v}");
        }
        assert!(matches!(parse(b"{nope"), Err(EventError::NotJson { .. })));
        let err = parse(br#"{"event_type":"SUBSCRIPTION_ORDER","token":"hunter2-leak"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the body is not JSON: invalid JSON (EOF while parsing a string) at line 1 column 56"
        );
        assert!(matches!(parse(b""), Err(EventError::NotJson { .. })));
    }

    #[test]
    fn deeply_nested_input_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(EventError::NotJson { .. })
        ));
    }

    #[test]
    fn the_delivery_id_follows_the_bytes_the_subscription_the_type_and_the_time() {
        let body = serde_json::to_vec(&envelope()).unwrap();
        let e = parse(&body).unwrap();
        let id = delivery_id(&e, &body);
        assert_eq!(id.len(), 64);
        assert_eq!(delivery_id(&parse(&body).unwrap(), &body), id, "stable");
        let mut spaced = body.clone();
        spaced.push(b' ');
        assert_ne!(
            delivery_id(&parse(&spaced).unwrap(), &spaced),
            id,
            "other bytes"
        );
        let mut cancel = e.clone();
        cancel.event_type = EventType::Cancel;
        assert_ne!(delivery_id(&cancel, &body), id);
    }
}
