//! Q2 subscription events, as the vendor's Q2 marketplace extension relays
//! them to Tollgate's `POST /q2`: the SDK's `SubscriptionEvent` as JSON
//! (its field names in snake_case, or camelCase) with the AppDirect event
//! nested under `event`, or the bare AppDirect event; signed with
//! `Tollgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
//!
//! Q2 itself sends nothing to Tollgate and Tollgate calls nothing at Q2:
//! this builder is what tests build on, and [`stand_in`] plays Q2's
//! marketplace with it for `tollgate fire q2` (it holds the subscriptions
//! and relays each event). Field values follow Q2's sample event (`Q2TOTALACCESS`
//! marketplace, an online-banking user as creator) and AppDirect's order
//! payload (`editionCode`, `pricingDuration`, `items[{unit, quantity}]`).

pub mod stand_in;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

/// The header the signature goes in.
pub const SIGNATURE_HEADER: &str = "Tollgate-Signature";

/// The three event types Q2 sends a marketplace extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

/// How the relay writes the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Casing {
    /// The dataclass field names (`subscription_id`, ...).
    #[default]
    Snake,
    /// Their camelCase forms (`subscriptionId`, ...).
    Camel,
    /// The AppDirect event alone (no envelope).
    Bare,
}

/// An online-banking user of a financial institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub fi_name: String,
    /// The user's id in the institution's Q2 database.
    pub user_id: u64,
    /// The user's uuid on the marketplace.
    pub sso_user_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl Subscriber {
    /// The demo user of `tollgate fire q2` (and of Q2's sample event).
    pub fn demo() -> Self {
        Self {
            fi_name: "Local Credit Union".into(),
            user_id: 123_456,
            sso_user_id: "4fc5fb4b-9809-49b5-abc5-7dab4544e685".into(),
            email: "jdoe@q2ebanking.com".into(),
            first_name: "John".into(),
            last_name: "Doe".into(),
        }
    }

    /// The AppDirect marketplace of the user's institution (what a bare
    /// event names it by).
    pub fn marketplace_url(&self) -> String {
        let slug: String = self
            .fi_name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        format!("https://{slug}.q2marketplace.example")
    }
}

/// One event, ready to be written in any casing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionEvent {
    pub event_type: EventType,
    pub subscription_id: String,
    pub subscriber: Subscriber,
    pub product_identifier: String,
    pub extension_name: String,
    /// `editionCode`; orders and changes carry one.
    pub edition: Option<String>,
    /// `pricingDuration`: `MONTHLY` or `YEARLY`.
    pub pricing_duration: String,
    /// The quantity of the `USER` item.
    pub users: u32,
    pub created: DateTime<Utc>,
    pub casing: Casing,
}

impl SubscriptionEvent {
    pub fn new(
        event_type: EventType,
        subscription_id: impl Into<String>,
        subscriber: Subscriber,
        product_identifier: impl Into<String>,
        created: DateTime<Utc>,
    ) -> Self {
        Self {
            event_type,
            subscription_id: subscription_id.into(),
            subscriber,
            product_identifier: product_identifier.into(),
            extension_name: "BudgetHelperMarketplace".into(),
            edition: None,
            pricing_duration: "MONTHLY".into(),
            users: 1,
            created,
            casing: Casing::Snake,
        }
    }

    pub fn with_edition(mut self, edition: impl Into<String>) -> Self {
        self.edition = Some(edition.into());
        self
    }

    pub fn with_users(mut self, users: u32) -> Self {
        self.users = users;
        self
    }

    pub fn with_pricing(mut self, duration: impl Into<String>) -> Self {
        self.pricing_duration = duration.into();
        self
    }

    pub fn with_casing(mut self, casing: Casing) -> Self {
        self.casing = casing;
        self
    }

    pub fn with_extension(mut self, name: impl Into<String>) -> Self {
        self.extension_name = name.into();
        self
    }

    /// The AppDirect event Q2 received from the marketplace.
    pub fn appdirect(&self) -> Value {
        let s = &self.subscriber;
        let mut payload = Map::new();
        if self.event_type != EventType::Order {
            payload.insert(
                "account".into(),
                json!({"accountIdentifier": self.subscription_id, "status": "ACTIVE"}),
            );
        } else {
            payload.insert(
                "company".into(),
                json!({"uuid": s.sso_user_id, "name": format!("{} {}", s.first_name, s.last_name), "country": "US"}),
            );
        }
        if let Some(edition) = &self.edition {
            payload.insert(
                "order".into(),
                json!({
                    "editionCode": edition,
                    "pricingDuration": self.pricing_duration,
                    "items": [{"unit": "USER", "quantity": self.users.to_string()}],
                }),
            );
        }
        let base_url = match self.casing {
            Casing::Bare => s.marketplace_url(),
            Casing::Snake | Casing::Camel => "https://testq2totalaccess.appdirect.com".into(),
        };
        json!({
            "type": self.event_type.as_str(),
            "flag": null,
            "applicationUuid": self.product_identifier,
            "marketplace": {"partner": "Q2TOTALACCESS", "baseUrl": base_url},
            "creator": {
                "uuid": s.sso_user_id,
                "openId": format!("https://testq2totalaccess.appdirect.com/openid/id/{}", s.sso_user_id),
                "email": s.email,
                "firstName": s.first_name,
                "lastName": s.last_name,
                "language": "en",
                "locale": "en-US",
            },
            "payload": payload,
        })
    }

