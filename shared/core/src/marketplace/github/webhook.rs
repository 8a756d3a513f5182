//! The `marketplace_purchase` webhook payload: tolerant parsing and
//! normalization into a [`MarketEvent`].
//!
//! # Tolerance
//!
//! GitHub's own material disagrees with itself: the payload example on
//! <https://docs.github.com/webhooks/webhook-events-and-payloads#marketplace_purchase>
//! spells `price_model` `PER_UNIT`, the examples of `@octokit/webhooks-examples`
//! (vendored in `tests/fixtures/github/`) spell it `per-unit` and `flat-rate`,
//! and the nullability of several fields differs between the two. So the
//! types accept every variant seen: `price_model` in any casing with `-` or
//! `_` (`PER_UNIT`, `per-unit`, `FLAT_RATE`, `flat-rate`, `FREE`); the
//! account `type` (`User`, `Organization`) in any casing; null or absent
//! `organization_billing_email` (personal accounts), `billing_cycle` and
//! `next_billing_date` (free plans), `free_trial_ends_on`, `unit_count`;
//! every field of `previous_marketplace_purchase` optional; unknown fields
//! ignored; unknown actions kept by name so they are recorded and
//! acknowledged, never dropped. Only what Tollgate needs is required:
//! `action`, `effective_date`, and the purchase's account id and plan id.
//!
//! The readers of GitHub's values ([`price_model`], [`account_kind`],
//! [`parse_time`], [`describe_json_error`]) are the only ones in the workspace:
//! the REST client (`tollgate::marketplace::github::client`) reads its
//! replies with them too.
//!
//! # Semantics
//!
//! Per GitHub's "Webhook events for the GitHub Marketplace API"
//! (<https://docs.github.com/apps/github-marketplace/using-the-github-marketplace-api-in-your-app/webhook-events-for-the-github-marketplace-api>):
//!
//! | action | event |
//! |---|---|
//! | `purchased` | [`EventKind::Purchased`]; a trial when `on_free_trial` (ends on `free_trial_ends_on`, else 14 days after `effective_date`) |
//! | `changed` | [`EventKind::Changed`]: takes effect now (upgrade, effective downgrade, trial conversion, seat change, revert of a failed upgrade) |
//! | `pending_change` | [`EventKind::ChangePending`] to the plan in `marketplace_purchase` at `effective_date`, or [`EventKind::CancellationPending`] when that plan, unit count and billing cycle equal the previous purchase's (see below) |
//! | `pending_change_cancelled` | [`EventKind::PendingChangeWithdrawn`] |
//! | `cancelled` | [`EventKind::Cancelled`] with the cancelled plan; access until `effective_date`, except trials and free plans, which end at once |
//! | anything else | [`EventKind::Unknown`] named `marketplace_purchase.<action>` |
//!
//! Per-unit plans carry seats (`unit_count`); flat-rate and free plans carry
//! none, whatever `unit_count` says (GitHub sends 0 or 1 for them).
//!
//! `pending_change` is sent when a customer downgrades *or cancels* a paid
//! plan (the change applies at the end of the cycle). GitHub publishes no
//! example and does not say how a pending cancellation looks. The payload is
//! documented as "the purchase after the action" plus the previous one, so a
//! downgrade names a different plan, unit count or billing cycle; a payload
//! whose target equals the previous purchase changes nothing, which only a
//! cancellation explains. Anything else, including a previous purchase that
//! is absent or incomplete, is taken as a plan change: that is the safe
//! reading, since a pending plan change keeps today's access and the
//! `cancelled` that follows ends it anyway. This reading is an inference,
//! not something GitHub documents.
//!
//! # Ordering
//!
//! The ordering key ([`MarketEvent::effective_at`]) is `effective_date`,
//! which GitHub gives at day granularity (`…T00:00:00+00:00`), so same-day
//! events tie and [`crate::rules`] applies them in arrival order (a same-day
//! `changed` after an upgrade is the revert of a failed upgrade; after a
//! cancellation only a re-purchase applies; a same-day `purchased` after
//! other events is a late delivery and stale).
//!
//! One adjustment: an event is never ordered after the UTC day it was
//! received. `pending_change` names the *future* date the change applies
//! (end of the billing cycle); taken as the ordering key, it would make every
//! later event of the current cycle — an upgrade, the withdrawal
//! (`pending_change_cancelled`) — look older and be dropped as stale. So the
//! key is `min(effective_date, start of the UTC day received)`, while the
//! announced date is kept in the pending change itself. Events of the past
//! (a redelivery days later) keep their own `effective_date`.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use serde::de::{Deserializer, Visitor};

use crate::model::{
    AccountKind, BillingCycle, Customer, CustomerKey, EventKind, MarketEvent, Marketplace, Plan,
    PlanTerms, PriceModel, SubscriptionKey,
};

/// The `X-GitHub-Event` value of a Marketplace purchase.
pub const EVENT: &str = "marketplace_purchase";

