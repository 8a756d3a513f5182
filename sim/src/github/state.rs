//! What the GitHub stand-in knows: the app, users, organizations, listing
//! plans, purchases, and the OAuth codes and tokens it has issued. A test
//! scripts it through [`super::GithubSim`]; the routes read it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

use super::SimError;

/// How a listing plan is priced, spelled as GitHub's REST API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceModel {
    Free,
    FlatRate,
    PerUnit,
}

impl PriceModel {
    pub fn as_str(self) -> &'static str {
        match self {
            PriceModel::Free => "FREE",
            PriceModel::FlatRate => "FLAT_RATE",
            PriceModel::PerUnit => "PER_UNIT",
        }
    }
}

/// A plan of the Marketplace listing (`marketplace-listing-plan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id: u64,
    /// Unique within the listing; used in upgrade URLs.
    pub number: u64,
    pub name: String,
    pub description: String,
    pub monthly_price_in_cents: u64,
    pub yearly_price_in_cents: u64,
    pub price_model: PriceModel,
    pub has_free_trial: bool,
    pub unit_name: Option<String>,
    pub state: String,
    pub bullets: Vec<String>,
}

impl Plan {
    /// A published plan; paid plans get placeholder prices, per-unit plans
    /// the unit name `seat`.
    pub fn new(id: u64, number: u64, name: impl Into<String>, price_model: PriceModel) -> Self {
        let name = name.into();
        let (monthly, yearly) = match price_model {
            PriceModel::Free => (0, 0),
            _ => (1000, 10000),
        };
        Self {
            id,
            number,
            description: name.clone(),
            name,
            monthly_price_in_cents: monthly,
            yearly_price_in_cents: yearly,
            price_model,
            has_free_trial: false,
            unit_name: (price_model == PriceModel::PerUnit).then(|| "seat".to_owned()),
            state: "published".to_owned(),
            bullets: Vec::new(),
        }
    }

    pub fn with_free_trial(mut self) -> Self {
        self.has_free_trial = true;
        self
    }

    pub fn with_prices(mut self, monthly_cents: u64, yearly_cents: u64) -> Self {
        self.monthly_price_in_cents = monthly_cents;
        self.yearly_price_in_cents = yearly_cents;
        self
    }

    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    pub fn with_bullets<S: Into<String>>(mut self, bullets: impl IntoIterator<Item = S>) -> Self {
        self.bullets = bullets.into_iter().map(Into::into).collect();
        self
    }
}

/// A GitHub user. Every user is also a personal account that can buy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    pub login: String,
    pub name: Option<String>,
    /// The public email (`null` unless the user made one public).
    pub email: Option<String>,
}

impl User {
    pub fn new(id: u64, login: impl Into<String>) -> Self {
        Self {
            id,
            login: login.into(),
            name: None,
            email: None,
        }
    }

    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }
}

/// An organization account; its members see its purchases in
/// `GET /user/marketplace_purchases`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: u64,
    pub login: String,
    pub billing_email: Option<String>,
    pub members: Vec<u64>,
}

impl Org {
    pub fn new(id: u64, login: impl Into<String>) -> Self {
        Self {
            id,
            login: login.into(),
            billing_email: None,
            members: Vec::new(),
        }
    }

    pub fn with_billing_email(mut self, email: impl Into<String>) -> Self {
        self.billing_email = Some(email.into());
        self
    }

    pub fn with_member(mut self, user_id: u64) -> Self {
        self.members.push(user_id);
        self
    }
}

/// A change the customer asked for that applies at the end of the cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    pub id: u64,
    pub plan_id: u64,
    pub unit_count: Option<u64>,
    pub effective_date: DateTime<Utc>,
}

