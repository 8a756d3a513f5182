//! The Cloud Commerce Partner Procurement API v1
//! (`cloudcommerceprocurement.googleapis.com`), per its discovery document
//! (revision 20250914, vendored in `fixtures/gcp/`). [`PROCUREMENT_METHODS`]
//! is both what the router serves and what the tests check against the
//! document: method id, HTTP method, path template, query parameters,
//! request and response schemas.
//!
//! Every call needs `Authorization: Bearer <token from the token endpoint>`
//! (or `?access_token=`); errors use Google's JSON error body
//! `{"error":{"code","message","status"}}`. Query parameters and request
//! fields the document does not define are refused with 400, as Google's
//! front end refuses them, so a client that strays from the description
//! fails here first.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method as HttpMethod, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::filter::Filter;
use super::state::{Refusal, account_json, entitlement_json};
use super::{Fault, GcpSim, Seen, SimState};

/// One method of the API as the discovery document describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcurementMethod {
    /// The discovery `id`, e.g. `cloudcommerceprocurement.providers.accounts.get`.
    pub id: &'static str,
    pub http_method: &'static str,
    /// The discovery `flatPath`.
    pub flat_path: &'static str,
    /// Query parameters besides the standard ones (`alt`, `fields`, ...).
    pub query: &'static [&'static str],
    /// The request schema and the fields it has (`None`: no body).
    pub request: Option<(&'static str, &'static [&'static str])>,
    /// The response schema.
    pub response: &'static str,
}

/// Every field of `Entitlement` (the body of `entitlements.patch`).
const ENTITLEMENT_FIELDS: &[&str] = &[
    "account",
    "cancellationReason",
    "consumers",
    "createTime",
    "entitlementBenefitIds",
    "inputProperties",
    "messageToUser",
    "name",
    "newOfferEndTime",
    "newOfferStartTime",
    "newPendingOffer",
    "newPendingOfferDuration",
    "newPendingPlan",
    "offer",
    "offerDuration",
    "offerEndTime",
    "orderId",
    "plan",
    "product",
    "productExternalName",
    "provider",
    "quoteExternalName",
    "state",
    "subscriptionEndTime",
    "updateTime",
    "usageReportingId",
];

const P: &str = "cloudcommerceprocurement.providers.";

/// The methods the stand-in serves (all of the API but
/// `entitlements.suspend`, which Google documents as "not yet supported").
pub const PROCUREMENT_METHODS: [ProcurementMethod; 12] = [
    ProcurementMethod {
        id: "cloudcommerceprocurement.providers.accounts.get",
        http_method: "GET",
        flat_path: "v1/providers/{providersId}/accounts/{accountsId}",
        query: &["view"],
        request: None,
        response: "Account",
    },
    ProcurementMethod {
        id: "cloudcommerceprocurement.providers.accounts.list",
        http_method: "GET",
        flat_path: "v1/providers/{providersId}/accounts",
        query: &["pageSize", "pageToken"],
        request: None,
        response: "ListAccountsResponse",
    },
    ProcurementMethod {
        id: "cloudcommerceprocurement.providers.accounts.approve",
        http_method: "POST",
        flat_path: "v1/providers/{providersId}/accounts/{accountsId}:approve",
        query: &[],
        request: Some((
            "ApproveAccountRequest",
            &["approvalName", "properties", "reason"],
        )),
        response: "Empty",
    },
    ProcurementMethod {
        id: "cloudcommerceprocurement.providers.accounts.reject",
        http_method: "POST",
        flat_path: "v1/providers/{providersId}/accounts/{accountsId}:reject",
        query: &[],
        request: Some(("RejectAccountRequest", &["approvalName", "reason"])),
        response: "Empty",
    },
    ProcurementMethod {
        id: "cloudcommerceprocurement.providers.accounts.reset",
        http_method: "POST",
        flat_path: "v1/providers/{providersId}/accounts/{accountsId}:reset",
        query: &[],
        request: Some(("ResetAccountRequest", &[])),
        response: "Empty",
    },
    ProcurementMethod {
        id: "cloudcommerceprocurement.providers.entitlements.get",
        http_method: "GET",
        flat_path: "v1/providers/{providersId}/entitlements/{entitlementsId}",
        query: &[],
        request: None,
        response: "Entitlement",
    },
    ProcurementMethod {
        id: "cloudcommerceprocurement.providers.entitlements.list",
        http_method: "GET",
        flat_path: "v1/providers/{providersId}/entitlements",
        query: &["filter", "pageSize", "pageToken"],
        request: None,
        response: "ListEntitlementsResponse",
    },
    ProcurementMethod {
        id: "cloudcommerceprocurement.providers.entitlements.patch",
        http_method: "PATCH",
        flat_path: "v1/providers/{providersId}/entitlements/{entitlementsId}",
        query: &["updateMask"],
        request: Some(("Entitlement", ENTITLEMENT_FIELDS)),
        response: "Entitlement",
    },
    ProcurementMethod {
        id: "cloudcommerceprocurement.providers.entitlements.approve",
        http_method: "POST",
        flat_path: "v1/providers/{providersId}/entitlements/{entitlementsId}:approve",
        query: &[],
        request: Some((
            "ApproveEntitlementRequest",
            &["entitlementMigrated", "properties"],
        )),
        response: "Empty",
    },
    ProcurementMethod {
        id: "cloudcommerceprocurement.providers.entitlements.reject",
        http_method: "POST",
        flat_path: "v1/providers/{providersId}/entitlements/{entitlementsId}:reject",
        query: &[],
        request: Some(("RejectEntitlementRequest", &["reason"])),
        response: "Empty",
    },
    ProcurementMethod {
        id: "cloudcommerceprocurement.providers.entitlements.approvePlanChange",
        http_method: "POST",
        flat_path: "v1/providers/{providersId}/entitlements/{entitlementsId}:approvePlanChange",
        query: &[],
        request: Some(("ApproveEntitlementPlanChangeRequest", &["pendingPlanName"])),
        response: "Empty",
    },
    ProcurementMethod {
        id: "cloudcommerceprocurement.providers.entitlements.rejectPlanChange",
        http_method: "POST",
        flat_path: "v1/providers/{providersId}/entitlements/{entitlementsId}:rejectPlanChange",
        query: &[],
        request: Some((
            "RejectEntitlementPlanChangeRequest",
            &["pendingPlanName", "reason"],
        )),
        response: "Empty",
    },
];

/// Query parameters every Google API method takes (the document's top-level
/// `parameters`).
const STANDARD_PARAMETERS: [&str; 11] = [
    "$.xgafv",
    "access_token",
    "alt",
    "callback",
    "fields",
    "key",
    "oauth_token",
    "prettyPrint",
    "quotaUser",
    "uploadType",
    "upload_protocol",
];

/// Fields whose value must be a JSON string, across the request schemas.
const STRING_FIELDS: [&str; 5] = [
    "approvalName",
    "reason",
    "pendingPlanName",
    "entitlementMigrated",
    "messageToUser",
];

/// Google's JSON error body.
pub(crate) fn google_error(code: StatusCode, status: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code.as_u16(), "message": message, "status": status } });
    let mut res = (code, axum::Json(body)).into_response();
    if code == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\""),
        );
    }
    res
}