/// GitHub Marketplace free trials last 14 days ("Free trials have a fixed
/// length of 14 days",
/// <https://docs.github.com/apps/github-marketplace/selling-your-app-on-github-marketplace/pricing-plans-for-github-marketplace-apps>);
/// used only when a trial purchase omits `free_trial_ends_on`.
pub const TRIAL_LENGTH: Duration = Duration::days(14);

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or JSON of the wrong shape for a known field. The message
    /// says what is wrong and where (line, column), never a value from the
    /// body (see [`describe_json_error`]).
    /// Also a field Tollgate cannot do without, absent or null (`` `plan`
    /// is missing at line 1 column 80 ``), and an `effective_date` that is
    /// not a date-time.
    #[error("not a marketplace_purchase payload: {0}")]
    Invalid(String),
}

/// A string field that borrows from the body when it can. (serde's own
/// `#[serde(borrow)]` does not borrow through `Option<Cow<str>>`, and these
/// fields are nullable.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        deserializer.deserialize_str(TextVisitor).map(Text)
    }
}

/// A `marketplace_purchase` action. Unknown actions keep their name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Purchased,
    PendingChange,
    PendingChangeCancelled,
    Changed,
    Cancelled,
    Unknown(String),
}

impl Action {
    /// The action GitHub names `name`; only an unknown name is copied.
    pub fn named(name: &str) -> Self {
        match name {
            "purchased" => Action::Purchased,
            "pending_change" => Action::PendingChange,
            "pending_change_cancelled" => Action::PendingChangeCancelled,
            "changed" => Action::Changed,
            "cancelled" => Action::Cancelled,
            _ => Action::Unknown(name.to_owned()),
        }
    }
}

/// Read through [`Text`], so a known action (every delivery) costs no
/// allocation.
impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Text::deserialize(deserializer).map(|name| Action::named(&name))
    }
}

impl Action {
    pub fn as_str(&self) -> &str {
        match self {
            Action::Purchased => "purchased",
            Action::PendingChange => "pending_change",
            Action::PendingChangeCancelled => "pending_change_cancelled",
            Action::Changed => "changed",
            Action::Cancelled => "cancelled",
            Action::Unknown(name) => name,
        }
    }
}

/// A `marketplace_purchase` delivery, read straight from the body into this
/// shape, borrowing its strings: it runs on every delivery, right after the
/// signature check, so nothing is copied twice. What Tollgate cannot do
/// without is required, as GitHub's schema requires it (the action, the
/// date, the purchase with its account's and plan's ids); everything else
/// may be absent or null. Fields Tollgate does not use (`sender`, prices,
/// `bullets`, `node_id`, …) are skipped without being allocated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(expecting = "a marketplace_purchase payload")]
pub struct PurchaseEvent<'a> {
    pub action: Action,
    #[serde(deserialize_with = "effective_date")]
    pub effective_date: DateTime<Utc>,
    /// The purchase after the action (for `pending_change`: the target).
    #[serde(borrow, rename = "marketplace_purchase")]
    pub purchase: RawPurchase<'a>,
    #[serde(borrow, rename = "previous_marketplace_purchase")]
    pub previous: Option<PreviousPurchase<'a>>,
}

impl PurchaseEvent<'_> {
    /// The GitHub account that holds the subscription.
    pub fn account_id(&self) -> u64 {
        self.purchase.account.id
    }
}

/// `effective_date` through [`parse_time`]; the error names the field, never
/// the value.
fn effective_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let raw = Text::deserialize(deserializer)?;
    parse_time(&raw).ok_or_else(|| serde::de::Error::custom("`effective_date` is not a date-time"))
}

/// `marketplace_purchase`. (Each type's `expecting` names it in an error
/// as GitHub does, not by its Rust name.)
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(expecting = "a purchase")]
pub struct RawPurchase<'a> {
    #[serde(borrow)]
    pub account: RawAccount<'a>,
    #[serde(borrow)]
    pub billing_cycle: Option<Text<'a>>,
    pub unit_count: Option<i64>,
    pub on_free_trial: Option<bool>,
    #[serde(borrow)]
    pub free_trial_ends_on: Option<Text<'a>>,
    #[serde(borrow)]
    pub next_billing_date: Option<Text<'a>>,
    #[serde(borrow)]
    pub plan: RawPlan<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(expecting = "an account")]
pub struct RawAccount<'a> {
    pub id: u64,
    #[serde(borrow)]
    pub login: Option<Text<'a>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Text<'a>>,
    #[serde(borrow)]
    pub organization_billing_email: Option<Text<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(expecting = "a plan")]
pub struct RawPlan<'a> {
    pub id: u64,
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    #[serde(borrow)]
    pub price_model: Option<Text<'a>>,
}

/// What Tollgate reads of `previous_marketplace_purchase`: what tells a
/// `pending_change` that changes nothing (a cancellation) from a real one.
/// GitHub's examples carry the whole purchase; here every field may be
/// absent, since nothing else is read from it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(expecting = "a purchase")]
pub struct PreviousPurchase<'a> {
    pub plan: Option<PreviousPlan>,
    pub unit_count: Option<i64>,
    #[serde(borrow)]
    pub billing_cycle: Option<Text<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(expecting = "a plan")]
pub struct PreviousPlan {
    pub id: Option<u64>,
}

/// Parses a `marketplace_purchase` body. Pure and allocation-light (strings
/// borrow from `body` unless they contain escapes).
pub fn parse(body: &[u8]) -> Result<PurchaseEvent<'_>, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError::Invalid(describe_json_error(&e)))
}

