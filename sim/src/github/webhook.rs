//! GitHub Marketplace webhook deliveries, as GitHub sends them to a listing's
//! webhook URL: the `marketplace_purchase` body for each of its five actions,
//! and the headers of the delivery (event, delivery GUID, HMAC-SHA256
//! signature, Hookshot user agent).
//!
//! The body follows GitHub's published examples (`@octokit/webhooks-examples`
//! from <https://github.com/octokit/webhooks>, vendored in
//! `tests/fixtures/github/`) field for field and in the same
//! order: `action`, `effective_date`, `sender`, `marketplace_purchase`
//! (`account{type,id,node_id,login,organization_billing_email}`,
//! `billing_cycle`, `unit_count`, `on_free_trial`, `free_trial_ends_on`,
//! `next_billing_date`, `plan{…}`) and, for `changed`, `pending_change` and
//! `pending_change_cancelled`, `previous_marketplace_purchase` (which, as in
//! GitHub's `changed` example, has no `next_billing_date`). Dates are whole
//! UTC days written `2017-10-25T00:00:00+00:00`, the way the webhooks write
//! them (the REST API writes `…Z` with a time). Bodies are compact JSON, as
//! real deliveries are; the signature covers exactly those bytes.
//!
//! It is built from the stand-in's own state types ([`Plan`], [`Purchase`],
//! [`Org`], [`User`]), so an event can describe the same purchase the
//! api.github.com stand-in reports.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use serde::Serialize;

use super::state::{Org, Plan, Purchase, User, random_hex};

/// `X-GitHub-Event` of a Marketplace purchase event.
pub const EVENT: &str = "marketplace_purchase";

/// The `User-Agent` GitHub's webhook sender uses (the suffix is a build id;
/// this one is the example of
/// <https://docs.github.com/webhooks/webhook-events-and-payloads#delivery-headers>).
pub const USER_AGENT: &str = "GitHub-Hookshot/044aadd";

/// Where GitHub's own links in a payload point. Webhook payloads come from
/// the real GitHub, so `sender` URLs name api.github.com, not a stand-in.
const API: &str = "https://api.github.com";

/// A `marketplace_purchase` action (GitHub documents exactly these five).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Purchased,
    Changed,
    PendingChange,
    PendingChangeCancelled,
    Cancelled,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Purchased,
        Action::Changed,
        Action::PendingChange,
        Action::PendingChangeCancelled,
        Action::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Purchased => "purchased",
            Action::Changed => "changed",
            Action::PendingChange => "pending_change",
            Action::PendingChangeCancelled => "pending_change_cancelled",
            Action::Cancelled => "cancelled",
        }
    }

    /// Whether GitHub sends `previous_marketplace_purchase` with this action.
    pub fn has_previous(self) -> bool {
        matches!(
            self,
            Action::Changed | Action::PendingChange | Action::PendingChangeCancelled
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error(
        "unknown marketplace_purchase action `{0}` (purchased, changed, pending_change, pending_change_cancelled, cancelled)"
    )]
    UnknownAction(String),
    #[error("the purchase is of plan {purchase} but the plan given is {plan}")]
    PlanMismatch { purchase: u64, plan: u64 },
    #[error("the purchase belongs to account {purchase} but the account given is {account}")]
    AccountMismatch { purchase: u64, account: u64 },
    #[error("`{action}` carries the previous purchase: give one")]
    MissingPrevious { action: Action },
    #[error("cannot serialize the payload: {0}")]
    Serialize(String),
}

impl FromStr for Action {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, EventError> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| EventError::UnknownAction(s.to_owned()))
    }
}

/// The account that holds a purchase: an organization, or a user's personal
/// account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    Org(Org),
    User(User),
}

impl Account {
    pub fn id(&self) -> u64 {
        match self {
            Account::Org(o) => o.id,
            Account::User(u) => u.id,
        }
    }

    pub fn login(&self) -> &str {
        match self {
            Account::Org(o) => &o.login,
            Account::User(u) => &u.login,
        }
    }
}

/// One `marketplace_purchase` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseEvent {
    pub action: Action,
    /// When the action takes effect. For `pending_change`, the future day
    /// the change applies (the end of the billing cycle).
    pub effective_date: DateTime<Utc>,
    /// The user who acted.
    pub sender: User,
    pub account: Account,
    pub plan: Plan,
    /// The purchase after the action (for `pending_change`: the target; for
    /// `pending_change_cancelled`: the purchase that stays).
    pub purchase: Purchase,
    /// `previous_marketplace_purchase`: its plan and purchase.
    pub previous: Option<(Plan, Purchase)>,
}

