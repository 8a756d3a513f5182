//! The entitlement-check API: what the vendor's apps send and receive, which
//! routes exist, and who may call them.
//!
//! The handler that ties these together is
//! `functions::entitlement_check::EntitlementCheck`; the contract is
//! the checked-in OpenAPI document, served at `GET /v1/openapi.json` and
//! tested against the handler (every route, every response shape).
//!
//! - [`wire`]: request and response bodies (field names are a public
//!   contract), defined in `tollgate_core::wire` and shared with
//!   `tollgate-client`.
//! - [`routes`]: the route table the handler dispatches on.
//! - [`auth`]: IAM-signed requests and hashed, scoped API keys.
//! - [`token`]: signed entitlement tokens and the keys that verify them.

use http::StatusCode;

use crate::entitlement::Reason;

pub mod auth;
pub mod routes;
pub mod token;
pub mod wire;

/// The OpenAPI 3.1 document of this API, as checked in.
pub const OPENAPI_JSON: &str = include_str!("../../../openapi/entitlement-check.json");

/// Why the API refused a request before (or instead of) answering it. Turned
/// into an HTTP status and a stable error code by `crate::web` (the one
/// place where errors become responses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The body is not JSON at all (400 `invalid_json`).
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The JSON is well-formed but not a valid request (400 `invalid_request`).
    #[error("{0}")]
    InvalidRequest(String),
    /// The body is not `application/json` (415 `unsupported_media_type`).
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// No credentials: neither an IAM-signed function URL request nor an API
    /// key (401 `missing_credentials`).
    #[error("{0}")]
    MissingCredentials(&'static str),
    /// What was sent is not a Tollgate key, or matches none configured (401
    /// `invalid_api_key`).
    #[error("the API key is not valid")]
    InvalidApiKey,
    /// The key matches an entry whose `expires` has passed (401 `expired_api_key`).
    #[error("the API key expired at {0}; ask for a new one")]
    ExpiredApiKey(chrono::DateTime<chrono::Utc>),
    /// The event cannot have come through this function's URL: no IAM caller
    /// behind an `AWS_IAM` URL, one behind a `NONE` URL, or not a function
    /// URL's shape (401 `untrusted_event`). Only a direct invoke with a
    /// hand-written event gets here, never an HTTP request.
    #[error("not trusted as a function URL request: {0}")]
    UntrustedEvent(&'static str),
    /// An IAM caller missing from `TOLLGATE_IAM_PRINCIPALS` (403 `principal_not_allowed`).
    #[error("this IAM principal is not allowed to call the API (TOLLGATE_IAM_PRINCIPALS)")]
    PrincipalNotAllowed,
    /// The key is valid but lacks the scope the route needs (403 `insufficient_scope`).
    #[error("the API key lacks the `{0}` scope")]
    InsufficientScope(auth::Scope),
    /// A seat claim was refused; the code is the decision's reason, e.g.
    /// `seat_limit_reached` or `cancelled` (409).
    #[error("{message}")]
    SeatRefused { reason: Reason, message: String },
}

impl Rejection {
    /// The HTTP status and stable machine code of this rejection.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Rejection::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            Rejection::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Rejection::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Rejection::MissingCredentials(_) => (StatusCode::UNAUTHORIZED, "missing_credentials"),
            Rejection::InvalidApiKey => (StatusCode::UNAUTHORIZED, "invalid_api_key"),
            Rejection::ExpiredApiKey(_) => (StatusCode::UNAUTHORIZED, "expired_api_key"),
            Rejection::UntrustedEvent(_) => (StatusCode::UNAUTHORIZED, "untrusted_event"),
            Rejection::PrincipalNotAllowed => (StatusCode::FORBIDDEN, "principal_not_allowed"),
            Rejection::InsufficientScope(_) => (StatusCode::FORBIDDEN, "insufficient_scope"),
            Rejection::SeatRefused { reason, .. } => (StatusCode::CONFLICT, reason.as_str()),
        }
    }
}

/// Each rejection maps itself to a status and a stable code.
impl From<Rejection> for crate::web::ApiError {
    fn from(e: Rejection) -> Self {
        let (status, code) = e.status_and_code();
        crate::web::ApiError::new(status, code, e.to_string())
    }
}
