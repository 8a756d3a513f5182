//! HTTP plumbing shared by the four functions: the error shape
//! ([`ApiError`]), JSON and HTML responses, request ids, body limits and
//! header helpers. It knows no marketplace and no store: each error type
//! maps itself to an [`ApiError`] in its own module.
//!
//! Handlers take and return plain `http` types with `lambda_http::Body`, so
//! the same code runs inside Lambda (function URLs, payload 2.0) and behind
//! the local dev server.

use std::convert::Infallible;
use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderValue, StatusCode, header};
pub use lambda_http::Body;
use serde::Serialize;

pub mod pages;

pub type Request = http::Request<Body>;
pub type Response = http::Response<Body>;

/// The largest body any endpoint accepts (GitHub caps webhooks at 25 MB;
/// marketplace events are a few KB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An error on its way to becoming a response: status, stable machine code,
/// human message. Messages never contain secrets, tokens or raw payloads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The cause, for the operator's log only (never sent): a 5xx answer
    /// tells the caller little on purpose, and the log must still say what
    /// failed (which store call, the SDK's own error chain).
    pub cause: Option<String>,
    /// The methods the path accepts, sent as `Allow` with a 405 (RFC 9110
    /// requires it there); see [`ApiError::method_not_allowed`].
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            cause: None,
            allow: None,
        }
    }

    /// Attaches the cause to log with a server error (see [`ApiError::cause`]).
    pub fn caused_by(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405 for a path that exists with other methods: `allowed` names
    /// them, in the message and in the `Allow` header.
    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        let allow = allowed.join(", ");
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this path accepts {allow}"),
        );
        e.allow = Some(allow);
        e
    }

    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body exceeds {MAX_BODY_BYTES} bytes"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// Renders `{"error":{"code","message"}}` with the request id (and
    /// `Allow` on a 405).
    pub fn into_response(self, request_id: &str) -> Response {
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: &'a str,
            request_id: &'a str,
        }
        #[derive(Serialize)]
        struct Outer<'a> {
            error: Inner<'a>,
        }
        let body = Outer {
            error: Inner {
                code: self.code,
                message: &self.message,
                request_id,
            },
        };
        let mut res = json_response(self.status, &body);
        if let Some(allow) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            res.headers_mut().insert(header::ALLOW, allow);
        }
        res
    }
}

/// One of the four functions: a request in, a response or an error out.
#[async_trait]
pub trait Function: Send + Sync {
    async fn call(&self, req: Request) -> Result<Response, ApiError>;
}

#[async_trait]
impl<F: Function + ?Sized> Function for Arc<F> {
    async fn call(&self, req: Request) -> Result<Response, ApiError> {
        (**self).call(req).await
    }
}

/// Runs a function for one request: errors become JSON, every response
/// carries `x-request-id`, and every request is logged once (method, path,
/// status, latency — never headers or bodies).
pub async fn serve(f: &dyn Function, req: Request) -> Response {
    let id = request_id(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let mut res = match f.call(req).await {
        Ok(res) => res,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(
                    request_id = %id,
                    code = e.code,
                    message = %e.message,
                    cause = e.cause.as_deref().unwrap_or(""),
                    "request failed"
                );
            }
            e.into_response(&id)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    tracing::info!(
        request_id = %id,
        %method,
        path = %path,
        status = res.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    res
}

/// Serves `f` on the Lambda runtime (function URL events).
pub async fn run_lambda<F: Function + 'static>(f: F) -> Result<(), lambda_http::Error> {
    let f = Arc::new(f);
    lambda_http::run(lambda_http::service_fn(move |req: Request| {
        let f = Arc::clone(&f);
        async move { Ok::<_, Infallible>(serve(&*f, req).await) }
    }))
    .await
}

/// The Lambda request id when running in Lambda, else a caller-supplied
/// `x-request-id` (if sane), else a fresh random id.
pub fn request_id(req: &Request) -> String {
    use lambda_http::RequestExt;
    if let Some(ctx) = req.lambda_context_ref()
        && !ctx.request_id.is_empty()
    {
        return ctx.request_id.clone();
    }
    if let Some(v) = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        && !v.is_empty()
        && v.len() <= 64
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return v.to_owned();
    }
    fresh_request_id()
}