impl PurchaseEvent {
    /// An event effective today (GitHub's dates are whole UTC days). The
    /// purchase must be `account`'s and of `plan`.
    pub fn new(
        action: Action,
        sender: User,
        account: Account,
        plan: Plan,
        purchase: Purchase,
    ) -> Result<Self, EventError> {
        consistent(&account, &plan, &purchase)?;
        Ok(Self {
            action,
            effective_date: start_of_day(Utc::now()),
            sender,
            account,
            plan,
            purchase,
            previous: None,
        })
    }

    /// Sets `previous_marketplace_purchase` (needed by `changed`,
    /// `pending_change`, `pending_change_cancelled`).
    pub fn with_previous(mut self, plan: Plan, purchase: Purchase) -> Result<Self, EventError> {
        consistent(&self.account, &plan, &purchase)?;
        self.previous = Some((plan, purchase));
        Ok(self)
    }

    /// Sets `effective_date` (kept to the day, as GitHub sends it).
    pub fn effective_on(mut self, at: DateTime<Utc>) -> Self {
        self.effective_date = start_of_day(at);
        self
    }

    /// The JSON body, compact, as GitHub sends it.
    pub fn body(&self) -> Result<Vec<u8>, EventError> {
        if self.action.has_previous() && self.previous.is_none() {
            return Err(EventError::MissingPrevious {
                action: self.action,
            });
        }
        let payload = Payload {
            action: self.action.as_str(),
            effective_date: day(self.effective_date),
            sender: sender(&self.sender),
            marketplace_purchase: purchase(&self.account, &self.plan, &self.purchase, true),
            previous_marketplace_purchase: self
                .previous
                .as_ref()
                .map(|(plan, p)| purchase(&self.account, plan, p, false)),
        };
        serde_json::to_vec(&payload).map_err(|e| EventError::Serialize(e.to_string()))
    }

    /// The body as a delivery with a fresh GUID, ready to sign and send.
    pub fn delivery(&self) -> Result<Delivery, EventError> {
        Ok(Delivery {
            id: delivery_guid(),
            event: EVENT,
            body: self.body()?,
        })
    }
}

fn consistent(account: &Account, plan: &Plan, purchase: &Purchase) -> Result<(), EventError> {
    if purchase.plan_id != plan.id {
        return Err(EventError::PlanMismatch {
            purchase: purchase.plan_id,
            plan: plan.id,
        });
    }
    if purchase.account_id != account.id() {
        return Err(EventError::AccountMismatch {
            purchase: purchase.account_id,
            account: account.id(),
        });
    }
    Ok(())
}

/// A webhook delivery: what GitHub POSTs to the listing's webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `X-GitHub-Delivery`: a GUID, unique per delivery (redeliveries reuse it).
    pub id: String,
    /// `X-GitHub-Event`.
    pub event: &'static str,
    /// The exact bytes that are signed and sent.
    pub body: Vec<u8>,
}

impl Delivery {
    /// The request headers GitHub sends with this delivery, the body signed
    /// with `secret` (the listing's webhook secret).
    ///
    /// GitHub also sends the legacy SHA-1 `X-Hub-Signature`; it is left out
    /// here: Tollgate accepts only SHA-256, and the stand-in links no SHA-1.
    pub fn headers(&self, secret: &[u8]) -> Vec<(&'static str, String)> {
        vec![
            ("User-Agent", USER_AGENT.to_owned()),
            ("Content-Type", "application/json".to_owned()),
            ("X-GitHub-Event", self.event.to_owned()),
            ("X-GitHub-Delivery", self.id.clone()),
            // A Marketplace listing's hook: placeholder ids in GitHub's form.
            ("X-GitHub-Hook-ID", "292430182".to_owned()),
            (
                "X-GitHub-Hook-Installation-Target-Type",
                "marketplace::listing".to_owned(),
            ),
            (
                "X-GitHub-Hook-Installation-Target-ID",
                "79929171".to_owned(),
            ),
            ("X-Hub-Signature-256", sign(secret, &self.body)),
        ]
    }
}

/// `sha256=<hex HMAC-SHA256 of body keyed by secret>`, the value of
/// `X-Hub-Signature-256`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    format!("sha256={}", hex::encode(hmac::sign(&key, body).as_ref()))
}

