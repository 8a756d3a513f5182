//! `oauth-callback`: customer-facing pages: the GitHub Setup URL and OAuth
//! callback (flow and pages in [`crate::marketplace::github::oauth`]), Google sign-up.
//!
//! Routes: `GET /github/setup`, `GET /github/callback`, `POST /gcp/signup`
//! (Google's sign-up URL, form field `x-gcp-marketplace-token`),
//! `GET`/`POST /gcp/login` (Google's "Manage on provider" link),
//! `GET /healthz`. Errors of the flows are HTML pages for a person, with the
//! status the flow's error maps itself to. The GitHub routes set and clear
//! the `__Host-tollgate_oauth` cookie that binds a sign-in to its browser
//! ([`crate::marketplace::github::oauth_state`]).

use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderValue, StatusCode, header};

use crate::clock::{Clock, SystemClock};
use crate::config::Catalog;
use crate::marketplace::gcp::keys::{KeyCache, KeyFormat};
use crate::marketplace::gcp::signup::{GcpSignup, SIGNUP_PATH, signed_up_page, signup_error_page};
use crate::marketplace::gcp::signup_token::SignupVerifier;
use crate::marketplace::github::client::GithubClient;
use crate::marketplace::github::oauth::{
    CALLBACK_PATH, COOKIE_NAME, CallbackParams, GithubSignIn, OauthApp, OauthError, SETUP_PATH,
    STATE_TTL, error_page, success_page,
};
use crate::marketplace::github::oauth_state::{STATE_KEY_SECRET, StateKeys};
use crate::model::Marketplace;
use crate::setup::{Deps, SetupError};
use crate::web::pages::{Brand, Page, escape, render};
use crate::web::{
    ApiError, Function, HOST_COOKIE_PREFIX, Request, Response, cookie, header_str, host_cookie,
    html_response, query_param, redirect,
};

use super::FromDeps;

pub struct OauthCallback {
    github: GithubSignIn,
    gcp: GcpSignup,
    /// Whose pages the GitHub sign-in shows (`marketplaces.github.product`).
    github_brand: Brand,
    /// Whose pages Google's sign-up shows (Google's default product, else
    /// the first product).
    gcp_brand: Brand,
    catalog: Arc<Catalog>,
}

impl OauthCallback {
    /// Builds the function with `clock` (tests move time; Lambda uses the
    /// system clock through [`FromDeps`]).
    pub fn with_clock(deps: Deps, clock: Arc<dyn Clock>) -> Result<Self, SetupError> {
        let client =
            GithubClient::new(&deps.settings).map_err(|e| SetupError::Invalid(e.to_string()))?;
        let app = OauthApp::from_secrets(&deps.secrets)?;
        let state_keys = StateKeys::from_secrets(&deps.secrets)?;
        if app.is_none() {
            tracing::warn!(
                "GitHub sign-in disabled: secrets github_client_id/github_client_secret not set"
            );
        } else if state_keys.is_none() {
            // Loud, but scoped: Google's sign-up on this function still works.
            tracing::error!(
                "GitHub sign-in answers 503: secret {STATE_KEY_SECRET} is missing (openssl rand -hex 32)"
            );
        }
        let link_ttl = deps.settings.link_ttl()?;
        let github = GithubSignIn::new(
            client,
            app,
            state_keys,
            Arc::clone(&deps.store),
            Arc::clone(&clock),
            deps.settings.public_url.clone(),
            link_ttl,
        );
        let settings = &deps.settings;
        let verifier = match (&settings.gcp_signup_audience, &settings.gcp_provider_id) {
            (Some(audience), Some(_)) => Some(SignupVerifier::new(
                KeyCache::new(
                    settings.gcp_signup_certs_url.clone(),
                    KeyFormat::X509Map,
                    super::http_client()?,
                ),
                audience,
            )),
            _ => {
                tracing::warn!(
                    "Google sign-up disabled: set TOLLGATE_GCP_SIGNUP_AUDIENCE and TOLLGATE_GCP_PROVIDER_ID"
                );
                None
            }
        };
        let gcp = GcpSignup::new(
            verifier,
            super::gcp_procurement(&deps, Arc::clone(&clock))?,
            Arc::clone(&deps.catalog),
            deps.store.clone(),
            deps.store.clone(),
            link_ttl,
            clock,
        );
        Ok(Self {
            github,
            gcp,
            github_brand: Brand::for_marketplace(&deps.catalog, Marketplace::Github),
            gcp_brand: Brand::for_marketplace(&deps.catalog, Marketplace::Gcp),
            catalog: Arc::clone(&deps.catalog),
        })
    }