fn invalid(message: &str) -> Response {
    google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
}

fn not_found() -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "Requested entity was not found.",
    )
}

fn refused(r: Refusal) -> Response {
    match r {
        Refusal::NotFound => not_found(),
        Refusal::Precondition(_) => google_error(
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            "Precondition check failed.",
        ),
        Refusal::Invalid(message) => invalid(&message),
    }
}

pub(crate) fn fault_reply(fault: Fault) -> Response {
    match fault {
        Fault::Unavailable => google_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "The service is currently unavailable.",
        ),
        Fault::RateLimited => google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of service 'cloudcommerceprocurement.googleapis.com'.",
        ),
        Fault::Internal => google_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "Internal error encountered.",
        ),
    }
}

const CREDENTIALS_HELP: &str = "Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

/// Matches `path` (without the leading `/`) against a flat path template:
/// the values of its `{...}` segments, in order.
pub(crate) fn match_template(template: &str, path: &str) -> Option<Vec<String>> {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut values = Vec::new();
    for (ts, ps) in t.iter().zip(&p) {
        if let Some(rest) = ts.strip_prefix('{') {
            let (_, verb) = rest.split_once('}')?;
            let value = if verb.is_empty() {
                // A plain variable never swallows a `:verb`.
                (!ps.contains(':')).then_some(*ps)?
            } else {
                ps.strip_suffix(verb)?
            };
            if value.is_empty() {
                return None;
            }
            values.push(value.to_owned());
        } else if ts != ps {
            return None;
        }
    }
    Some(values)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Every `/v1/...` request.
pub(crate) async fn handle(
    State(sim): State<GcpSim>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_start_matches('/').to_owned();
    let recorded_body = serde_json::from_slice::<Value>(&body).ok();
    let res = route(&sim, &method, &path, uri.query(), &headers, &body);
    // A token passed as a query parameter is a credential: never recorded.
    let query = uri.query().map(|q| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(url::form_urlencoded::parse(q.as_bytes()).map(|(k, v)| {
                let secret = k == "access_token" || k == "oauth_token";
                (k, if secret { "***".into() } else { v })
            }))
            .finish()
    });
    let mut s = sim.lock();
    s.seen.push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query,
        body: recorded_body,
        status: res.status().as_u16(),
    });
    drop(s);
    res
}