/// What [`normalize`] needs to know about the delivery itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryInfo<'a> {
    /// `X-GitHub-Delivery`: the event id and dedupe key.
    pub id: &'a str,
    /// When Tollgate first recorded the delivery (replay passes the
    /// recorded time, so replaying orders events as they arrived).
    pub received_at: DateTime<Utc>,
}

/// The subscription of a GitHub account: one per account per listing.
pub fn subscription_key(account_id: u64) -> SubscriptionKey {
    SubscriptionKey::new(Marketplace::Github, account_id.to_string())
}

/// Where deliveries that belong to no subscription (events other than
/// `marketplace_purchase` sent to the listing's hook) are logged, so they
/// show up somewhere instead of vanishing. Not a number, so it can never be a
/// GitHub account id.
pub fn unrouted_key() -> SubscriptionKey {
    SubscriptionKey::new(Marketplace::Github, "_unrouted")
}

/// Turns a parsed purchase event into Tollgate's normalized event for
/// `product` (the one product a GitHub listing sells).
pub fn normalize(
    event: &PurchaseEvent<'_>,
    delivery: DeliveryInfo<'_>,
    product: &str,
) -> MarketEvent {
    let purchase = &event.purchase;
    let terms = plan_terms(purchase, event.effective_date);
    let kind = match &event.action {
        Action::Purchased => EventKind::Purchased {
            terms,
            awaiting: None,
        },
        Action::Changed => EventKind::Changed { terms },
        Action::PendingChange if is_unchanged(purchase, event.previous.as_ref()) => {
            EventKind::CancellationPending {
                effective_at: event.effective_date,
            }
        }
        Action::PendingChange => EventKind::ChangePending {
            plan: terms.plan,
            seats: terms.seats,
            effective_at: event.effective_date,
        },
        Action::PendingChangeCancelled => EventKind::PendingChangeWithdrawn,
        Action::Cancelled => {
            // Trials and free plans end the moment they are cancelled; a paid
            // plan's `cancelled` arrives when the cycle ends, so access lasts
            // until `effective_date` (normally already past).
            let ends_at_once = purchase.on_free_trial == Some(true)
                || terms.plan.price_model == Some(PriceModel::Free);
            EventKind::Cancelled {
                plan: Some(terms.plan),
                access_until: (!ends_at_once).then_some(event.effective_date),
            }
        }
        Action::Unknown(name) => EventKind::Unknown {
            name: format!("{EVENT}.{name}"),
        },
    };
    MarketEvent {
        id: delivery.id.to_owned(),
        subscription: subscription_key(event.account_id()),
        customer: customer(&purchase.account),
        product: product.to_owned(),
        effective_at: ordering_key(event.effective_date, delivery.received_at),
        kind,
    }
}

/// A delivery of an event type Tollgate does not handle: recorded under
/// [`unrouted_key`] and acknowledged.
pub fn unrouted(event_name: &str, delivery: DeliveryInfo<'_>, product: &str) -> MarketEvent {
    let key = unrouted_key();
    MarketEvent {
        id: delivery.id.to_owned(),
        customer: Customer::new(CustomerKey::new(key.marketplace, key.id.clone())),
        subscription: key,
        product: product.to_owned(),
        effective_at: delivery.received_at,
        kind: EventKind::Unknown {
            name: event_name.to_owned(),
        },
    }
}

/// See the module doc: never after the UTC day the delivery was received.
fn ordering_key(effective_date: DateTime<Utc>, received_at: DateTime<Utc>) -> DateTime<Utc> {
    let received_day =
        Utc.from_utc_datetime(&received_at.date_naive().and_time(chrono::NaiveTime::MIN));
    effective_date.min(received_day)
}

fn plan_terms(purchase: &RawPurchase<'_>, effective_date: DateTime<Utc>) -> PlanTerms {
    let raw_plan = &purchase.plan;
    let price_model = raw_plan.price_model.as_deref().and_then(price_model);
    let plan = Plan {
        id: raw_plan.id.to_string(),
        name: raw_plan.name.as_deref().map(str::to_owned),
        price_model,
    };
    let seats = match price_model {
        Some(PriceModel::PerUnit) => purchase.unit_count.and_then(|n| u32::try_from(n).ok()),
        _ => None,
    };
    let trial_ends_at = if purchase.on_free_trial == Some(true) {
        let stated = purchase.free_trial_ends_on.as_deref().and_then(parse_time);
        Some(stated.unwrap_or(effective_date + TRIAL_LENGTH))
    } else {
        None
    };
    PlanTerms {
        plan,
        seats,
        billing_cycle: purchase.billing_cycle.as_deref().and_then(billing_cycle),
        trial_ends_at,
        next_billing_at: purchase.next_billing_date.as_deref().and_then(parse_time),
    }
}

/// True when a `pending_change` names exactly the previous purchase: same
/// plan, unit count and billing cycle, i.e. nothing to change to.
fn is_unchanged(target: &RawPurchase<'_>, previous: Option<&PreviousPurchase<'_>>) -> bool {
    let Some(previous) = previous else {
        return false;
    };
    let cycle = |c: &Option<Text<'_>>| c.as_deref().and_then(billing_cycle);
    previous.plan.and_then(|plan| plan.id) == Some(target.plan.id)
        && previous.unit_count.is_some()
        && previous.unit_count == target.unit_count
        && previous.billing_cycle.is_some()
        && cycle(&previous.billing_cycle) == cycle(&target.billing_cycle)
}

