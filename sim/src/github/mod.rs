//! Stand-ins for github.com and api.github.com.
//!
//! Two HTTP servers on 127.0.0.1, sharing one scriptable [`GithubSim`]:
//!
//! - **web** (github.com): `GET /login/oauth/authorize` approves at once as
//!   the signed-in user (or denies, when told) and redirects to the
//!   `redirect_uri` with `code` and `state`; `POST /login/oauth/access_token`
//!   exchanges a code, answering errors with HTTP 200 and an `error` field as
//!   GitHub does.
//! - **api** (api.github.com): `GET /user`, `GET /user/marketplace_purchases`
//!   (user token), `GET /marketplace_listing/accounts/{account_id}`,
//!   `GET /marketplace_listing/plans`,
//!   `GET /marketplace_listing/plans/{plan_id}/accounts` (app JWT, or Basic
//!   client credentials as for an OAuth App), paginated with a real `Link`
//!   header, with rate-limit headers and scriptable rate-limit replies.
//!
//! - **the marketplace** (`/_sim` on the web server, [`control`]): changes
//!   an account's purchase and delivers the signed `marketplace_purchase`
//!   webhook, as GitHub does when a customer buys, changes or cancels.
//!
//! Routes, parameters and reply shapes follow GitHub's OpenAPI description
//! (`@octokit/openapi@23.0.2`, <https://github.com/octokit/openapi>);
//! `fixtures/github/openapi-subset.json` holds
//! the schemas and examples the tests check the replies against.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod api;
pub mod control;
mod state;
mod web;
pub mod webhook;

pub use state::{
    App, AuthKind, Authorize, CODE_TTL, MAX_PER_PAGE, Org, PendingChange, Plan, PriceModel,
    Purchase, RateLimit, Seen, User,
};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot generate the app's RSA key")]
    KeyGeneration,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The scriptable state of the GitHub stand-ins. Cheap to clone; every clone
/// (and the running servers) shares the same state.
#[derive(Clone)]
pub struct GithubSim {
    state: Arc<Mutex<state::State>>,
}

impl GithubSim {
    pub fn new(app: App) -> Self {
        Self {
            state: Arc::new(Mutex::new(state::State::new(app))),
        }
    }

