//! github.com: the OAuth web flow.
//!
//! Behaviour follows GitHub's docs — "Authorizing OAuth apps"
//! (<https://docs.github.com/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps>)
//! and the two troubleshooting pages linked from the error replies
//! (`DOCS_AUTHORIZE_ERRORS`, `DOCS_TOKEN_ERRORS` below): authorize redirects
//! back with `code`+`state`, or with `error`, `error_description`,
//! `error_uri`, `state`; the token endpoint answers errors with HTTP 200.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;

use super::GithubSim;
use super::state::{AuthKind, Authorize, CODE_TTL, IssuedCode, Seen, random_hex};

pub(super) fn router(sim: GithubSim) -> Router {
    Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(access_token))
        .nest("/_sim", super::control::router())
        .with_state(sim)
}

const DOCS_AUTHORIZE_ERRORS: &str = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/";
const DOCS_TOKEN_ERRORS: &str = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/";

fn record(sim: &GithubSim, method: &str, path: &str, query: Option<String>) {
    sim.lock().seen.push(Seen {
        host: "github.com",
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        auth: AuthKind::None,
    });
}

/// Appends `params` to `base`'s query string.
fn with_query(base: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut url = url::Url::parse(base).ok()?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    Some(url.into())
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        Err(_) => page(StatusCode::BAD_REQUEST, "Invalid redirect URI"),
    }
}

fn page(status: StatusCode, text: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>GitHub (simulated)</title><p>{}</p>",
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `GET /login/oauth/authorize?client_id&redirect_uri&state…`
async fn authorize(
    State(sim): State<GithubSim>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    // Record the parameters that identify the request, not the whole query.
    record(
        &sim,
        "GET",
        "/login/oauth/authorize",
        q.get("client_id").map(|c| format!("client_id={c}")),
    );
    let mut s = sim.lock();
    let Some(client_id) = q.get("client_id") else {
        return page(StatusCode::NOT_FOUND, "Not Found (client_id is missing)");
    };
    if *client_id != s.app.client_id {
        return page(
            StatusCode::NOT_FOUND,
            "Not Found (no application has this client_id)",
        );
    }
    let state = q.get("state").map(String::as_str).unwrap_or("");
    let registered = s.app.callback_urls.clone();
    let redirect_uri = match (q.get("redirect_uri"), registered.first()) {
        (Some(uri), None) => uri.clone(),
        (Some(uri), Some(_)) if registered.contains(uri) => uri.clone(),
        // A mismatch goes back to the registered callback with an error.
        (Some(_), Some(first)) => {
            let params = [
                ("error", "redirect_uri_mismatch"),
                (
                    "error_description",
                    "The redirect_uri MUST match the registered callback URL for this application.",
                ),
                (
                    "error_uri",
                    &format!("{DOCS_AUTHORIZE_ERRORS}#redirect-uri-mismatch"),
                ),
                ("state", state),
            ];
            return with_query(first, &params).map_or_else(
                || page(StatusCode::BAD_REQUEST, "bad callback"),
                |l| redirect(&l),
            );
        }
        (None, Some(first)) => first.clone(),
        (None, None) => {
            return page(
                StatusCode::BAD_REQUEST,
                "redirect_uri is required: this app has no callback URL",
            );
        }
    };
    if s.authorize == Authorize::Deny {
        let params = [
            ("error", "access_denied"),
            (
                "error_description",
                "The user has denied your application access.",
            ),
            (
                "error_uri",
                &format!("{DOCS_AUTHORIZE_ERRORS}#access-denied"),
            ),
            ("state", state),
        ];
        return with_query(&redirect_uri, &params).map_or_else(
            || page(StatusCode::BAD_REQUEST, "bad redirect_uri"),
            |l| redirect(&l),
        );
    }
    let Some(user_id) = s.approving_user() else {
        return page(
            StatusCode::OK,
            "Sign in to GitHub (the simulator has no users: add one first)",
        );
    };
    let code = random_hex(10);
    s.codes.insert(
        code.clone(),
        IssuedCode {
            user_id,
            client_id: client_id.clone(),
            redirect_uri: q.get("redirect_uri").cloned(),
            expires_at: Utc::now() + CODE_TTL,
        },
    );
    let mut params = vec![("code", code.as_str())];
    if q.contains_key("state") {
        params.push(("state", state));
    }
    with_query(&redirect_uri, &params).map_or_else(
        || page(StatusCode::BAD_REQUEST, "bad redirect_uri"),
        |l| redirect(&l),
    )
}

/// An answer of the token endpoint, rendered per the `Accept` header.
enum TokenReply {
    Token {
        access_token: String,
        refresh_token: String,
    },
    Error {
        error: &'static str,
        description: &'static str,
        anchor: &'static str,
    },
}

impl TokenReply {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        match self {
            TokenReply::Token {
                access_token,
                refresh_token,
            } => vec![
                ("access_token", access_token.clone()),
                ("expires_in", "28800".to_owned()),
                ("refresh_token", refresh_token.clone()),
                ("refresh_token_expires_in", "15811200".to_owned()),
                ("scope", String::new()),
                ("token_type", "bearer".to_owned()),
            ],
            TokenReply::Error {
                error,
                description,
                anchor,
            } => vec![
                ("error", (*error).to_owned()),
                ("error_description", (*description).to_owned()),
                ("error_uri", format!("{DOCS_TOKEN_ERRORS}#{anchor}")),
            ],
        }
    }

    fn render(&self, accept: &str) -> Response {
        let pairs = self.pairs();
        // Always HTTP 200, errors included: that is what GitHub does.
        if accept.contains("application/json") {
            let mut obj = serde_json::Map::new();
            for (k, v) in pairs {
                let value = match (k, v.parse::<u64>()) {
                    ("expires_in" | "refresh_token_expires_in", Ok(n)) => {
                        serde_json::Value::from(n)
                    }
                    _ => serde_json::Value::from(v),
                };
                obj.insert(k.to_owned(), value);
            }
            return (StatusCode::OK, axum::Json(serde_json::Value::Object(obj))).into_response();
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            body,
        )
            .into_response()
    }
}

