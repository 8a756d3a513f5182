//! The marketplaces' parsers and signature checks, pinned where mutation
//! testing (`make mutants`) found behaviour no unit test held: each test
//! names the rule it keeps, from the module docs or the marketplace's own
//! documentation, not just today's output.

use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_core::marketplace::gcp::notification::{
    Envelope, Notification, NotificationError, Resource, delivery_id,
};
use tollgate_core::marketplace::github::webhook::{Action, Text};
use tollgate_core::marketplace::q2::event::{self, EventError};

// --- Google: the Pub/Sub envelope and the Marketplace notification ---

fn push(notification: &Value) -> Envelope {
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(notification.to_string());
    let body = json!({"message": {"data": data, "messageId": "m-1"}});
    Envelope::parse(body.to_string().as_bytes()).expect("an envelope")
}

#[test]
fn a_blank_entitlement_id_is_no_entitlement_and_the_account_is_read_instead() {
    let n = Notification::parse(
        br#"{"eventType":"X","entitlement":{"id":"  "},"account":{"id":"acct-1"}}"#,
    )
    .unwrap();
    assert_eq!(n.resource, Resource::Account("acct-1".into()));
}

#[test]
fn blank_ids_alone_name_no_resource() {
    for body in [
        &br#"{"eventType":"X","entitlement":{"id":""}}"#[..],
        br#"{"eventType":"X","account":{"id":" "}}"#,
    ] {
        assert_eq!(
            Notification::parse(body).unwrap_err(),
            NotificationError::NoResource,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_delivery_id_is_at_most_200_visible_ascii_characters() {
    // It becomes a store key and a log field (notification.rs).
    let id_of = |event_id: String| {
        delivery_id(&push(
            &json!({"eventId": event_id, "eventType": "X", "account": {"id": "a"}}),
        ))
    };
    let longest = "e".repeat(200);
    assert_eq!(id_of(longest.clone()), Some(longest));
    assert_eq!(id_of("e".repeat(201)), None, "too long");
    assert_eq!(
        id_of("event 1".into()),
        None,
        "a space is not visible ASCII"
    );
    assert_eq!(id_of("événement".into()), None, "not ASCII");
}

// --- GitHub: the marketplace_purchase payload ---

#[test]
fn every_action_reads_back_as_the_name_github_sent() {
    // Unknown actions are kept by name so they are recorded, never dropped.
    for name in [
        "purchased",
        "pending_change",
        "pending_change_cancelled",
        "changed",
        "cancelled",
        "renewed",
    ] {
        assert_eq!(Action::named(name).as_str(), name);
    }
    assert_eq!(Action::named("pending_change"), Action::PendingChange);
}

#[test]
fn text_fields_read_from_any_serde_source_including_owned_strings() {
    // serde_json hands borrowed strings to `visit_borrowed_str`; other
    // sources (a `Value`, a reader) hand owned ones to `visit_string`.
    let text = Text::deserialize(Value::String("acme".into())).unwrap();
    assert_eq!(&*text, "acme");
}

// --- Q2: the subscription event ---

fn q2_order() -> Value {
    json!({
        "event_type": "SUBSCRIPTION_ORDER",
        "subscription_id": "9b0d6a52-2f0e-4e4f-9a39-0c1f7c1d2e11",
        "user_id": 123456,
        "fi_name": "Local Credit Union",
        "product_identifier": "budgethelper",
        "event": {
            "type": "SUBSCRIPTION_ORDER",
            "marketplace": {"partner": "Q2TOTALACCESS", "baseUrl": "https://fi.appdirect.example"},
            "payload": {"order": {"editionCode": "PREMIUM",
                                  "items": [{"unit": "MEGABYTE", "quantity": 500},
                                            {"unit": "USER", "quantity": "25"}]}}
        }
    })
}

fn q2(v: &Value) -> Result<event::Q2Event, EventError> {
    event::parse(v.to_string().as_bytes())
}

#[test]
fn the_user_count_is_the_quantity_of_the_user_item() {
    assert_eq!(q2(&q2_order()).unwrap().users, Some(25));
    let mut no_users = q2_order();
    no_users["event"]["payload"]["order"]["items"] = json!([{"unit": "MEGABYTE", "quantity": 5}]);
    assert_eq!(q2(&no_users).unwrap().users, None);
}

#[test]
fn a_blank_field_counts_as_absent() {
    // Blank `fi_name`: the institution comes from AppDirect's marketplace.
    let mut blank = q2_order();
    blank["fi_name"] = json!("   ");
    assert_eq!(
        q2(&blank).unwrap().institution,
        "https://fi.appdirect.example"
    );
    // A change must name its subscription; a blank one names none.
    let mut change = q2_order();
    change["event_type"] = json!("SUBSCRIPTION_CHANGE");
    change["event"]["type"] = json!("SUBSCRIPTION_CHANGE");
    change["subscription_id"] = json!("");
    assert_eq!(q2(&change), Err(EventError::Missing("subscription_id")));
}

#[test]
fn ids_of_256_characters_are_accepted_and_longer_ones_refused() {
    let mut v = q2_order();
    v["subscription_id"] = json!("s".repeat(256));
    assert_eq!(q2(&v).unwrap().subscription_id.len(), 256);
    v["subscription_id"] = json!("s".repeat(257));
    assert_eq!(q2(&v), Err(EventError::BadId("subscription_id")));
}

#[test]
fn a_yearly_order_in_any_of_appdirects_spellings_bills_yearly() {
    use tollgate_core::model::BillingCycle;
    for duration in ["YEARLY", "year", "Annual", "ANNUALLY"] {
        let mut v = q2_order();
        v["event"]["payload"]["order"]["pricingDuration"] = json!(duration);
        assert_eq!(
            q2(&v).unwrap().billing_cycle,
            Some(BillingCycle::Yearly),
            "{duration}"
        );
    }
}

// --- Q2: the Tollgate-Signature header ---

#[test]
fn up_to_four_v1_tags_are_accepted() {
    use tollgate_core::marketplace::q2::signature::{SignatureError, sign, verify_any};
    // "one to four `v1=<64 hex>`" (signature.rs): a relay mid-rotation may
    // send several; the right one may come last.
    let (secret, body, t) = (&b"whsec"[..], &b"{}"[..], 1_714_572_191);
    let now = chrono::DateTime::from_timestamp(t, 0).unwrap();
    let good = sign(secret, t, body);
    let good_tag = &good[good.find("v1=").unwrap()..];
    let wrong = format!("v1={}", "0".repeat(64));
    let header = |tags: usize| {
        let mut parts = vec![format!("t={t}")];
        parts.extend(std::iter::repeat_n(wrong.clone(), tags - 1));
        parts.push(good_tag.to_owned());
        parts.join(",")
    };
    assert_eq!(verify_any([secret], body, Some(&header(4)), now), Ok(()));
    assert_eq!(
        verify_any([secret], body, Some(&header(5)), now),
        Err(SignatureError::Malformed)
    );
}
