//! `oauth-callback`: customer-facing pages: the GitHub Setup URL and OAuth
//! callback (flow and pages in [`crate::marketplace::github::oauth`]), Google sign-up.
//!
//! Routes: `GET /github/setup`, `GET /github/callback`, `GET /healthz`.
//! Errors of the GitHub flow are HTML pages for a person, with the status
//! [`ApiError`] gives them (`crate::web` maps every error in one place).

use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderValue, StatusCode, header};

use crate::clock::{Clock, SystemClock};
use crate::marketplace::github::client::GithubClient;
use crate::marketplace::github::oauth::{
    CALLBACK_PATH, CallbackParams, GithubSignIn, OauthApp, OauthError, SETUP_PATH, error_page,
    success_page,
};
use crate::setup::{Deps, SetupError};
use crate::web::{
    ApiError, Function, Request, Response, header_str, html_response, query_param, redirect,
};

use super::FromDeps;

pub struct OauthCallback {
    github: GithubSignIn,
}

impl OauthCallback {
    /// Builds the function with `clock` (tests move time; Lambda uses the
    /// system clock through [`FromDeps`]).
    pub fn with_clock(deps: Deps, clock: Arc<dyn Clock>) -> Result<Self, SetupError> {
        let client =
            GithubClient::new(&deps.settings).map_err(|e| SetupError::Invalid(e.to_string()))?;
        let app = OauthApp::from_secrets(&deps.secrets)?;
        if app.is_none() {
            tracing::warn!(
                "GitHub sign-in disabled: secrets github_client_id/github_client_secret not set"
            );
        }
        let github = GithubSignIn::new(
            client,
            app,
            Arc::clone(&deps.store),
            clock,
            deps.settings.public_url.clone(),
        );
        Ok(Self { github })
    }

    async fn github_setup(&self, req: &Request) -> Result<Response, OauthError> {
        // `installation_id`, `setup_action` and `marketplace_listing_plan_id`
        // are deliberately not read: anyone can put them in the URL.
        let location = self.github.start(request_base(req).as_deref()).await?;
        redirect(&location).map_err(|_| OauthError::NoPublicUrl)
    }

    async fn github_callback(&self, req: &Request) -> Response {
        let params = CallbackParams {
            code: query_param(req, "code"),
            state: query_param(req, "state"),
            error: query_param(req, "error"),
        };
        match self.github.finish(params).await {
            Ok(done) => page(StatusCode::OK, success_page(&done, self.github.now())),
            Err(e) => error_reply(e),
        }
    }
}

/// An HTML error page with the status the error maps to.
fn error_reply(e: OauthError) -> Response {
    let html = error_page(&e);
    let api = ApiError::from(e);
    if api.status.is_server_error() {
        tracing::error!(code = api.code, message = %api.message, "github sign-in failed");
    } else {
        tracing::info!(code = api.code, "github sign-in refused");
    }
    page(api.status, html)
}

/// `html_response` plus headers that keep the page (and the `code`/`state`
/// in its URL) to itself: no framing, no referrer, nothing external.
fn page(status: StatusCode, html: String) -> Response {
    let mut res = html_response(status, html);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
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
            ("GET", SETUP_PATH) => match self.github_setup(&req).await {
                Ok(res) => Ok(res),
                Err(e) => Ok(error_reply(e)),
            },
            ("GET", CALLBACK_PATH) => Ok(self.github_callback(&req).await),
            (_, SETUP_PATH | CALLBACK_PATH) => Err(ApiError::method_not_allowed()),
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
