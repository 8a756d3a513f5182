//! What a Pub/Sub push brings: the envelope
//! (<https://cloud.google.com/pubsub/docs/push>) and, base64 inside it, the
//! Marketplace notification — ids only, never state
//! (<https://cloud.google.com/marketplace/docs/partners/integrated-saas/manage-entitlements>).
//!
//! Read tolerantly: `messageId`/`message_id` and `publishTime`/`publish_time`
//! in either spelling, unknown fields ignored, `updateTime` kept as text
//! (real messages have carried stray spaces in it; the fresh `GET` is what
//! orders state, not this field).

use base64::Engine;
use serde::Deserialize;

/// Why a push body could not be read. Authentic but unreadable messages are
/// recorded and acknowledged, never refused: Pub/Sub would redeliver them
/// forever.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("the push body is not a Pub/Sub envelope ({0})")]
    Envelope(String),
    #[error("message.data is not base64")]
    Base64,
    #[error("message.data is not a Marketplace notification ({0})")]
    Notification(String),
    #[error("the notification names neither an entitlement nor an account")]
    NoResource,
}

#[derive(Debug, Deserialize)]
struct RawEnvelope {
    message: RawMessage,
    #[serde(default)]
    subscription: Option<String>,
}

/// Pub/Sub sends both spellings of the id and time at once, so each is its
/// own field (serde aliases would reject the pair as a duplicate).
#[derive(Debug, Deserialize)]
struct RawMessage {
    #[serde(default)]
    data: Option<String>,
    #[serde(default, rename = "messageId")]
    message_id: Option<String>,
    #[serde(default, rename = "message_id")]
    message_id_snake: Option<String>,
    #[serde(default, rename = "publishTime")]
    publish_time: Option<String>,
    #[serde(default, rename = "publish_time")]
    publish_time_snake: Option<String>,
}

/// The parts of a push envelope Tollgate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub message_id: Option<String>,
    pub publish_time: Option<String>,
    pub subscription: Option<String>,
    /// `message.data`, base64-decoded.
    pub data: Vec<u8>,
}

impl Envelope {
    pub fn parse(body: &[u8]) -> Result<Self, NotificationError> {
        let raw: RawEnvelope = serde_json::from_slice(body)
            .map_err(|e| NotificationError::Envelope(crate::json_error::describe(&e)))?;
        let data = match raw.message.data.as_deref().map(str::trim) {
            None | Some("") => Vec::new(),
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| NotificationError::Base64)?,
        };
        Ok(Self {
            message_id: raw
                .message
                .message_id
                .or(raw.message.message_id_snake)
                .filter(|id| !id.is_empty()),
            publish_time: raw.message.publish_time.or(raw.message.publish_time_snake),
            subscription: raw.subscription,
            data,
        })
    }
}

#[derive(Debug, Deserialize)]
struct RawNotification {
    #[serde(default, rename = "eventId")]
    event_id: Option<String>,
    #[serde(default, rename = "eventType")]
    event_type: Option<String>,
    #[serde(default)]
    entitlement: Option<RawResource>,
    #[serde(default)]
    account: Option<RawResource>,
}

#[derive(Debug, Deserialize)]
struct RawResource {
    id: String,
    #[serde(default, rename = "updateTime")]
    update_time: Option<String>,
}

/// The resource a notification is about; its state must be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Entitlement(String),
    Account(String),
}

/// A Marketplace notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub event_id: Option<String>,
    /// As sent; unknown types are kept, logged and acknowledged.
    pub event_type: String,
    pub resource: Resource,
    /// Informational only (see the module docs).
    pub update_time: Option<String>,
}

impl Notification {
    pub fn parse(data: &[u8]) -> Result<Self, NotificationError> {
        let raw: RawNotification = serde_json::from_slice(data)
            .map_err(|e| NotificationError::Notification(crate::json_error::describe(&e)))?;
        let (resource, update_time) = match (raw.entitlement, raw.account) {
            (Some(e), _) if !e.id.trim().is_empty() => {
                (Resource::Entitlement(e.id.trim().to_owned()), e.update_time)
            }
            (_, Some(a)) if !a.id.trim().is_empty() => {
                (Resource::Account(a.id.trim().to_owned()), a.update_time)
            }
            _ => return Err(NotificationError::NoResource),
        };
        Ok(Self {
            event_id: raw.event_id.filter(|id| !id.trim().is_empty()),
            event_type: raw.event_type.unwrap_or_default(),
            resource,
            update_time,
        })
    }
}