fn route(
    sim: &GcpSim,
    method: &HttpMethod,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let found = PROCUREMENT_METHODS.iter().find_map(|m| {
        (m.http_method == method.as_str())
            .then(|| match_template(m.flat_path, path))
            .flatten()
            .map(|vars| (m, vars))
    });
    let Some((m, vars)) = found else {
        return google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Method not found: {method} /{path}"),
        );
    };
    let vars: Vec<String> = vars.iter().map(|v| percent_decode(v)).collect();
    let params: Vec<(String, String)> = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();

    let mut s = sim.lock();
    if let Some(fault) = s.faults.pop_front() {
        return fault_reply(fault);
    }
    if let Err(res) = authenticate(&s, headers, &params) {
        return *res;
    }
    for (k, _) in &params {
        if !m.query.contains(&k.as_str()) && !STANDARD_PARAMETERS.contains(&k.as_str()) {
            return invalid(&format!(
                "Invalid JSON payload received. Unknown name \"{k}\": Cannot bind query parameter. Field '{k}' could not be found in request message."
            ));
        }
    }
    let params: HashMap<String, String> = params.into_iter().collect();
    let request = match m.request {
        None => Map::new(),
        Some((_, fields)) => match parse_body(body, fields) {
            Ok(map) => map,
            Err(res) => return *res,
        },
    };
    if vars[0] != s.listing.provider_id {
        return google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "The caller does not have permission",
        );
    }
    let now = Utc::now();
    let listing = s.listing.clone();
    let id = vars.get(1).cloned().unwrap_or_default();
    let text = |k: &str| request.get(k).and_then(Value::as_str);
    let short = m.id.strip_prefix(P).unwrap_or(m.id);
    let changed = match short {
        "accounts.get" => {
            if let Some(view) = params.get("view")
                && ![
                    "ACCOUNT_VIEW_UNSPECIFIED",
                    "ACCOUNT_VIEW_BASIC",
                    "ACCOUNT_VIEW_FULL",
                ]
                .contains(&view.as_str())
            {
                return invalid(&format!(
                    "Invalid value at 'view' (type.googleapis.com/google.cloud.commerce.procurement.v1.AccountView), \"{view}\""
                ));
            }
            return match s.records.account(&id) {
                Some(a) => ok(account_json(&listing, a)),
                None => not_found(),
            };
        }
        "accounts.list" => {
            let all: Vec<Value> = s
                .records
                .accounts
                .iter()
                .map(|a| account_json(&listing, a))
                .collect();
            return page(all, &params, limits(&s, 25, 200), "accounts");
        }
        "entitlements.get" => {
            return match s.records.entitlement(&id) {
                Some(e) => ok(entitlement_json(&listing, e)),
                None => not_found(),
            };
        }
        "entitlements.list" => {
            let filter = match Filter::parse(params.get("filter").map_or("", String::as_str)) {
                Ok(f) => f,
                Err(e) => return invalid(&format!("Invalid filter: {e}")),
            };
            let all: Vec<Value> = s
                .records
                .entitlements
                .iter()
                .filter(|e| filter.matches(&listing, e))
                .map(|e| entitlement_json(&listing, e))
                .collect();
            return page(all, &params, limits(&s, 200, 1000), "entitlements");
        }
        "entitlements.patch" => {
            let mask: Vec<String> = params
                .get("updateMask")
                .map(|m| {
                    m.split(',')
                        .map(|p| p.trim().to_owned())
                        .filter(|p| !p.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            return match s.records.patch_entitlement(&id, &mask, &request, now) {
                Ok(()) => match s.records.entitlement(&id) {
                    Some(e) => ok(entitlement_json(&listing, e)),
                    None => not_found(),
                },
                Err(r) => refused(r),
            };
        }
        "accounts.approve" => {
            s.records
                .approve_account(&id, text("approvalName"), text("reason"), now)
        }
        "accounts.reject" => {
            s.records
                .reject_account(&id, text("approvalName"), text("reason"), now)
        }
        "accounts.reset" => s.records.reset_account(&id, now),
        "entitlements.approve" => s.records.approve_entitlement(&listing, &id, now),
        "entitlements.reject" => s.records.reject_entitlement(&listing, &id, now),
        "entitlements.approvePlanChange" => {
            s.records
                .approve_plan_change(&listing, &id, text("pendingPlanName"), now)
        }
        "entitlements.rejectPlanChange" => {
            s.records
                .reject_plan_change(&listing, &id, text("pendingPlanName"), now)
        }
        _ => return not_found(),
    };
    match changed {
        Ok(notifications) => {
            let queued = !notifications.is_empty();
            s.enqueue(notifications, now);
            drop(s);
            if queued {
                sim.wake();
            }
            ok(json!({}))
        }
        Err(r) => refused(r),
    }
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

type Refused = Box<Response>;

fn authenticate(
    s: &SimState,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<(), Refused> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let token = match from_header {
        Some(h) => match h.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
            _ => Some(""),
        },
        None => params
            .iter()
            .find(|(k, _)| k == "access_token" || k == "oauth_token")
            .map(|(_, v)| v.as_str()),
    };
    let Some(token) = token else {
        return Err(Box::new(google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            &format!("Request is missing required authentication credential. {CREDENTIALS_HELP}"),
        )));
    };
    match s.access_tokens.get(token) {
        Some(expires) if *expires > Utc::now() => Ok(()),
        _ => Err(Box::new(google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            &format!("Request had invalid authentication credentials. {CREDENTIALS_HELP}"),
        ))),
    }
}