/// A random GUID in the 8-4-4-4-12 form of `X-GitHub-Delivery` (version 4
/// bits set, as a random UUID has them).
pub fn delivery_guid() -> String {
    let mut hex = random_hex(16).into_bytes();
    hex[12] = b'4';
    // The variant nibble is one of 8, 9, a, b.
    hex[16] = b"89ab"[usize::from(hex[16]) % 4];
    let hex = String::from_utf8_lossy(&hex).into_owned();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Midnight UTC of `t`'s day.
fn start_of_day(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&t.date_naive().and_time(NaiveTime::MIN))
}

/// `2017-10-25T00:00:00+00:00`: a day, as the webhook payloads write dates.
fn day(t: DateTime<Utc>) -> String {
    start_of_day(t)
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

#[derive(Serialize)]
struct Payload {
    action: &'static str,
    effective_date: String,
    sender: SenderJson,
    marketplace_purchase: PurchaseJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_marketplace_purchase: Option<PurchaseJson>,
}

/// `sender`: the simple-user object of GitHub's examples.
#[derive(Serialize)]
struct SenderJson {
    login: String,
    id: u64,
    node_id: String,
    avatar_url: String,
    gravatar_id: &'static str,
    url: String,
    html_url: String,
    followers_url: String,
    following_url: String,
    gists_url: String,
    starred_url: String,
    subscriptions_url: String,
    organizations_url: String,
    repos_url: String,
    events_url: String,
    received_events_url: String,
    #[serde(rename = "type")]
    kind: &'static str,
    site_admin: bool,
    email: Option<String>,
}

#[derive(Serialize)]
struct PurchaseJson {
    account: AccountJson,
    billing_cycle: Option<String>,
    unit_count: u64,
    on_free_trial: bool,
    free_trial_ends_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_billing_date: Option<Option<String>>,
    plan: PlanJson,
}

#[derive(Serialize)]
struct AccountJson {
    #[serde(rename = "type")]
    kind: &'static str,
    id: u64,
    node_id: String,
    login: String,
    organization_billing_email: Option<String>,
}

#[derive(Serialize)]
struct PlanJson {
    id: u64,
    name: String,
    description: String,
    monthly_price_in_cents: u64,
    yearly_price_in_cents: u64,
    price_model: &'static str,
    has_free_trial: bool,
    unit_name: Option<String>,
    bullets: Vec<String>,
}

/// GitHub's global node id: base64 of `<type>:<Type><id>` (legacy form, as
/// in the examples).
fn node_id(prefix: &str, id: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{id}"))
}

fn sender(u: &User) -> SenderJson {
    let login = &u.login;
    let base = format!("{API}/users/{login}");
    SenderJson {
        login: login.clone(),
        id: u.id,
        node_id: node_id("04:User", u.id),
        avatar_url: format!("https://avatars.githubusercontent.com/u/{}?v=4", u.id),
        gravatar_id: "",
        html_url: format!("https://github.com/{login}"),
        followers_url: format!("{base}/followers"),
        following_url: format!("{base}/following{{/other_user}}"),
        gists_url: format!("{base}/gists{{/gist_id}}"),
        starred_url: format!("{base}/starred{{/owner}}{{/repo}}"),
        subscriptions_url: format!("{base}/subscriptions"),
        organizations_url: format!("{base}/orgs"),
        repos_url: format!("{base}/repos"),
        events_url: format!("{base}/events{{/privacy}}"),
        received_events_url: format!("{base}/received_events"),
        url: base,
        kind: "User",
        site_admin: false,
        email: u.email.clone(),
    }
}

fn purchase(account: &Account, plan: &Plan, p: &Purchase, current: bool) -> PurchaseJson {
    let account = match account {
        Account::Org(o) => AccountJson {
            kind: "Organization",
            id: o.id,
            node_id: node_id("012:Organization", o.id),
            login: o.login.clone(),
            organization_billing_email: o.billing_email.clone(),
        },
        // Personal accounts have no billing email: GitHub sends `null`.
        Account::User(u) => AccountJson {
            kind: "User",
            id: u.id,
            node_id: node_id("04:User", u.id),
            login: u.login.clone(),
            organization_billing_email: None,
        },
    };
    PurchaseJson {
        account,
        billing_cycle: p.billing_cycle.clone(),
        // Always a number in the webhook: the units of a per-unit plan, 1
        // for other plans (the REST API says `null` there instead).
        unit_count: p.unit_count.unwrap_or(1),
        on_free_trial: p.on_free_trial,
        free_trial_ends_on: p.free_trial_ends_on.map(day),
        // GitHub's `changed` example omits it from the previous purchase.
        next_billing_date: current.then(|| p.next_billing_date.map(day)),
        plan: PlanJson {
            id: plan.id,
            name: plan.name.clone(),
            description: plan.description.clone(),
            monthly_price_in_cents: plan.monthly_price_in_cents,
            yearly_price_in_cents: plan.yearly_price_in_cents,
            price_model: plan.price_model.as_str(),
            has_free_trial: plan.has_free_trial,
            unit_name: plan.unit_name.clone(),
            bullets: plan.bullets.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::Value;
    use tollgate::marketplace::github::signature;
    use tollgate::marketplace::github::webhook::{self as parsed, DeliveryInfo};
    use tollgate::model::EventKind;

    use super::super::PriceModel;
    use super::*;

    fn team() -> Plan {
        Plan::new(1002, 2, "Team", PriceModel::PerUnit)
            .with_free_trial()
            .with_prices(400, 4000)
            .with_bullets(["Private repositories"])
    }

    fn acme() -> Account {
        Account::Org(
            Org::new(2001, "acme")
                .with_billing_email("billing@acme.example")
                .with_member(1),
        )
    }

    fn octocat() -> User {
        User::new(1, "octocat")
    }

    /// An event of each action for acme on Team: 5 seats, on a trial where
    /// it makes sense, from 10 seats where there is a previous purchase.
    fn event(action: Action) -> PurchaseEvent {
        let now = Utc::now();
        let mut current = Purchase::new(2001, 1002).with_units(5);
        if matches!(action, Action::Purchased | Action::Cancelled) {
            current = current.on_trial_until(now + Duration::days(14));
        }
        let e = PurchaseEvent::new(action, octocat(), acme(), team(), current).unwrap();
        if action.has_previous() {
            e.with_previous(team(), Purchase::new(2001, 1002).with_units(10))
                .unwrap()
        } else {
            e
        }
    }

    #[test]
    fn every_action_parses_and_normalizes_as_tollgate_reads_github() {
        for action in Action::ALL {
            let delivery = event(action).delivery().unwrap();
            let p = parsed::parse(&delivery.body).unwrap_or_else(|e| panic!("{action}: {e}"));
            assert_eq!(p.action.as_str(), action.as_str());
            assert_eq!((p.account_id(), p.purchase.plan.id), (2001, 1002));
            assert_eq!(p.previous.is_some(), action.has_previous(), "{action}");
            let info = DeliveryInfo {
                id: &delivery.id,
                received_at: Utc::now(),
            };
            let e = parsed::normalize(&p, info, "acme-ci");
            assert_eq!(e.subscription.id, "2001");
            assert_eq!(e.id, delivery.id);
            let name = e.kind.name();
            let expected = match action {
                Action::Purchased => "purchased",
                Action::Changed => "changed",
                Action::PendingChange => "change_pending",
                Action::PendingChangeCancelled => "pending_change_withdrawn",
                Action::Cancelled => "cancelled",
            };
            assert_eq!(name, expected, "{action}");
        }
    }

    #[test]
    fn a_trial_purchase_carries_its_seats_and_trial_end() {
        let body = event(Action::Purchased).body().unwrap();
        let p = parsed::parse(&body).unwrap();
        let e = parsed::normalize(
            &p,
            DeliveryInfo {
                id: "d",
                received_at: Utc::now(),
            },
            "acme-ci",
        );
        let EventKind::Purchased { terms, .. } = e.kind else {
            panic!("{:?}", e.kind)
        };
        assert_eq!(terms.seats, Some(5));
        let left = terms.trial_ends_at.unwrap() - Utc::now();
        assert!(
            left > Duration::days(13) && left <= Duration::days(14),
            "{left}"
        );
    }

    #[test]
    fn a_pending_change_to_the_same_purchase_reads_as_a_pending_cancellation() {
        let same = Purchase::new(2001, 1002).with_units(5);
        let body = PurchaseEvent::new(
            Action::PendingChange,
            octocat(),
            acme(),
            team(),
            same.clone(),
        )
        .unwrap()
        .with_previous(team(), same)
        .unwrap()
        .effective_on(Utc::now() + Duration::days(30))
        .body()
        .unwrap();
        let p = parsed::parse(&body).unwrap();
        let info = DeliveryInfo {
            id: "d",
            received_at: Utc::now(),
        };
        assert_eq!(
            parsed::normalize(&p, info, "acme-ci").kind.name(),
            "cancellation_pending"
        );
    }

    #[test]
    fn the_body_has_the_fields_of_githubs_examples_in_their_order() {
        let body = event(Action::Changed).body().unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        let keys = [
            "\"action\"",
            "\"effective_date\"",
            "\"sender\"",
            "\"marketplace_purchase\"",
            "\"previous_marketplace_purchase\"",
        ];
        let at: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");

        let v: Value = serde_json::from_slice(&body).unwrap();
        // Same keys as the vendored octokit example of `changed`.
        let fixture: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/github/octokit-changed-seats-1-to-10.json"
        ))
        .unwrap();
        for path in [
            "/marketplace_purchase",
            "/marketplace_purchase/account",
            "/marketplace_purchase/plan",
            "/previous_marketplace_purchase",
            "/previous_marketplace_purchase/account",
            "/previous_marketplace_purchase/plan",
        ] {
            let keys = |v: &Value| {
                let mut k: Vec<String> = v
                    .pointer(path)
                    .unwrap()
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect();
                k.sort();
                k
            };
            assert_eq!(keys(&v), keys(&fixture), "{path}");
        }
        let fixture_sender = fixture["sender"].as_object().unwrap();
        let sender = v["sender"].as_object().unwrap();
        for k in fixture_sender.keys() {
            assert!(sender.contains_key(k), "sender.{k}");
        }
        assert!(
            v["effective_date"]
                .as_str()
                .unwrap()
                .ends_with("T00:00:00+00:00")
        );
        assert_eq!(v["marketplace_purchase"]["plan"]["price_model"], "PER_UNIT");
        assert_eq!(v["marketplace_purchase"]["account"]["type"], "Organization");
    }

    #[test]
    fn a_personal_account_has_a_null_billing_email_and_a_free_plan_no_cycle() {
        let user = User::new(1, "octocat");
        let free = Plan::new(1001, 1, "Free", PriceModel::Free);
        let body = PurchaseEvent::new(
            Action::Purchased,
            user.clone(),
            Account::User(user),
            free,
            Purchase::new(1, 1001).unbilled(),
        )
        .unwrap()
        .body()
        .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let mp = &v["marketplace_purchase"];
        assert_eq!(mp["account"]["type"], "User");
        assert!(mp["account"]["organization_billing_email"].is_null());
        assert!(mp["billing_cycle"].is_null());
        assert!(mp["next_billing_date"].is_null());
        assert_eq!(mp["unit_count"], 1);
        assert!(parsed::parse(&body).is_ok());
    }

    #[test]
    fn headers_are_githubs_and_the_signature_verifies_with_tollgates_check() {
        let d = event(Action::Purchased).delivery().unwrap();
        let headers = d.headers(b"s3cret");
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-github-event"), Some("marketplace_purchase"));
        assert_eq!(get("x-github-delivery"), Some(d.id.as_str()));
        assert!(get("user-agent").unwrap().starts_with("GitHub-Hookshot/"));
        assert_eq!(get("content-type"), Some("application/json"));
        assert_eq!(
            signature::verify(b"s3cret", &d.body, get("x-hub-signature-256")),
            Ok(())
        );
        assert_eq!(
            sign(b"s3cret", &d.body),
            signature::sign(b"s3cret", &d.body)
        );
        assert!(signature::verify(b"other", &d.body, get("x-hub-signature-256")).is_err());
    }

    #[test]
    fn delivery_ids_are_fresh_guids() {
        let a = delivery_guid();
        let b = delivery_guid();
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn mismatched_or_missing_parts_are_refused() {
        let p = Purchase::new(2001, 1003);
        assert!(matches!(
            PurchaseEvent::new(Action::Purchased, octocat(), acme(), team(), p),
            Err(EventError::PlanMismatch { .. })
        ));
        let p = Purchase::new(9, 1002);
        assert!(matches!(
            PurchaseEvent::new(Action::Purchased, octocat(), acme(), team(), p),
            Err(EventError::AccountMismatch { .. })
        ));
        let e = PurchaseEvent::new(
            Action::Changed,
            octocat(),
            acme(),
            team(),
            Purchase::new(2001, 1002),
        )
        .unwrap();
        assert!(matches!(e.body(), Err(EventError::MissingPrevious { .. })));
        assert!("renewed".parse::<Action>().is_err());
        assert_eq!("pending_change".parse(), Ok(Action::PendingChange));
    }
}