fn customer(account: &RawAccount<'_>) -> Customer {
    Customer {
        key: CustomerKey::new(Marketplace::Github, account.id.to_string()),
        name: account.login.as_deref().map(str::to_owned),
        kind: account.kind.as_deref().and_then(account_kind),
        billing_email: account
            .organization_billing_email
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(str::to_owned),
    }
}

// GitHub's values, read once for the whole workspace: the webhook above and the
// REST client's replies (`tollgate::marketplace::github::client`) go
// through these.

/// `PER_UNIT`, `per-unit`, `Per_Unit`, `FLAT_RATE`, `flat-rate`, `FREE`, …:
/// any casing, with `-`, `_`, a space or nothing between the words. Unknown
/// models map to `None` (the plan then carries no seats).
pub fn price_model(raw: &str) -> Option<PriceModel> {
    let normalized: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    match normalized.as_str() {
        "free" => Some(PriceModel::Free),
        "flatrate" => Some(PriceModel::FlatRate),
        "perunit" => Some(PriceModel::PerUnit),
        _ => None,
    }
}

/// An account's `type`: `User` or `Organization`, in any casing; anything
/// else (`Bot`, …) is `None`.
pub fn account_kind(raw: &str) -> Option<AccountKind> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("organization") {
        Some(AccountKind::Organization)
    } else if raw.eq_ignore_ascii_case("user") {
        Some(AccountKind::User)
    } else {
        None
    }
}

/// GitHub's timestamps: RFC 3339 with any offset (`Z`, `+00:00`, …), or a
/// bare `YYYY-MM-DD` taken as midnight UTC.
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Some(t) = whole_seconds_rfc3339(raw) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .map(|d| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)))
}