/// An account's current purchase of a plan of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub account_id: u64,
    pub plan_id: u64,
    /// `monthly` or `yearly`; `None` for a free plan on a free GitHub account.
    pub billing_cycle: Option<String>,
    /// Purchased units of a per-unit plan; `None` otherwise (as the REST API says).
    pub unit_count: Option<u64>,
    pub on_free_trial: bool,
    pub free_trial_ends_on: Option<DateTime<Utc>>,
    pub next_billing_date: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub pending_change: Option<PendingChange>,
}

impl Purchase {
    /// A monthly purchase, billed a month from now.
    pub fn new(account_id: u64, plan_id: u64) -> Self {
        let now = Utc::now();
        Self {
            account_id,
            plan_id,
            billing_cycle: Some("monthly".to_owned()),
            unit_count: None,
            on_free_trial: false,
            free_trial_ends_on: None,
            next_billing_date: Some(now + Duration::days(30)),
            updated_at: now,
            pending_change: None,
        }
    }

    pub fn with_units(mut self, units: u64) -> Self {
        self.unit_count = Some(units);
        self
    }

    /// On a free trial ending at `ends` (GitHub trials last 14 days).
    pub fn on_trial_until(mut self, ends: DateTime<Utc>) -> Self {
        self.on_free_trial = true;
        self.free_trial_ends_on = Some(ends);
        self.next_billing_date = Some(ends);
        self
    }

    pub fn yearly(mut self) -> Self {
        self.billing_cycle = Some("yearly".to_owned());
        self
    }

    /// A free plan bought by a free GitHub account: no cycle, no billing date.
    pub fn unbilled(mut self) -> Self {
        self.billing_cycle = None;
        self.next_billing_date = None;
        self
    }

    pub fn with_next_billing_date(mut self, at: DateTime<Utc>) -> Self {
        self.next_billing_date = Some(at);
        self
    }

    pub fn with_updated_at(mut self, at: DateTime<Utc>) -> Self {
        self.updated_at = at;
        self
    }

    pub fn with_pending_change(mut self, change: PendingChange) -> Self {
        self.pending_change = Some(change);
        self
    }
}

/// The app registration the stand-in plays against: OAuth client
/// credentials, callback URLs, and the public half of the app's key.
#[derive(Clone)]
pub struct App {
    pub app_id: u64,
    pub client_id: String,
    pub client_secret: String,
    /// Registered callback URLs; `redirect_uri` must equal one of them (as
    /// for a GitHub App). Empty: any `redirect_uri` is accepted.
    pub callback_urls: Vec<String>,
    private_key_pem: String,
    public_key_der: Vec<u8>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("app_id", &self.app_id)
            .field("client_id", &self.client_id)
            .field("callback_urls", &self.callback_urls)
            .finish_non_exhaustive()
    }
}

impl App {
    /// A fresh app with random client credentials and a new 2048-bit RSA key.
    pub fn generate(app_id: u64) -> Result<Self, SimError> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        use base64::Engine;

        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| SimError::KeyGeneration)?;
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key)
            .map_err(|_| SimError::KeyGeneration)?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        use aws_lc_rs::signature::KeyPair as _;
        Ok(Self {
            app_id,
            client_id: format!("Iv23li{}", random_hex(7)),
            client_secret: random_hex(20),
            callback_urls: Vec::new(),
            private_key_pem: pem,
            public_key_der: key.public_key().as_ref().to_vec(),
        })
    }

    pub fn with_callback_url(mut self, url: impl Into<String>) -> Self {
        self.callback_urls.push(url.into());
        self
    }

    /// The app's private key as PKCS#8 PEM, to hand to the code under test
    /// (GitHub hands out PKCS#1 PEM; both parse the same way).
    pub fn private_key_pem(&self) -> &str {
        &self.private_key_pem
    }

    /// The app's public key, DER `RSAPublicKey` (PKCS#1).
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }
}

/// How the authorize page answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorize {
    /// The signed-in user approves at once.
    Approve,
    /// The user clicks "Cancel": `error=access_denied`.
    Deny,
}