    /// The JSON the relay POSTs.
    pub fn to_json(&self) -> Value {
        if self.casing == Casing::Bare {
            return self.appdirect();
        }
        let s = &self.subscriber;
        let time = self.created.to_rfc3339_opts(SecondsFormat::Millis, true);
        let fields: [(&str, &str, Value); 11] = [
            ("event_type", "eventType", json!(self.event_type.as_str())),
            (
                "subscription_id",
                "subscriptionId",
                json!(self.subscription_id),
            ),
            ("sso_user_id", "ssoUserId", json!(s.sso_user_id)),
            ("user_id", "userId", json!(s.user_id)),
            ("fi_name", "fiName", json!(s.fi_name)),
            (
                "product_identifier",
                "productIdentifier",
                json!(self.product_identifier),
            ),
            (
                "extension_name",
                "extensionName",
                json!(self.extension_name),
            ),
            (
                "extension_url",
                "extensionUrl",
                json!(format!(
                    "https://q2.example/marketplace/{}",
                    self.extension_name
                )),
            ),
            ("created", "created", json!(time)),
            ("processed", "processed", json!(time)),
            ("event", "event", self.appdirect()),
        ];
        let camel = self.casing == Casing::Camel;
        Value::Object(
            fields
                .into_iter()
                .map(|(snake, camel_name, v)| {
                    ((if camel { camel_name } else { snake }).to_owned(), v)
                })
                .collect(),
        )
    }

    /// Compact JSON bytes, as sent (the signature covers exactly these).
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).unwrap_or_default()
    }

    /// The customer id apps check for this user: `<institution>:<user>` —
    /// for a bare event, the marketplace URL and the marketplace user,
    /// which is all a bare event says.
    pub fn customer_id(&self) -> String {
        let s = &self.subscriber;
        match self.casing {
            Casing::Bare => format!("{}:{}", s.marketplace_url(), s.sso_user_id),
            Casing::Snake | Casing::Camel => format!("{}:{}", s.fi_name, s.user_id),
        }
    }
}

/// The `Tollgate-Signature` value for `body` sent at Unix time `t`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={t},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// A fresh subscription GUID, as Q2 issues them.
pub fn new_subscription_id() -> String {
    let mut b = [0u8; 16];
    // The OS generator only fails without an entropy source; a fixed id is
    // then still a valid (if repeated) GUID for a local test.
    let _ = getrandom::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use tollgate::marketplace::q2::event::{EventType as Read, parse};

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
    }

    fn event(t: EventType) -> SubscriptionEvent {
        SubscriptionEvent::new(
            t,
            "sub-1",
            Subscriber::demo(),
            "3f2c7f0e-budgethelper",
            at(),
        )
        .with_edition("PREMIUM")
    }

    #[test]
    fn every_type_in_every_casing_reads_back_with_tollgates_parser() {
        for t in EventType::ALL {
            for casing in [Casing::Snake, Casing::Camel] {
                let e = event(t).with_casing(casing);
                let read = parse(&e.body()).unwrap();
                assert_eq!(read.event_type.as_str(), t.as_str());
                assert_eq!(read.subscription_id, "sub-1");
                assert_eq!(read.user_id, "123456");
                assert_eq!(read.institution, "Local Credit Union");
                assert_eq!(read.edition.as_deref(), Some("PREMIUM"));
                assert_eq!(read.users, Some(1));
                assert_eq!(
                    format!("{}:{}", read.institution, read.user_id),
                    e.customer_id()
                );
            }
        }
        let bare = event(EventType::Cancel).with_casing(Casing::Bare);
        let read = parse(&bare.body()).unwrap();
        assert_eq!(read.event_type, Read::Cancel);
        assert_eq!(read.subscription_id, "sub-1");
        assert_eq!(
            format!("{}:{}", read.institution, read.user_id),
            bare.customer_id()
        );
    }

    #[test]
    fn camel_case_uses_camel_case_keys() {
        let v = event(EventType::Order).with_casing(Casing::Camel).to_json();
        assert!(v.get("subscriptionId").is_some() && v.get("subscription_id").is_none());
        assert!(v["userId"].is_number());
    }

    #[test]
    fn signatures_verify_with_tollgates_verifier() {
        let body = event(EventType::Order).body();
        let t = at().timestamp();
        let header = sign(b"secret", t, &body);
        assert_eq!(
            header,
            tollgate::marketplace::q2::signature::sign(b"secret", t, &body)
        );
        assert_eq!(
            tollgate::marketplace::q2::signature::verify_any(
                [b"secret".as_slice()],
                &body,
                Some(&header),
                at()
            ),
            Ok(())
        );
    }

    #[test]
    fn subscription_ids_are_version_4_guids() {
        let id = new_subscription_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_subscription_id());
    }
}