/// The id a push is deduplicated on: the notification's `eventId`, else the
/// message's `messageId`, else `None` (then the body hash, see the adapter).
/// Only visible ASCII, bounded: it becomes a store key and a log field.
pub fn delivery_id(envelope: &Envelope) -> Option<String> {
    let from_event = Notification::parse(&envelope.data)
        .ok()
        .and_then(|n| n.event_id);
    from_event
        .or_else(|| envelope.message_id.clone())
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty() && id.len() <= 200 && id.bytes().all(|b| b.is_ascii_graphic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(data: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        format!(
            r#"{{"message":{{"attributes":{{}},"data":"{b64}","messageId":"m-1","message_id":"m-1","publishTime":"2021-02-26T19:13:55.749Z"}},"subscription":"projects/p/subscriptions/s","deliveryAttempt":1}}"#
        )
        .into_bytes()
    }

    #[test]
    fn an_entitlement_notification_is_read_from_the_envelope() {
        let body = envelope(
            r#"{"eventId":"CREATE_ENTITLEMENT-f502","eventType":"ENTITLEMENT_OFFER_ACCEPTED","entitlement":{"id":"18f7b898","updateTime":"2026-01-21T00:06:19.754732Z","newPlan":"p","newOffer":"o","orderId":"18f7b898"},"providerId":"cpe"}"#,
        );
        let env = Envelope::parse(&body).unwrap();
        assert_eq!(env.message_id.as_deref(), Some("m-1"));
        let n = Notification::parse(&env.data).unwrap();
        assert_eq!(n.event_type, "ENTITLEMENT_OFFER_ACCEPTED");
        assert_eq!(n.resource, Resource::Entitlement("18f7b898".into()));
        assert_eq!(
            delivery_id(&env).as_deref(),
            Some("CREATE_ENTITLEMENT-f502")
        );
    }

    #[test]
    fn a_malformed_update_time_and_unknown_fields_are_tolerated() {
        // From doitintl/doit-easily-marketplace's example payloads.
        let n = Notification::parse(br#"{"eventId":"ENTITLEMENT_CANCELLED-709a","eventType":"ENTITLEMENT_CANCELLED","entitlement":{"id":"c91aecd0","updateTime":"2022-07-18T09: 42: 51.275760Z"},"providerId":"doit-public","extra":{"x":1}}"#).unwrap();
        assert_eq!(n.resource, Resource::Entitlement("c91aecd0".into()));
        assert_eq!(
            n.update_time.as_deref(),
            Some("2022-07-18T09: 42: 51.275760Z")
        );
    }

    #[test]
    fn an_account_notification_and_snake_case_message_ids_are_read() {
        let body = br#"{"message":{"data":"eyJldmVudElkIjoiZS0xIiwiZXZlbnRUeXBlIjoiQUNDT1VOVF9BQ1RJVkUiLCJhY2NvdW50Ijp7ImlkIjoiYWNjdC0xIn19","message_id":"9"}}"#;
        let env = Envelope::parse(body).unwrap();
        assert_eq!(env.message_id.as_deref(), Some("9"));
        let n = Notification::parse(&env.data).unwrap();
        assert_eq!(n.resource, Resource::Account("acct-1".into()));
    }

    #[test]
    fn without_an_event_id_the_message_id_is_the_delivery_id() {
        let env = Envelope::parse(&envelope(r#"{"eventType":"X","account":{"id":"a"}}"#)).unwrap();
        assert_eq!(delivery_id(&env).as_deref(), Some("m-1"));
    }

    #[test]
    fn unreadable_bodies_say_where_never_what() {
        let err = Envelope::parse(br#"{"message":{"data":"!!not base64!!"}}"#).unwrap_err();
        assert_eq!(err, NotificationError::Base64);
        let err = Notification::parse(br#"{"eventId": 12345678987654321, "x": "#).unwrap_err();
        assert!(!err.to_string().contains("12345678987654321"), "{err}");
        assert_eq!(
            Notification::parse(br#"{"eventId":"e","eventType":"X"}"#).unwrap_err(),
            NotificationError::NoResource
        );
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../tests/fixtures/gcp/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn googles_documented_envelope_reads_with_both_id_spellings() {
        let env = Envelope::parse(&fixture("pubsub-push-envelope.json")).unwrap();
        assert_eq!(env.message_id.as_deref(), Some("2070443601311540"));
        assert_eq!(
            env.publish_time.as_deref(),
            Some("2021-02-26T19:13:55.749Z")
        );
        assert_eq!(env.data, b"Hello Cloud Pub/Sub! Here is my message!");
        // Its data is not a Marketplace notification: recorded, not applied.
        assert!(Notification::parse(&env.data).is_err());
    }

    #[test]
    fn published_and_real_notification_bodies_are_read() {
        for (file, event_type, resource) in [
            (
                "entitlement-creation-requested.json",
                "ENTITLEMENT_CREATION_REQUESTED",
                Resource::Entitlement("ENTITLEMENT_ID".into()),
            ),
            (
                "account-active.json",
                "ACCOUNT_ACTIVE",
                Resource::Account("USER_ACCOUNT_ID".into()),
            ),
            (
                "entitlement-offer-accepted.json",
                "ENTITLEMENT_OFFER_ACCEPTED",
                Resource::Entitlement("18f7b898-4024-4a2f-b9e8-520d661a8801".into()),
            ),
            (
                "entitlement-cancelled-stray-spaces.json",
                "ENTITLEMENT_CANCELLED",
                Resource::Entitlement("c91aecd0".into()),
            ),
        ] {
            let n = Notification::parse(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(
                (n.event_type.as_str(), &n.resource),
                (event_type, &resource),
                "{file}"
            );
            assert!(n.event_id.is_some(), "{file}");
        }
    }
}