/// The OS random source failed. Nothing that needs an unguessable value
/// (an OAuth `state`, a cookie nonce, a generated secret) may go on without
/// one: callers answer 503 instead of inventing a predictable value.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct NoRandomness(#[source] pub getrandom::Error);

/// 503 `no_randomness`: a fault of the host, not of the request, and
/// usually gone on the next instance.
impl From<NoRandomness> for ApiError {
    fn from(e: NoRandomness) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_randomness",
            "the server cannot generate a secure random value just now; try again",
        )
        .caused_by(e)
    }
}

/// `n` random bytes as hex, from the OS generator, or [`NoRandomness`]:
/// never a value derived from the clock or a counter.
pub fn random_token(n: usize) -> Result<String, NoRandomness> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(NoRandomness)?;
    Ok(hex::encode(buf))
}

/// A request id when neither Lambda nor the caller gave one: random, or —
/// only if the OS random source fails — a per-process sequence number. A
/// request id is a log correlation label that any caller may choose
/// (`x-request-id`), never a secret, so it need not be unguessable; refusing
/// every request over it would turn a missing label into an outage.
fn fresh_request_id() -> String {
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    random_token(12).unwrap_or_else(|_| {
        let n = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("local-{n}")
    })
}

pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut res = http::Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

pub fn html_response(status: StatusCode, html: String) -> Response {
    let mut res = http::Response::new(Body::from(html));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub fn redirect(location: &str) -> Result<Response, ApiError> {
    let loc = HeaderValue::from_str(location)
        .map_err(|_| ApiError::internal("invalid redirect location"))?;
    let mut res = http::Response::new(Body::Empty);
    *res.status_mut() = StatusCode::FOUND;
    res.headers_mut().insert(header::LOCATION, loc);
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The raw body bytes (already base64-decoded by `lambda_http` when the
/// function URL says so), refused past [`MAX_BODY_BYTES`].
pub fn body_bytes(req: &Request) -> Result<&[u8], ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large());
    }
    Ok(bytes)
}

/// What a request's `Content-Type` says, parameters (`charset`) ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType<'a> {
    Missing,
    Json,
    Form,
    /// Anything else, as sent (its essence, before any `;`).
    Other(&'a str),
}

/// Classifies the `Content-Type` header: the one place that parses it.
pub fn media_type(headers: &http::HeaderMap) -> MediaType<'_> {
    let Some(content_type) = header_str(headers, header::CONTENT_TYPE.as_str()) else {
        return MediaType::Missing;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        MediaType::Json
    } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        MediaType::Form
    } else {
        MediaType::Other(essence)
    }
}

/// A header's value, if present and visible ASCII.
pub fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A cookie's value from the request's `Cookie` header(s), first match.
/// (Lambda function URLs hand cookies over as a list, which `lambda_http`
/// joins into one `Cookie` header; HTTP/2 clients may send several.)
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value of a browser-bound cookie: `__Host-<name>`, so the
/// browser keeps it only if it came from this exact origin over a secure
/// connection (`Secure`, `Path=/`, no `Domain`), `HttpOnly` (no script
/// reads it) and `SameSite=Lax` (sent on the top-level navigation back from
/// another site, not on cross-site subrequests or POSTs). `max_age_seconds`
/// 0 deletes it. `value` must be cookie-safe (we only set hex).
pub fn host_cookie(
    name: &str,
    value: &str,
    max_age_seconds: i64,
) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    HeaderValue::from_str(&format!(
        "{HOST_COOKIE_PREFIX}{name}={value}; Path=/; Max-Age={max_age_seconds}; Secure; HttpOnly; SameSite=Lax"
    ))
}

