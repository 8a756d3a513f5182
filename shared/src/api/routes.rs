//! The route table. The handler dispatches only through [`match_route`], and
//! the OpenAPI test compares [`ROUTES`] with the document's `paths`, so a
//! route cannot be served without being documented (or the reverse).

use http::Method;

use crate::web::ApiError;

use super::Rejection;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Healthz,
    OpenApi,
    Jwks,
    Check,
    Token,
    Customer,
    ClaimSeat,
    ReleaseSeat,
    ListSeats,
    RemoveLink,
}

/// One route: method and path template in OpenAPI syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub route: Route,
    pub method: &'static str,
    pub path: &'static str,
}

pub const ROUTES: &[RouteSpec] = &[
    spec(Route::Healthz, "GET", "/healthz"),
    spec(Route::OpenApi, "GET", "/v1/openapi.json"),
    spec(Route::Jwks, "GET", "/.well-known/jwks.json"),
    spec(Route::Check, "POST", "/v1/check"),
    spec(Route::Token, "POST", "/v1/token"),
    spec(
        Route::Customer,
        "GET",
        "/v1/customers/{marketplace}/{customer_id}",
    ),
    spec(Route::ClaimSeat, "POST", "/v1/seats/claim"),
    spec(Route::ReleaseSeat, "POST", "/v1/seats/release"),
    spec(
        Route::ListSeats,
        "GET",
        "/v1/seats/{marketplace}/{subscription_id}",
    ),
    spec(
        Route::RemoveLink,
        "DELETE",
        "/v1/links/{app_user}/{marketplace}/{customer_id}",
    ),
];

const fn spec(route: Route, method: &'static str, path: &'static str) -> RouteSpec {
    RouteSpec {
        route,
        method,
        path,
    }
}

/// A matched route and its path parameters, percent-decoded, in template order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub route: Route,
    pub params: Vec<String>,
}

/// Finds the route for `method` and `path`: 404 when no template matches the
/// path, 405 (naming the allowed methods, also in `Allow`) when one does
/// but not the method. Messages never quote the path: it is the caller's.
pub fn match_route(method: &Method, path: &str) -> Result<Matched, ApiError> {
    let mut allowed: Vec<&'static str> = Vec::new();
    for spec in ROUTES {
        let Some(params) = match_template(spec.path, path)? else {
            continue;
        };
        if spec.method == method.as_str() {
            return Ok(Matched {
                route: spec.route,
                params,
            });
        }
        allowed.push(spec.method);
    }
    if allowed.is_empty() {
        return Err(ApiError::not_found(
            "no route has this path; see GET /v1/openapi.json",
        ));
    }
    Err(ApiError::method_not_allowed(&allowed))
}

/// `Some(params)` when `path` fits `template` segment by segment.
fn match_template(template: &str, path: &str) -> Result<Option<Vec<String>>, ApiError> {
    let mut params = Vec::new();
    let mut wanted = template.split('/');
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return Ok(Some(params)),
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return Ok(None);
                }
                params.push(percent_decode(g)?);
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return Ok(None),
        }
    }
}

/// Decodes `%XX` escapes of a path segment into UTF-8.
fn percent_decode(segment: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::from(Rejection::InvalidRequest(
            "a path segment is not valid percent-encoded UTF-8".into(),
        ))
    };
    let hex_digit = |b: Option<u8>| b.and_then(|b| char::from(b).to_digit(16));
    let mut out = Vec::with_capacity(segment.len());
    let mut bytes = segment.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            // Exactly two hex digits (`u8::from_str_radix` would also take "+f").
            let (Some(hi), Some(lo)) = (hex_digit(bytes.next()), hex_digit(bytes.next())) else {
                return Err(invalid());
            };
            out.push(u8::try_from(hi * 16 + lo).map_err(|_| invalid())?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_decoded_params() {
        let m = match_route(&Method::GET, "/v1/customers/github/a%20b").unwrap();
        assert_eq!(m.route, Route::Customer);
        assert_eq!(m.params, ["github", "a b"]);
        let m = match_route(&Method::GET, "/v1/customers/q2/fi%3Au%c3%a9%2f").unwrap();
        assert_eq!(m.params, ["q2", "fi:ué/"]);
        let m = match_route(&Method::GET, "/.well-known/jwks.json").unwrap();
        assert_eq!(m.route, Route::Jwks);
        let m = match_route(&Method::POST, "/v1/token").unwrap();
        assert_eq!(m.route, Route::Token);
        let m = match_route(&Method::POST, "/v1/seats/claim").unwrap();
        assert_eq!(m.route, Route::ClaimSeat);
        let m = match_route(&Method::GET, "/v1/seats/gcp/ent-1").unwrap();
        assert_eq!(
            (m.route, m.params),
            (Route::ListSeats, vec!["gcp".into(), "ent-1".into()])
        );
        let m = match_route(&Method::DELETE, "/v1/links/github:7/github/42").unwrap();
        assert_eq!(
            (m.route, m.params),
            (
                Route::RemoveLink,
                vec!["github:7".into(), "github".into(), "42".into()]
            )
        );
        assert_eq!(
            match_route(&Method::GET, "/v1/links/github:7/github/42")
                .unwrap_err()
                .status,
            405
        );
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        assert_eq!(
            match_route(&Method::GET, "/v1/nope").unwrap_err().status,
            404
        );
        assert_eq!(
            match_route(&Method::GET, "/v1/check/").unwrap_err().status,
            404
        );
        assert_eq!(
            match_route(&Method::GET, "/v1/customers/github/")
                .unwrap_err()
                .status,
            404
        );
        let err = match_route(&Method::GET, "/v1/check").unwrap_err();
        assert_eq!(err.status, 405);
        assert_eq!(err.allow.as_deref(), Some("POST"));
        assert!(err.message.contains("POST"), "{}", err.message);
        let err = match_route(&Method::POST, "/healthz").unwrap_err();
        assert_eq!(err.allow.as_deref(), Some("GET"));
        let err = match_route(&Method::GET, "/v1/nope%0a<b>").unwrap_err();
        assert!(!err.message.contains("nope"), "{}", err.message);
        // `claim` also fits no GET template with two segments, so this is a
        // 405 for the POST route, not a lookup of marketplace "seats".
        assert_eq!(
            match_route(&Method::DELETE, "/v1/seats/claim")
                .unwrap_err()
                .status,
            405
        );
    }

    #[test]
    fn bad_escapes_are_invalid_requests() {
        for path in [
            "/v1/customers/github/%zz",
            "/v1/customers/github/%c3",
            "/v1/seats/q2/%",
            "/v1/seats/q2/%4",
            "/v1/seats/q2/%+f",
            "/v1/seats/q2/%é1",
        ] {
            let err = match_route(&Method::GET, path).unwrap_err();
            assert_eq!(
                (err.status.as_u16(), err.code),
                (400, "invalid_request"),
                "{path}"
            );
        }
    }
}