/// A canned rate-limit reply for the next API requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// The primary limit: 403 with `x-ratelimit-remaining: 0` and
    /// `x-ratelimit-reset` at `reset_at`.
    Primary { reset_at: DateTime<Utc> },
    /// A secondary limit: 429 with `retry-after`.
    Secondary { retry_after_secs: u64 },
}

/// How a request authenticated itself, as the stand-in saw it (never the
/// credential itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    None,
    /// `Authorization: token …` or `Bearer …` with something that isn't a JWT.
    Token,
    /// `Authorization: Bearer <JWT>`.
    Jwt,
    /// `Authorization: Basic …`.
    Basic,
}

/// A request the stand-in served, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub host: &'static str,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub auth: AuthKind,
}

pub(crate) struct IssuedCode {
    pub user_id: u64,
    pub client_id: String,
    pub redirect_uri: Option<String>,
    pub expires_at: DateTime<Utc>,
}

pub(crate) struct State {
    pub app: App,
    pub users: BTreeMap<u64, User>,
    pub orgs: BTreeMap<u64, Org>,
    pub plans: BTreeMap<u64, Plan>,
    pub purchases: BTreeMap<u64, Purchase>,
    pub signed_in: Option<u64>,
    pub authorize: Authorize,
    pub codes: HashMap<String, IssuedCode>,
    pub tokens: HashMap<String, u64>,
    pub rate_limits: VecDeque<RateLimit>,
    /// Paths answered `502 Bad Gateway` (as GitHub does when it is down).
    pub failing_paths: Vec<String>,
    pub max_per_page: usize,
    pub api_used: u64,
    pub seen: Vec<Seen>,
    pub web_url: String,
    pub api_url: String,
    /// Where the listing's webhook deliveries go ([`super::GithubSim::set_webhook`]).
    pub webhook: Option<super::control::Webhook>,
    /// Purchases that were cancelled, by account: what a new `purchased`
    /// starts from.
    pub ended: BTreeMap<u64, Purchase>,
    /// The id of the next pending change.
    pub next_change_id: u64,
}

/// GitHub's page size cap.
pub const MAX_PER_PAGE: usize = 100;
/// OAuth codes expire after ten minutes.
pub const CODE_TTL: Duration = Duration::minutes(10);

impl State {
    pub fn new(app: App) -> Self {
        Self {
            app,
            users: BTreeMap::new(),
            orgs: BTreeMap::new(),
            plans: BTreeMap::new(),
            purchases: BTreeMap::new(),
            signed_in: None,
            authorize: Authorize::Approve,
            codes: HashMap::new(),
            tokens: HashMap::new(),
            rate_limits: VecDeque::new(),
            failing_paths: Vec::new(),
            max_per_page: MAX_PER_PAGE,
            api_used: 0,
            seen: Vec::new(),
            web_url: String::new(),
            api_url: String::new(),
            webhook: None,
            ended: BTreeMap::new(),
            next_change_id: 1,
        }
    }

    /// The user who approves at the authorize page: the one signed in, else
    /// the first user added.
    pub fn approving_user(&self) -> Option<u64> {
        self.signed_in.or_else(|| self.users.keys().next().copied())
    }

    /// Purchases `user_id` can see: their own account's and those of the
    /// organizations they belong to, by account id.
    pub fn purchases_visible_to(&self, user_id: u64) -> Vec<&Purchase> {
        self.purchases
            .values()
            .filter(|p| {
                p.account_id == user_id
                    || self
                        .orgs
                        .get(&p.account_id)
                        .is_some_and(|o| o.members.contains(&user_id))
            })
            .collect()
    }
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // The OS generator does not fail on the machines the simulator runs on;
    // if it ever did, a zero code is still unique per process run below.
    if getrandom::fill(&mut buf).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let c = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (c >> ((i % 8) * 8)) as u8;
        }
    }
    hex::encode(buf)
}