/// The form GitHub sends on every delivery, `YYYY-MM-DDTHH:MM:SS` then `Z`
/// or `±HH:MM`, read by position: a third of chrono's general RFC 3339
/// parser's time, on the webhook's hot path. Anything else — fractions,
/// a leap second, an impossible date — is `None` here and left to chrono.
fn whole_seconds_rfc3339(raw: &str) -> Option<DateTime<Utc>> {
    let b = raw.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !separators.iter().all(|&(i, c)| b.get(i) == Some(&c)) {
        return None;
    }
    let offset_seconds = match (b.get(19), b.len()) {
        (Some(b'Z'), 20) => 0,
        (Some(&sign @ (b'+' | b'-')), 25) if b.get(22) == Some(&b':') => {
            let (hours, minutes) = (number(20..22)?, number(23..25)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = i32::try_from(hours * 3600 + minutes * 60).ok()?;
            if sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(0..4)?).ok()?,
        number(5..7)?,
        number(8..10)?,
    )?;
    let time = chrono::NaiveTime::from_hms_opt(number(11..13)?, number(14..16)?, number(17..19)?)?;
    let offset = chrono::FixedOffset::east_opt(offset_seconds)?;
    let local = date.and_time(time).and_local_timezone(offset).single()?;
    Some(local.with_timezone(&Utc))
}

/// Why a JSON document from outside did not deserialize, never quoting a
/// value: the one description used across the workspace (kept under this
/// name for the modules that import it from here).
pub use crate::json_error::describe as describe_json_error;

/// GitHub's `billing_cycle` in any casing (the webhook and the listing API
/// alike).
pub fn billing_cycle(raw: &str) -> Option<BillingCycle> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("monthly") {
        Some(BillingCycle::Monthly)
    } else if raw.eq_ignore_ascii_case("yearly") {
        Some(BillingCycle::Yearly)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;
    use serde_json::{Value, json};

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    fn purchase(plan_id: u64, price_model: &str, units: Value) -> Value {
        json!({
            "account": {"type": "Organization", "id": 42, "login": "acme",
                        "organization_billing_email": "billing@acme.test"},
            "billing_cycle": "monthly", "unit_count": units, "on_free_trial": false,
            "free_trial_ends_on": null, "next_billing_date": "2026-04-01T00:00:00+00:00",
            "plan": {"id": plan_id, "name": "Team", "price_model": price_model, "unit_name": "seat"}
        })
    }

    fn payload(action: &str, date: &str, current: Value, previous: Option<Value>) -> Vec<u8> {
        let mut v = json!({"action": action, "effective_date": date, "sender": {"login": "octo"},
                           "marketplace_purchase": current});
        if let Some(p) = previous {
            v["previous_marketplace_purchase"] = p;
        }
        serde_json::to_vec(&v).unwrap()
    }

    fn normalized(body: &[u8], received: &str) -> MarketEvent {
        let event = parse(body).unwrap();
        normalize(
            &event,
            DeliveryInfo {
                id: "d-1",
                received_at: t(received),
            },
            "acme-ci",
        )
    }

    #[test]
    fn price_model_is_read_in_any_casing_and_separator() {
        for raw in ["PER_UNIT", "per-unit", "Per_Unit", "perunit", " per unit "] {
            assert_eq!(price_model(raw), Some(PriceModel::PerUnit), "{raw}");
        }
        for raw in ["FLAT_RATE", "flat-rate", "Flat-Rate"] {
            assert_eq!(price_model(raw), Some(PriceModel::FlatRate), "{raw}");
        }
        assert_eq!(price_model("FREE"), Some(PriceModel::Free));
        assert_eq!(price_model("free"), Some(PriceModel::Free));
        assert_eq!(price_model("PER_SEAT_TIERED"), None);
        assert_eq!(price_model("bogus"), None);
    }

    #[test]
    fn account_type_is_read_in_any_casing() {
        for raw in [
            "Organization",
            "organization",
            "ORGANIZATION",
            " Organization ",
        ] {
            assert_eq!(account_kind(raw), Some(AccountKind::Organization), "{raw}");
        }
        for raw in ["User", "user", "USER"] {
            assert_eq!(account_kind(raw), Some(AccountKind::User), "{raw}");
        }
        assert_eq!(account_kind("Bot"), None);
        assert_eq!(account_kind(""), None);
    }

    #[test]
    fn times_are_rfc3339_with_any_offset_or_a_bare_date() {
        let midnight = Utc.with_ymd_and_hms(2017, 10, 25, 0, 0, 0).unwrap();
        for raw in [
            "2017-10-25T00:00:00+00:00",
            "2017-10-25T00:00:00Z",
            "2017-10-25T02:00:00+02:00",
            "2017-10-25",
            " 2017-10-25 ",
        ] {
            assert_eq!(parse_time(raw), Some(midnight), "{raw}");
        }
        for raw in ["", "yesterday", "2017-13-01", "25/10/2017"] {
            assert_eq!(parse_time(raw), None, "{raw}");
        }
    }

    /// The positional reader agrees with chrono wherever it answers, and
    /// leaves everything else to chrono: checked over every field's edge
    /// values, offsets either side, and malformed variants of each.
    #[test]
    fn the_fast_timestamp_reader_agrees_with_chrono() {
        let chrono_reads = |raw: &str| {
            DateTime::parse_from_rfc3339(raw)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        let mut answered = 0;
        for (y, mo, d) in [
            (2017, 10, 25),
            (2024, 2, 29),
            (2023, 2, 29),
            (1999, 12, 31),
            (2026, 13, 1),
            (2026, 4, 31),
            (2026, 0, 10),
            (2026, 1, 0),
        ] {
            for (h, mi, sec) in [
                (0, 0, 0),
                (23, 59, 59),
                (24, 0, 0),
                (12, 60, 0),
                (12, 0, 60),
                (7, 5, 3),
            ] {
                for offset in [
                    "Z", "z", "+00:00", "-00:00", "+02:00", "-07:30", "+23:59", "+24:00", "+02:60",
                    "+0200", "+02", "",
                ] {
                    let raw = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}{offset}");
                    let fast = whole_seconds_rfc3339(&raw);
                    if fast.is_some() {
                        answered += 1;
                        assert_eq!(fast, chrono_reads(&raw), "{raw}");
                    }
                    assert_eq!(
                        parse_time(&raw),
                        chrono_reads(&raw).or_else(|| parse_time_slow(&raw)),
                        "{raw}"
                    );
                }
            }
        }
        assert_eq!(
            answered,
            3 * 3 * 6,
            "valid dates × valid times × valid offsets"
        );
        // The positional reader agrees with chrono on every day of years
        // around each rule of the calendar (the epoch, centuries, 400-year
        // eras, the range's ends), either side of midnight UTC.
        for year in [
            0, 1, 4, 99, 100, 399, 400, 1600, 1900, 1969, 1970, 2000, 2100, 2400, 9999,
        ] {
            for month in 1..=12 {
                for day in 1..=31 {
                    for time in ["00:00:00Z", "23:59:59+05:30", "00:00:01-11:45"] {
                        let raw = format!("{year:04}-{month:02}-{day:02}T{time}");
                        assert_eq!(whole_seconds_rfc3339(&raw), chrono_reads(&raw), "{raw}");
                    }
                }
            }
        }
        // The forms GitHub sends take the fast path.
        for raw in [
            "2017-10-25T00:00:00+00:00",
            "2026-05-10T12:00:00Z",
            "2026-05-10T14:00:00-07:00",
        ] {
            assert!(whole_seconds_rfc3339(raw).is_some(), "{raw}");
        }
        for raw in [
            "2017-10-25t00:00:00Z",
            "2017-10-25T00:00:00.5Z",
            "2017-10-25 00:00:00Z",
            "2017-10-25T00:00:00+02:00x",
            "2017-10-25T00:00:00+02x00",
            "2017-1a-25T00:00:00Z",
            "+017-10-25T00:00:00Z",
            "2017-10-25T00:00:0\u{e9}Z",
        ] {
            assert_eq!(whole_seconds_rfc3339(raw), None, "{raw}");
            assert_eq!(parse_time(raw), chrono_reads(raw), "{raw}");
        }
    }

    /// `parse_time` without its fast path.
    fn parse_time_slow(raw: &str) -> Option<DateTime<Utc>> {
        NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
            .ok()
            .map(|d| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)))
    }

    #[test]
    fn purchased_per_unit_has_seats_equal_to_the_unit_count() {
        let e = normalized(
            &payload(
                "purchased",
                "2026-03-01T00:00:00+00:00",
                purchase(9, "PER_UNIT", json!(7)),
                None,
            ),
            "2026-03-01T10:00:00Z",
        );
        assert_eq!(
            e.subscription,
            SubscriptionKey::new(Marketplace::Github, "42")
        );
        assert_eq!(e.customer.kind, Some(AccountKind::Organization));
        assert_eq!(
            e.customer.billing_email.as_deref(),
            Some("billing@acme.test")
        );
        let EventKind::Purchased {
            terms,
            awaiting: None,
        } = e.kind
        else {
            panic!("{:?}", e.kind)
        };
        assert_eq!(terms.seats, Some(7));
        assert_eq!(terms.plan.price_model, Some(PriceModel::PerUnit));
        assert_eq!(terms.billing_cycle, Some(BillingCycle::Monthly));
        assert_eq!(terms.trial_ends_at, None);
    }

    #[test]
    fn flat_rate_and_free_plans_carry_no_seats() {
        for model in ["flat-rate", "FREE"] {
            let e = normalized(
                &payload(
                    "purchased",
                    "2026-03-01",
                    purchase(9, model, json!(1)),
                    None,
                ),
                "2026-03-01T10:00:00Z",
            );
            let EventKind::Purchased { terms, .. } = e.kind else {
                panic!()
            };
            assert_eq!(terms.seats, None, "{model}");
        }
    }

    #[test]
    fn purchased_on_a_free_trial_ends_on_free_trial_ends_on_or_after_14_days() {
        let mut p = purchase(9, "flat-rate", json!(1));
        p["on_free_trial"] = json!(true);
        p["free_trial_ends_on"] = json!("2026-03-15T00:00:00+00:00");
        let e = normalized(
            &payload("purchased", "2026-03-01T00:00:00+00:00", p.clone(), None),
            "2026-03-01T10:00:00Z",
        );
        let EventKind::Purchased { terms, .. } = e.kind else {
            panic!()
        };
        assert_eq!(terms.trial_ends_at, Some(t("2026-03-15")));
        p["free_trial_ends_on"] = Value::Null;
        let e = normalized(
            &payload("purchased", "2026-03-01T00:00:00+00:00", p, None),
            "2026-03-01T10:00:00Z",
        );
        let EventKind::Purchased { terms, .. } = e.kind else {
            panic!()
        };
        assert_eq!(terms.trial_ends_at, Some(t("2026-03-15")));
    }

    #[test]
    fn nullable_fields_may_be_null_or_absent() {
        let body = br#"{"action":"purchased","effective_date":"2026-03-01T00:00:00Z",
            "marketplace_purchase":{"account":{"type":"User","id":7,"login":"solo",
              "organization_billing_email":null},"billing_cycle":null,"unit_count":null,
              "on_free_trial":null,"free_trial_ends_on":null,"next_billing_date":null,
              "plan":{"id":1,"price_model":"FREE","unit_name":null,"bullets":[null,"x"]}},
            "previous_marketplace_purchase":{},"brand_new_field":{"a":[1,2]}}"#;
        let e = normalized(body, "2026-03-01T10:00:00Z");
        assert_eq!(e.customer.kind, Some(AccountKind::User));
        assert_eq!(e.customer.billing_email, None);
        let EventKind::Purchased { terms, .. } = e.kind else {
            panic!()
        };
        assert_eq!(
            (terms.billing_cycle, terms.next_billing_at, terms.seats),
            (None, None, None)
        );
    }

    #[test]
    fn changed_takes_effect_now() {
        let e = normalized(
            &payload(
                "changed",
                "2026-03-05T00:00:00+00:00",
                purchase(9, "per-unit", json!(10)),
                Some(purchase(9, "per-unit", json!(1))),
            ),
            "2026-03-05T10:00:00Z",
        );
        let EventKind::Changed { terms } = e.kind else {
            panic!()
        };
        assert_eq!(terms.seats, Some(10));
        assert_eq!(e.effective_at, t("2026-03-05"));
    }

    #[test]
    fn pending_change_to_another_plan_is_a_pending_plan_change_at_effective_date() {
        let e = normalized(
            &payload(
                "pending_change",
                "2026-04-01T00:00:00+00:00",
                purchase(8, "per-unit", json!(5)),
                Some(purchase(9, "per-unit", json!(10))),
            ),
            "2026-03-12T09:00:00Z",
        );
        assert_eq!(
            e.kind,
            EventKind::ChangePending {
                plan: Plan {
                    id: "8".into(),
                    name: Some("Team".into()),
                    price_model: Some(PriceModel::PerUnit)
                },
                seats: Some(5),
                effective_at: t("2026-04-01"),
            }
        );
        assert_eq!(
            e.effective_at,
            t("2026-03-12"),
            "ordered on the day it was announced"
        );
    }

    #[test]
    fn pending_change_of_the_billing_cycle_only_is_a_plan_change() {
        let mut target = purchase(9, "per-unit", json!(10));
        target["billing_cycle"] = json!("monthly");
        let mut previous = target.clone();
        previous["billing_cycle"] = json!("yearly");
        let e = normalized(
            &payload("pending_change", "2026-04-01", target, Some(previous)),
            "2026-03-12T09:00:00Z",
        );
        assert!(
            matches!(e.kind, EventKind::ChangePending { .. }),
            "{:?}",
            e.kind
        );
    }

    #[test]
    fn pending_change_naming_the_current_purchase_is_a_pending_cancellation() {
        let current = purchase(9, "flat-rate", json!(1));
        let e = normalized(
            &payload(
                "pending_change",
                "2026-04-01",
                current.clone(),
                Some(current),
            ),
            "2026-03-12T09:00:00Z",
        );
        assert_eq!(
            e.kind,
            EventKind::CancellationPending {
                effective_at: t("2026-04-01")
            }
        );
    }

    #[test]
    fn pending_change_without_a_previous_purchase_is_a_plan_change() {
        let e = normalized(
            &payload(
                "pending_change",
                "2026-04-01",
                purchase(9, "flat-rate", json!(1)),
                None,
            ),
            "2026-03-12T09:00:00Z",
        );
        assert!(matches!(e.kind, EventKind::ChangePending { .. }));
    }

    #[test]
    fn pending_change_cancelled_withdraws_the_pending_change() {
        let e = normalized(
            &payload(
                "pending_change_cancelled",
                "2026-03-14",
                purchase(9, "flat-rate", json!(1)),
                None,
            ),
            "2026-03-14T09:00:00Z",
        );
        assert_eq!(e.kind, EventKind::PendingChangeWithdrawn);
    }

    #[test]
    fn cancelled_paid_plan_keeps_access_until_effective_date_but_trials_and_free_plans_end_now() {
        let e = normalized(
            &payload(
                "cancelled",
                "2026-04-01",
                purchase(9, "flat-rate", json!(0)),
                None,
            ),
            "2026-04-01T09:00:00Z",
        );
        let EventKind::Cancelled { plan, access_until } = e.kind else {
            panic!()
        };
        assert_eq!(
            (plan.map(|p| p.id), access_until),
            (Some("9".to_owned()), Some(t("2026-04-01")))
        );
        let mut trial = purchase(9, "flat-rate", json!(1));
        trial["on_free_trial"] = json!(true);
        let e = normalized(
            &payload("cancelled", "2026-03-03", trial, None),
            "2026-03-03T09:00:00Z",
        );
        assert!(matches!(
            e.kind,
            EventKind::Cancelled {
                access_until: None,
                ..
            }
        ));
        let e = normalized(
            &payload(
                "cancelled",
                "2026-03-03",
                purchase(1, "FREE", json!(1)),
                None,
            ),
            "2026-03-03T09:00:00Z",
        );
        assert!(matches!(
            e.kind,
            EventKind::Cancelled {
                access_until: None,
                ..
            }
        ));
    }

    #[test]
    fn unknown_actions_are_kept_by_name() {
        let e = normalized(
            &payload(
                "renewed",
                "2026-03-01",
                purchase(9, "flat-rate", json!(1)),
                None,
            ),
            "2026-03-01T09:00:00Z",
        );
        assert_eq!(
            e.kind,
            EventKind::Unknown {
                name: "marketplace_purchase.renewed".into()
            }
        );
        assert_eq!(
            e.subscription.id, "42",
            "still logged on the account's subscription"
        );
    }

    #[test]
    fn an_event_is_never_ordered_after_the_day_it_was_received() {
        let future = normalized(
            &payload(
                "changed",
                "2026-04-01",
                purchase(9, "flat-rate", json!(1)),
                None,
            ),
            "2026-03-12T23:59:00Z",
        );
        assert_eq!(future.effective_at, t("2026-03-12"));
        let past = normalized(
            &payload(
                "changed",
                "2026-03-01",
                purchase(9, "flat-rate", json!(1)),
                None,
            ),
            "2026-03-12T23:59:00Z",
        );
        assert_eq!(
            past.effective_at,
            t("2026-03-01"),
            "a late redelivery keeps its own date"
        );
    }

    #[test]
    fn required_fields_are_named_when_missing() {
        let purchase = r#""marketplace_purchase":{"account":{"id":1},"plan":{"id":9}}"#;
        let cases = [
            (format!(r#"{{"effective_date":"2026-03-01",{purchase}}}"#), "`action` is missing"),
            (format!(r#"{{"action":"purchased",{purchase}}}"#), "`effective_date` is missing"),
            (format!(r#"{{"action":"purchased","effective_date":"yesterday",{purchase}}}"#), "`effective_date` is not a date-time"),
            (format!(r#"{{"action":"purchased","effective_date":null,{purchase}}}"#), "invalid type: null, expected a string"),
            (r#"{"action":"purchased","effective_date":"2026-03-01"}"#.to_owned(), "`marketplace_purchase` is missing"),
            (r#"{"action":"purchased","effective_date":"2026-03-01","marketplace_purchase":{"account":{"id":1}}}"#.to_owned(), "`plan` is missing"),
            (r#"{"action":"purchased","effective_date":"2026-03-01","marketplace_purchase":null}"#.to_owned(), "invalid type: null, expected a purchase"),
            (r#"{"action":"purchased","effective_date":"2026-03-01","marketplace_purchase":{"account":[],"plan":{"id":9}}}"#.to_owned(), "invalid length, expected an account"),
            (r#"{"action":"purchased","effective_date":"2026-03-01","marketplace_purchase":{"account":{"id":1},"plan":7}}"#.to_owned(), "invalid type: integer, expected a plan"),
            (format!(r#"{{"action":"purchased","effective_date":"2026-03-01",{purchase},"previous_marketplace_purchase":{{"plan":"9"}}}}"#), "invalid type: string, expected a plan"),
            (format!(r#"{{"action":"purchased","effective_date":"2026-03-01",{purchase},"previous_marketplace_purchase":[]}}"#), "invalid length, expected a purchase"),
            (r#"{"action":"purchased","effective_date":"2026-03-01","marketplace_purchase":{"account":{},"plan":{"id":9}}}"#.to_owned(), "`id` is missing"),
            (r#"{"action":"purchased","effective_date":"2026-03-01","marketplace_purchase":{"account":{"id":null},"plan":{"id":9}}}"#.to_owned(), "invalid type: null, expected u64"),
            (format!(r#"{{"action":"purchased","effective_date":"2026-03-01",{purchase},"previous_marketplace_purchase":{{"plan":{{"id":"9"}}}}}}"#), "invalid type: string, expected u64"),
        ];
        for (body, want) in cases {
            match parse(body.as_bytes()) {
                Err(ParseError::Invalid(message)) => {
                    assert!(message.starts_with(want), "{body}: {message}");
                    assert!(message.contains(" at line 1 column "), "{body}: {message}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        // Present but null: an absent previous purchase.
        let body = format!(
            r#"{{"action":"purchased","effective_date":"2026-03-01",{purchase},"previous_marketplace_purchase":null}}"#
        );
        assert_eq!(parse(body.as_bytes()).map(|e| e.previous), Ok(None));
    }

    #[test]
    fn json_errors_do_not_quote_the_payload() {
        let err = parse(br#"{"action":"purchased","effective_date":"2026-03-01","marketplace_purchase":{"account":{"id":"secret@acme.test"}}}"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret@acme.test"), "{err}");
        assert!(err.contains("invalid type: string"), "{err}");
        assert!(
            parse(b"payload=%7B%7D")
                .unwrap_err()
                .to_string()
                .contains("invalid JSON")
        );
        // A value of the right type but out of range, and a string where an
        // action is expected: serde_json would quote both.
        for body in [
            &br#"{"action":"purchased","effective_date":"2026-03-01","marketplace_purchase":{"account":{"id":-4242424242}}}"#[..],
            br#"{"action":{"secret@acme.test":1},"effective_date":"2026-03-01"}"#,
            br#"{"action":"purchased","effective_date":"secret@acme.test"#,
        ] {
            let err = parse(body).unwrap_err().to_string();
            assert!(
                !err.contains("4242424242") && !err.contains("secret@acme.test"),
                "{err}"
            );
            assert!(err.contains("line 1 column"), "{err}");
        }
    }

    #[test]
    fn json_error_descriptions_name_the_spot_and_a_missing_field_but_no_value() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Reply {
            id: u64,
            login: String,
        }
        let err = serde_json::from_str::<Reply>(r#"{"id":1}"#).unwrap_err();
        assert_eq!(
            describe_json_error(&err),
            "`login` is missing at line 1 column 8"
        );
        let err = serde_json::from_str::<Reply>(r#"{"id":"gho_leaked","login":"x"}"#).unwrap_err();
        assert!(
            err.to_string().contains("gho_leaked"),
            "serde_json quotes it"
        );
        assert_eq!(
            describe_json_error(&err),
            "invalid type: string, expected u64 at line 1 column 18"
        );
        let err = serde_json::from_str::<Reply>("{\"id\":1,\"login\":\"gho_leaked\"").unwrap_err();
        assert_eq!(
            describe_json_error(&err),
            "invalid JSON (EOF while parsing an object) at line 1 column 28"
        );
    }

    #[test]
    fn plain_strings_borrow_from_the_body() {
        let body = br#"{"action":"purchased","effective_date":"2026-03-01T00:00:00Z","marketplace_purchase":{"account":{"id":5,"login":"acme"},"plan":{"id":1,"price_model":"FREE"}}}"#;
        let event = parse(body).unwrap();
        let login = event.purchase.account.login.as_ref().unwrap();
        assert!(matches!(login.0, Cow::Borrowed("acme")), "{login:?}");
    }

    #[test]
    fn strings_with_escapes_parse() {
        let body = br#"{"action":"purchased","effective_date":"2026-03-01T00:00:00Z","marketplace_purchase":{"account":{"id":5,"login":"caf\u00e9"},"plan":{"id":1,"price_model":"FREE"}}}"#;
        assert_eq!(
            normalized(body, "2026-03-01T09:00:00Z")
                .customer
                .name
                .as_deref(),
            Some("café")
        );
    }

    #[test]
    fn a_purchase_then_its_cancellation_fold_through_the_rules() {
        let mut trial = purchase(9, "flat-rate", json!(1));
        trial["on_free_trial"] = json!(true);
        trial["free_trial_ends_on"] = json!("2026-03-15T00:00:00+00:00");
        let bought = normalized(
            &payload("purchased", "2026-03-01", trial.clone(), None),
            "2026-03-01T09:00:00Z",
        );
        let s = crate::rules::apply(None, &bought, t("2026-03-01T09:00:00Z"))
            .next
            .unwrap();
        assert_eq!(s.status, Status::Trial);
        let mut cancel = normalized(
            &payload("cancelled", "2026-03-02", trial, None),
            "2026-03-02T09:00:00Z",
        );
        cancel.id = "d-2".into();
        let s = crate::rules::apply(Some(&s), &cancel, t("2026-03-02T09:00:00Z"))
            .next
            .unwrap();
        assert_eq!(s.status, Status::Cancelled);
    }
}