/// The JSON object of a request body: empty means `{}`; a field the request
/// schema lacks is refused the way Google's JSON parser refuses it.
fn parse_body(body: &[u8], fields: &[&str]) -> Result<Map<String, Value>, Refused> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Err(Box::new(invalid(
            "Invalid JSON payload received. Expected an object.",
        )));
    };
    for (k, v) in &map {
        if !fields.contains(&k.as_str()) {
            return Err(Box::new(invalid(&format!(
                "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
            ))));
        }
        if STRING_FIELDS.contains(&k.as_str()) && !(v.is_string() || v.is_null()) {
            return Err(Box::new(invalid(&format!(
                "Invalid value at '{k}' (TYPE_STRING), {v}"
            ))));
        }
        if k == "properties"
            && !v
                .as_object()
                .is_some_and(|p| p.values().all(Value::is_string))
        {
            return Err(Box::new(invalid(
                "Invalid value at 'properties' (map<string, string>)",
            )));
        }
    }
    Ok(map)
}

/// A list method's default page size and cap: Google's (per the discovery
/// document: `accounts.list` 25 and at most 200, `entitlements.list` 200;
/// its cap is undocumented, 1000 here), lowered by
/// [`GcpSim::set_max_page_size`].
fn limits(s: &SimState, default: usize, max: usize) -> (usize, usize) {
    match s.max_page_size {
        Some(cap) => (default.min(cap), max.min(cap)),
        None => (default, max),
    }
}

/// One page of a list: `pageSize` (default `limits.0`, capped at
/// `limits.1`) and an opaque `pageToken`; `nextPageToken` only when more
/// remain, and the list field left out when empty (as proto3 JSON does).
fn page(
    all: Vec<Value>,
    params: &HashMap<String, String>,
    (default, max): (usize, usize),
    field: &str,
) -> Response {
    let size = match params.get("pageSize").map(|v| v.parse::<i64>()) {
        None => default,
        Some(Ok(0)) => default,
        Some(Ok(n)) if n > 0 => usize::try_from(n).unwrap_or(max).min(max),
        _ => return invalid("Invalid value at 'page_size' (TYPE_INT32)"),
    };
    let start = match params.get("pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => match decode_page_token(token) {
            Some(n) if n <= all.len() => n,
            _ => return invalid("Invalid page token."),
        },
    };
    let end = (start + size).min(all.len());
    let mut body = Map::new();
    if end > start {
        body.insert(field.into(), Value::Array(all[start..end].to_vec()));
    }
    if end < all.len() {
        body.insert(
            "nextPageToken".into(),
            json!(URL_SAFE_NO_PAD.encode(format!("offset:{end}"))),
        );
    }
    ok(Value::Object(body))
}

fn decode_page_token(token: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_names_and_verbs() {
        let t = "v1/providers/{providersId}/accounts/{accountsId}:approve";
        assert_eq!(
            match_template(t, "v1/providers/p/accounts/a:approve"),
            Some(vec!["p".to_owned(), "a".to_owned()])
        );
        assert_eq!(match_template(t, "v1/providers/p/accounts/a"), None);
        assert_eq!(match_template(t, "v1/providers/p/accounts/:approve"), None);
        let get = "v1/providers/{providersId}/accounts/{accountsId}";
        assert_eq!(
            match_template(get, "v1/providers/p/accounts/a:approve"),
            None
        );
        assert_eq!(
            match_template(get, "v1/providers/p/accounts/a"),
            Some(vec!["p".to_owned(), "a".to_owned()])
        );
    }
}