    async fn gcp_signup(&self, req: &Request) -> Response {
        let token = form_field(req, TOKEN_FIELD).unwrap_or_default();
        match self.gcp.finish(&token).await {
            Ok(done) => page(StatusCode::OK, signed_up_page(&done, &self.gcp_brand)),
            Err(e) => {
                let html = signup_error_page(&e, &self.gcp_brand);
                let api = ApiError::from(e);
                if api.status.is_server_error() {
                    tracing::error!(code = api.code, message = %api.message, "google sign-up failed");
                } else {
                    tracing::info!(code = api.code, "google sign-up refused");
                }
                page(api.status, html)
            }
        }
    }

    /// 302 to GitHub's authorize page, setting the cookie that binds the
    /// `state` to this browser; the flow's refusals are HTML pages.
    fn github_setup(&self, req: &Request) -> Result<Response, ApiError> {
        // `installation_id`, `setup_action` and `marketplace_listing_plan_id`
        // are deliberately not read: anyone can put them in the URL.
        let started = match self.github.start(request_base(req).as_deref()) {
            Ok(started) => started,
            Err(e) => return Ok(error_reply(e, &self.github_brand)),
        };
        let mut res = redirect(&started.location)?;
        let cookie = host_cookie(COOKIE_NAME, &started.cookie_nonce, STATE_TTL.num_seconds())
            .map_err(|_| ApiError::internal("the sign-in cookie is not a valid header"))?;
        res.headers_mut().append(header::SET_COOKIE, cookie);
        Ok(res)
    }

    async fn github_callback(&self, req: &Request) -> Response {
        let params = CallbackParams {
            code: query_param(req, "code"),
            state: query_param(req, "state"),
            error: query_param(req, "error"),
        };
        let name = format!("{HOST_COOKIE_PREFIX}{COOKIE_NAME}");
        let result = self
            .github
            .finish(params, cookie(req.headers(), &name))
            .await;
        let ends = result
            .as_ref()
            .err()
            .is_none_or(OauthError::ends_the_sign_in);
        let mut res = match result {
            Ok(done) => page(
                StatusCode::OK,
                success_page(&done, self.github.now(), &self.github_brand, &self.catalog),
            ),
            Err(e) => error_reply(e, &self.github_brand),
        };
        if ends && let Ok(clear) = host_cookie(COOKIE_NAME, "", 0) {
            res.headers_mut().append(header::SET_COOKIE, clear);
        }
        res
    }
}

/// Google's "Manage on provider" link.
pub const LOGIN_PATH: &str = "/gcp/login";
/// The form field Google posts the sign-up token in.
const TOKEN_FIELD: &str = "x-gcp-marketplace-token";