/// The name prefix browsers enforce for host-only, secure cookies (RFC
/// 6265bis, "Cookie Name Prefixes").
pub const HOST_COOKIE_PREFIX: &str = "__Host-";

/// A query parameter, percent-decoded, read from the URI so it works the
/// same in Lambda and in the dev server.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    let query = req.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str, ct: &str) -> Request {
        http::Request::builder()
            .uri("/x?a=1&code=a%20b")
            .header("content-type", ct)
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    #[test]
    fn errors_render_as_json_with_the_request_id() {
        let res = ApiError::bad_request("invalid_json", "nope").into_response("req-1");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_slice(res.body().as_ref()).unwrap();
        assert_eq!(v["error"]["code"], "invalid_json");
        assert_eq!(v["error"]["message"], "nope");
        assert_eq!(v["error"]["request_id"], "req-1");
    }

    #[test]
    fn a_405_names_the_allowed_methods_in_allow() {
        let res = ApiError::method_not_allowed(&["GET", "POST"]).into_response("req-1");
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[header::ALLOW], "GET, POST");
        let v: serde_json::Value = serde_json::from_slice(res.body().as_ref()).unwrap();
        assert_eq!(v["error"]["code"], "method_not_allowed");
        assert_eq!(v["error"]["message"], "this path accepts GET, POST");
        let other = ApiError::bad_request("invalid_json", "nope").into_response("req-1");
        assert!(other.headers().get(header::ALLOW).is_none());
    }

    #[test]
    fn media_types_ignore_parameters_and_case() {
        let ct = |v: &'static str| {
            let mut h = http::HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            h
        };
        assert_eq!(
            media_type(&ct("Application/JSON; charset=utf-8")),
            MediaType::Json
        );
        assert_eq!(
            media_type(&ct("application/x-www-form-urlencoded")),
            MediaType::Form
        );
        assert_eq!(
            media_type(&ct("text/plain ; x=1")),
            MediaType::Other("text/plain")
        );
        assert_eq!(media_type(&http::HeaderMap::new()), MediaType::Missing);
    }

    #[test]
    fn oversized_bodies_are_refused() {
        let big = "x".repeat(MAX_BODY_BYTES + 1);
        assert_eq!(
            body_bytes(&req(&big, "application/json"))
                .unwrap_err()
                .status,
            413
        );
    }

    #[test]
    fn query_params_are_decoded() {
        let r = req("", "text/plain");
        assert_eq!(query_param(&r, "code").as_deref(), Some("a b"));
        assert_eq!(query_param(&r, "missing"), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name_across_headers() {
        let mut h = http::HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-x_y=no"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("__Host-x=42; b=2"));
        assert_eq!(cookie(&h, "__Host-x"), Some("42"));
        assert_eq!(cookie(&h, "a"), Some("1"));
        assert_eq!(cookie(&h, "x"), None);
        assert_eq!(cookie(&http::HeaderMap::new(), "a"), None);
    }

    #[test]
    fn host_cookies_carry_every_attribute_the_prefix_needs() {
        assert_eq!(
            host_cookie("t", "ab12", 600).unwrap(),
            "__Host-t=ab12; Path=/; Max-Age=600; Secure; HttpOnly; SameSite=Lax"
        );
        assert!(host_cookie("t", "a\nb", 0).is_err());
    }

    #[test]
    fn random_tokens_are_hex_of_the_asked_length_and_differ() {
        let a = random_token(16).unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, random_token(16).unwrap());
    }

    #[test]
    fn no_randomness_is_a_503_that_keeps_its_cause_for_the_log() {
        let e = NoRandomness(getrandom::Error::UNSUPPORTED);
        assert!(std::error::Error::source(&e).is_some());
        let api = ApiError::from(e);
        assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(api.code, "no_randomness");
        assert!(api.cause.is_some());
    }

    #[test]
    fn request_ids_are_taken_only_when_sane() {
        let mut r = req("", "text/plain");
        r.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&r), "abc-123");
        r.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("<script>"));
        assert_ne!(request_id(&r), "<script>");
    }
}