/// `POST /login/oauth/access_token` with `client_id`, `client_secret`,
/// `code`, `redirect_uri` as a form, a JSON object or query parameters.
async fn access_token(
    State(sim): State<GithubSim>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&sim, "POST", "/login/oauth/access_token", None);
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut params: HashMap<String, String> = query;
    if content_type.starts_with("application/json") {
        if let Ok(serde_json::Value::Object(map)) =
            serde_json::from_slice::<serde_json::Value>(&body)
        {
            for (k, v) in map {
                if let Some(s) = v.as_str() {
                    params.insert(k, s.to_owned());
                }
            }
        }
    } else {
        params.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    exchange(&sim, &params).render(&accept)
}

fn exchange(sim: &GithubSim, params: &HashMap<String, String>) -> TokenReply {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let mut s = sim.lock();
    if get("client_id") != s.app.client_id || get("client_secret") != s.app.client_secret {
        return TokenReply::Error {
            error: "incorrect_client_credentials",
            description: "The client_id and/or client_secret passed are incorrect.",
            anchor: "incorrect-client-credentials",
        };
    }
    let bad_code = TokenReply::Error {
        error: "bad_verification_code",
        description: "The code passed is incorrect or expired.",
        anchor: "bad-verification-code",
    };
    // Codes are single use: taken out whatever happens next.
    let Some(issued) = s.codes.remove(get("code")) else {
        return bad_code;
    };
    if issued.expires_at <= Utc::now() || issued.client_id != get("client_id") {
        return bad_code;
    }
    if let Some(sent) = params.get("redirect_uri")
        && issued.redirect_uri.as_deref().is_some_and(|r| r != sent)
    {
        return TokenReply::Error {
            error: "redirect_uri_mismatch",
            description: "The redirect_uri MUST match the registered callback URL for this application.",
            anchor: "redirect-uri-mismatch2",
        };
    }
    let access_token = format!("ghu_{}", random_hex(18));
    let refresh_token = format!("ghr_{}", random_hex(38));
    s.tokens.insert(access_token.clone(), issued.user_id);
    TokenReply::Token {
        access_token,
        refresh_token,
    }
}