/// A field of an `application/x-www-form-urlencoded` body (or the query).
fn form_field(req: &Request, name: &str) -> Option<String> {
    let from_body = crate::web::body_bytes(req).ok().and_then(|body| {
        url::form_urlencoded::parse(body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    });
    from_body.or_else(|| query_param(req, name))
}

/// An HTML error page with the status the error maps to.
fn error_reply(e: OauthError, brand: &Brand) -> Response {
    let html = error_page(&e, brand);
    let api = ApiError::from(e);
    if api.status.is_server_error() {
        tracing::error!(code = api.code, message = %api.message, "github sign-in failed");
    } else {
        tracing::info!(code = api.code, "github sign-in refused");
    }
    page(api.status, html)
}

/// `html_response` plus headers that keep the page (and the `code`/`state`
/// in its URL) to itself: no framing, no referrer, nothing external — the
/// page's CSP lets exactly its own inline style and logo load.
fn page(status: StatusCode, page: Page) -> Response {
    let mut res = html_response(status, page.html);
    let h = res.headers_mut();
    // The CSP is ASCII by construction; were it not, the page goes out
    // unstyled rather than with a weaker policy.
    let csp = HeaderValue::from_str(&page.csp)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// `scheme://host` the request came in on, for the redirect URI when
/// `TOLLGATE_PUBLIC_URL` is not set. Plain HTTP only for loopback hosts
/// (local development) unless a proxy says otherwise.
fn request_base(req: &Request) -> Option<String> {
    if let (Some(scheme), Some(authority)) = (req.uri().scheme_str(), req.uri().authority()) {
        return Some(format!("{scheme}://{authority}"));
    }
    let host = header_str(req.headers(), header::HOST.as_str())?.trim();
    let sane = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if !sane {
        return None;
    }
    let hostname = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let loopback = matches!(hostname, "localhost" | "127.0.0.1" | "[::1]");
    let scheme = match header_str(req.headers(), "x-forwarded-proto") {
        Some("http") => "http",
        Some("https") => "https",
        _ if loopback => "http",
        _ => "https",
    };
    Some(format!("{scheme}://{host}"))
}

impl FromDeps for OauthCallback {
    const NAME: &'static str = "oauth-callback";

    async fn from_deps(deps: Deps) -> Result<Self, SetupError> {
        Self::with_clock(deps, Arc::new(SystemClock))
    }
}

#[async_trait]
impl Function for OauthCallback {
    async fn call(&self, req: Request) -> Result<Response, ApiError> {
        match (req.method().as_str(), req.uri().path()) {
            ("GET", "/healthz") => Ok(super::healthz(Self::NAME)),
            ("GET", SETUP_PATH) => self.github_setup(&req),
            ("GET", CALLBACK_PATH) => Ok(self.github_callback(&req).await),
            ("POST", SIGNUP_PATH) => Ok(self.gcp_signup(&req).await),
            // "Manage on provider": Google links the customer here with the
            // same token; signing up again is harmless (idempotent).
            ("POST", LOGIN_PATH) => Ok(self.gcp_signup(&req).await),
            ("GET", LOGIN_PATH) => {
                let name = escape(&self.gcp_brand.name);
                let body = format!(
                    "<h1>{name}</h1>\n<p>Sign in to {name} with your Google account to manage your subscription.</p>\n{}",
                    self.gcp_brand.continue_link().unwrap_or_default()
                );
                Ok(page(
                    StatusCode::OK,
                    render(&self.gcp_brand, "Manage your subscription", &body),
                ))
            }
            (_, "/healthz" | SETUP_PATH | CALLBACK_PATH) => {
                Err(ApiError::method_not_allowed(&["GET"]))
            }
            (_, SIGNUP_PATH) => Err(ApiError::method_not_allowed(&["POST"])),
            (_, LOGIN_PATH) => Err(ApiError::method_not_allowed(&["GET", "POST"])),
            _ => Err(ApiError::not_found("no such route")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::Body;

    fn req(uri: &str, host: Option<&str>, proto: Option<&str>) -> Request {
        let mut b = http::Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        if let Some(p) = proto {
            b = b.header("x-forwarded-proto", p);
        }
        b.body(Body::Empty).unwrap()
    }

    #[test]
    fn the_request_base_comes_from_the_uri_or_a_sane_host() {
        assert_eq!(
            request_base(&req(
                "https://abc.lambda-url.eu-west-1.on.aws/github/setup",
                None,
                None
            ))
            .as_deref(),
            Some("https://abc.lambda-url.eu-west-1.on.aws")
        );
        assert_eq!(
            request_base(&req("/github/setup", Some("127.0.0.1:9103"), None)).as_deref(),
            Some("http://127.0.0.1:9103")
        );
        assert_eq!(
            request_base(&req("/github/setup", Some("tollgate.example"), None)).as_deref(),
            Some("https://tollgate.example")
        );
        assert_eq!(
            request_base(&req("/github/setup", Some("localhost:1"), Some("https"))).as_deref(),
            Some("https://localhost:1")
        );
        assert_eq!(
            request_base(&req("/github/setup", Some("evil.example/\"><x"), None)),
            None
        );
        assert_eq!(request_base(&req("/github/setup", None, None)), None);
    }
}