    /// A stand-in for an app with fresh credentials and key (app id 1).
    pub fn generate() -> Result<Self, SimError> {
        Ok(Self::new(App::generate(1)?))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, state::State> {
        // A panic while holding the lock can only come from a bug in a test;
        // the state itself stays consistent, so keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn app(&self) -> App {
        self.lock().app.clone()
    }

    /// Registers a callback URL `redirect_uri` must then match exactly.
    pub fn add_callback_url(&self, url: impl Into<String>) {
        self.lock().app.callback_urls.push(url.into());
    }

    pub fn add_user(&self, user: User) {
        self.lock().users.insert(user.id, user);
    }

    pub fn add_org(&self, org: Org) {
        self.lock().orgs.insert(org.id, org);
    }

    /// Makes `user_id` a member of organization `org_id` (added with
    /// [`GithubSim::add_org`]); `false` if there is no such organization.
    /// From then on the user sees the organization's purchase in
    /// `GET /user/marketplace_purchases`.
    pub fn add_member(&self, org_id: u64, user_id: u64) -> bool {
        match self.lock().orgs.get_mut(&org_id) {
            Some(org) => {
                if !org.members.contains(&user_id) {
                    org.members.push(user_id);
                }
                true
            }
            None => false,
        }
    }

    /// Removes `user_id` from organization `org_id`, as leaving it (or
    /// being removed by an owner) does on GitHub: the organization's
    /// purchase disappears from the user's `GET /user/marketplace_purchases`.
    /// `false` if the user was not a member.
    pub fn remove_member(&self, org_id: u64, user_id: u64) -> bool {
        let mut s = self.lock();
        let Some(org) = s.orgs.get_mut(&org_id) else {
            return false;
        };
        let before = org.members.len();
        org.members.retain(|&m| m != user_id);
        org.members.len() != before
    }

    pub fn add_plan(&self, plan: Plan) {
        self.lock().plans.insert(plan.id, plan);
    }

    /// Adds or replaces the purchase of `purchase.account_id`.
    pub fn add_purchase(&self, purchase: Purchase) {
        self.lock().purchases.insert(purchase.account_id, purchase);
    }

    pub fn remove_purchase(&self, account_id: u64) {
        self.lock().purchases.remove(&account_id);
    }

    /// Who approves at the authorize page (default: the first user added).
    pub fn sign_in(&self, user_id: u64) {
        self.lock().signed_in = Some(user_id);
    }

    pub fn set_authorize(&self, behaviour: Authorize) {
        self.lock().authorize = behaviour;
    }

    /// Makes every code issued so far expire, as ten minutes passing would.
    pub fn expire_codes(&self) {
        let past = Utc::now() - CODE_TTL;
        for code in self.lock().codes.values_mut() {
            code.expires_at = past;
        }
    }

    /// The next `count` API requests get `limit` instead of an answer.
    pub fn rate_limit_next(&self, count: usize, limit: RateLimit) {
        let mut s = self.lock();
        for _ in 0..count {
            s.rate_limits.push_back(limit);
        }
    }

    /// Answers every API request to `path` (e.g.
    /// `/marketplace_listing/plans/1002/accounts`) with a 502, as GitHub
    /// does when a backend fails, until [`GithubSim::heal`].
    pub fn fail_path(&self, path: impl Into<String>) {
        self.lock().failing_paths.push(path.into());
    }

    /// Stops every failure [`GithubSim::fail_path`] set up.
    pub fn heal(&self) {
        self.lock().failing_paths.clear();
    }

    /// Caps the page size below GitHub's 100, so a few items span pages.
    pub fn set_max_per_page(&self, n: usize) {
        self.lock().max_per_page = n.clamp(1, MAX_PER_PAGE);
    }

    /// Every request served so far (never a credential).
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// How many user tokens the token endpoint has handed out (tokens never
    /// expire in the stand-in).
    pub fn issued_token_count(&self) -> usize {
        self.lock().tokens.len()
    }

    /// Starts both servers on 127.0.0.1 with ports chosen by the OS.
    pub async fn start(&self) -> Result<Running, SimError> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        self.start_on(any, any).await
    }

    /// Starts github.com's stand-in on `web` and api.github.com's on `api`.
    pub async fn start_on(&self, web: SocketAddr, api: SocketAddr) -> Result<Running, SimError> {
        let web_listener = TcpListener::bind(web)
            .await
            .map_err(|source| SimError::Bind { addr: web, source })?;
        let api_listener = TcpListener::bind(api)
            .await
            .map_err(|source| SimError::Bind { addr: api, source })?;
        let web_addr = web_listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr: web, source })?;
        let api_addr = api_listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr: api, source })?;
        let web_url = format!("http://{web_addr}");
        let api_url = format!("http://{api_addr}");
        {
            let mut s = self.lock();
            s.web_url = web_url.clone();
            s.api_url = api_url.clone();
        }
        let web_task = serve(web_listener, web::router(self.clone()), "github.com");
        let api_task = serve(api_listener, api::router(self.clone()), "api.github.com");
        Ok(Running {
            web_url,
            api_url,
            tasks: vec![web_task, api_task],
        })
    }
}

fn serve(listener: TcpListener, app: axum::Router, name: &'static str) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(server = name, error = %e, "simulator stopped");
        }
    })
}

/// The running stand-ins; dropping this stops them.
pub struct Running {
    /// Base URL standing in for `https://github.com`.
    pub web_url: String,
    /// Base URL standing in for `https://api.github.com`.
    pub api_url: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// `2017-11-11T00:00:00Z`, the way GitHub's REST API writes times.
pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
