//! api.github.com: the user and Marketplace endpoints Tollgate calls.
//!
//! Shapes follow GitHub's OpenAPI description as published in
//! `@octokit/openapi@23.0.2` (<https://github.com/octokit/openapi>):
//! `public-user`, `user-marketplace-purchase`, `marketplace-account`,
//! `marketplace-purchase`, `marketplace-listing-plan`, `basic-error`. The
//! tests validate every reply against those schemas
//! (`fixtures/github/openapi-subset.json`).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use super::state::{AuthKind, Org, Plan, Purchase, RateLimit, Seen, State as SimState, User};
use super::{GithubSim, iso};

pub(super) fn router(sim: GithubSim) -> Router {
    Router::new()
        .route("/user", get(user))
        .route(
            "/user/marketplace_purchases",
            get(user_marketplace_purchases),
        )
        .route(
            "/marketplace_listing/accounts/{account_id}",
            get(listing_account),
        )
        .route("/marketplace_listing/plans", get(listing_plans))
        .route(
            "/marketplace_listing/plans/{plan_id}/accounts",
            get(plan_accounts),
        )
        .fallback(not_found)
        .with_state(sim)
}

/// API versions this stand-in answers, as sent in `X-GitHub-Api-Version`.
const API_VERSIONS: [&str; 1] = ["2022-11-28"];
const RATE_LIMIT: u64 = 5000;
const DOCS_REST: &str = "https://docs.github.com/rest";

/// Who is calling, as the `Authorization` header says.
enum Caller {
    Anonymous,
    User(u64),
    App,
    /// A credential that isn't valid; the message is GitHub's.
    Rejected(&'static str),
}

/// A request turned away before its handler runs (boxed: a `Response` is
/// large next to what the `Ok` side carries).
type Refused = Box<Response>;

fn refuse(status: StatusCode, message: &str, docs: &str) -> Refused {
    Box::new(error(status, message, docs))
}

fn error(status: StatusCode, message: &str, docs: &str) -> Response {
    let body = json!({ "message": message, "documentation_url": docs, "status": status.as_str() });
    (status, axum::Json(body)).into_response()
}

async fn not_found(
    State(sim): State<GithubSim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match prelude(&sim, &method, &uri, &headers) {
        Err(reply) => *reply,
        Ok(_) => error(StatusCode::NOT_FOUND, "Not Found", DOCS_REST),
    }
}

/// What every API request goes through: recorded, `User-Agent` and
/// `X-GitHub-Api-Version` checked, scripted rate limits applied, the caller
/// identified.
fn prelude(
    sim: &GithubSim,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Caller, Refused> {
    let mut s = sim.lock();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = identify(&s, auth);
    let auth_kind = match auth {
        None => AuthKind::None,
        Some(a) if a.len() > 6 && a[..6].eq_ignore_ascii_case("basic ") => AuthKind::Basic,
        Some(a)
            if a.split_whitespace()
                .nth(1)
                .is_some_and(|t| t.matches('.').count() == 2) =>
        {
            AuthKind::Jwt
        }
        Some(_) => AuthKind::Token,
    };
    s.seen.push(Seen {
        host: "api.github.com",
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        auth: auth_kind,
    });
    // GitHub refuses requests without a User-Agent.
    if headers.get(header::USER_AGENT).is_none() {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            DOCS_REST,
        ));
    }
    if let Some(v) = headers.get("x-github-api-version") {
        let v = v.to_str().unwrap_or("");
        if !API_VERSIONS.contains(&v) {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                &format!("Unsupported 'X-GitHub-Api-Version' header: {v}"),
                "https://docs.github.com/rest/about-the-rest-api/api-versions",
            ));
        }
    }
    if let Some(limit) = s.rate_limits.pop_front() {
        return Err(Box::new(rate_limited(limit)));
    }
    if s.failing_paths.iter().any(|p| p == uri.path()) {
        return Err(refuse(StatusCode::BAD_GATEWAY, "Server Error", DOCS_REST));
    }
    s.api_used += 1;
    Ok(caller)
}

fn rate_limited(limit: RateLimit) -> Response {
    let docs = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";
    match limit {
        RateLimit::Primary { reset_at } => {
            let mut res = error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for user ID 1.",
                docs,
            );
            let h = res.headers_mut();
            h.insert("x-ratelimit-limit", HeaderValue::from(RATE_LIMIT));
            h.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
            h.insert("x-ratelimit-used", HeaderValue::from(RATE_LIMIT));
            h.insert(
                "x-ratelimit-reset",
                HeaderValue::from(reset_at.timestamp().max(0)),
            );
            h.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
            res
        }
        RateLimit::Secondary { retry_after_secs } => {
            let mut res = error(
                StatusCode::TOO_MANY_REQUESTS,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                docs,
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            res
        }
    }
}

fn identify(s: &SimState, auth: Option<&str>) -> Caller {
    let Some(auth) = auth else {
        return Caller::Anonymous;
    };
    let Some((scheme, credential)) = auth.trim().split_once(' ') else {
        return Caller::Rejected("Bad credentials");
    };
    let credential = credential.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        // OAuth Apps call the Marketplace endpoints with client_id:client_secret.
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credential)
            .unwrap_or_default();
        let expected = format!("{}:{}", s.app.client_id, s.app.client_secret);
        return if decoded == expected.as_bytes() {
            Caller::App
        } else {
            Caller::Rejected("Bad credentials")
        };
    }
    if !scheme.eq_ignore_ascii_case("token") && !scheme.eq_ignore_ascii_case("bearer") {
        return Caller::Rejected("Bad credentials");
    }
    if credential.matches('.').count() == 2 {
        return match verify_app_jwt(s, credential) {
            Ok(()) => Caller::App,
            Err(message) => Caller::Rejected(message),
        };
    }
    match s.tokens.get(credential) {
        Some(user) => Caller::User(*user),
        None => Caller::Rejected("Bad credentials"),
    }
}

/// Checks a GitHub App JWT the way GitHub documents it
/// (<https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app>):
/// RS256 by the app's key, `iss` = app id or client id, `iat` not in the
/// future, `exp` in the future but at most 10 minutes ahead.
fn verify_app_jwt(s: &SimState, token: &str) -> Result<(), &'static str> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    const UNDECODABLE: &str = "A JSON web token could not be decoded";
    #[derive(serde::Deserialize)]
    struct Claims {
        iat: i64,
        exp: i64,
        iss: Value,
    }
    let key = DecodingKey::from_rsa_der(s.app.public_key_der());
    let mut validation = Validation::new(Algorithm::RS256);
    // `iss` may be a number (the app id): checked below, not by the library.
    validation.set_required_spec_claims(&["exp"]);
    validation.leeway = 0;
    let claims = match decode::<Claims>(token, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
            return Err(
                "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
            );
        }
        Err(_) => return Err(UNDECODABLE),
    };
    let issuer_ok = match &claims.iss {
        Value::Number(n) => n.as_u64() == Some(s.app.app_id),
        Value::String(v) => *v == s.app.client_id || *v == s.app.app_id.to_string(),
        _ => false,
    };
    if !issuer_ok {
        return Err(UNDECODABLE);
    }
    let now = Utc::now().timestamp();
    if claims.exp - now > 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future");
    }
    if claims.iat > now + 60 {
        return Err(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        );
    }
    Ok(())
}

/// A 200 JSON reply with GitHub's usual headers (and `Link` when paginated).
fn ok(sim: &GithubSim, body: Value, link: Option<String>) -> Response {
    let used = sim.lock().api_used;
    let mut res = (StatusCode::OK, axum::Json(body)).into_response();
    let h = res.headers_mut();
    h.insert(
        "x-github-media-type",
        HeaderValue::from_static("github.v3; format=json"),
    );
    h.insert(
        "x-github-api-version-selected",
        HeaderValue::from_static(API_VERSIONS[0]),
    );
    h.insert("x-ratelimit-limit", HeaderValue::from(RATE_LIMIT));
    h.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(RATE_LIMIT.saturating_sub(used)),
    );
    h.insert("x-ratelimit-used", HeaderValue::from(used.min(RATE_LIMIT)));
    h.insert(
        "x-ratelimit-reset",
        HeaderValue::from((Utc::now() + Duration::hours(1)).timestamp().max(0)),
    );
    h.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
    if let Some(link) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::LINK, link);
    }
    res
}

fn requires_user(caller: Caller) -> Result<u64, Refused> {
    match caller {
        Caller::User(id) => Ok(id),
        Caller::Anonymous => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "Requires authentication",
            DOCS_REST,
        )),
        Caller::App | Caller::Rejected(_) => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "Bad credentials",
            DOCS_REST,
        )),
    }
}

fn requires_app(caller: Caller) -> Result<(), Refused> {
    match caller {
        Caller::App => Ok(()),
        Caller::Anonymous => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "Requires authentication",
            DOCS_REST,
        )),
        Caller::User(_) => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "Bad credentials",
            DOCS_REST,
        )),
        Caller::Rejected(message) => Err(refuse(StatusCode::UNAUTHORIZED, message, DOCS_REST)),
    }
}

/// One page of `items` and the `Link` header GitHub would send with it.
fn paginate<T>(
    items: Vec<T>,
    q: &HashMap<String, String>,
    max_per_page: usize,
    api_url: &str,
    path: &str,
) -> (Vec<T>, Option<String>) {
    let per_page = q
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, max_per_page);
    let page = q
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let link = (last > 1).then(|| {
        let mut others: Vec<(&String, &String)> = q
            .iter()
            .filter(|(k, _)| *k != "page" && *k != "per_page")
            .collect();
        others.sort();
        let url = |p: usize| {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &others {
                ser.append_pair(k, v);
            }
            ser.append_pair("per_page", &per_page.to_string())
                .append_pair("page", &p.to_string());
            format!("<{api_url}{path}?{}>", ser.finish())
        };
        let mut rels = Vec::new();
        if page > 1 {
            rels.push(format!("{}; rel=\"prev\"", url((page - 1).min(last))));
        }
        if page < last {
            rels.push(format!("{}; rel=\"next\"", url(page + 1)));
            rels.push(format!("{}; rel=\"last\"", url(last)));
        }
        if page > 1 {
            rels.push(format!("{}; rel=\"first\"", url(1)));
        }
        rels.join(", ")
    });
    let page_items = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    (page_items, link.filter(|l| !l.is_empty()))
}

fn node_id(prefix: &str, id: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{id}"))
}

fn user_json(u: &User, api: &str) -> Value {
    let web = "https://github.com";
    let login = &u.login;
    let base = format!("{api}/users/{login}");
    json!({
        "login": login,
        "id": u.id,
        "user_view_type": "public",
        "node_id": node_id("04:User", u.id),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", u.id),
        "gravatar_id": "",
        "url": base,
        "html_url": format!("{web}/{login}"),
        "followers_url": format!("{base}/followers"),
        "following_url": format!("{base}/following{{/other_user}}"),
        "gists_url": format!("{base}/gists{{/gist_id}}"),
        "starred_url": format!("{base}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{base}/subscriptions"),
        "organizations_url": format!("{base}/orgs"),
        "repos_url": format!("{base}/repos"),
        "events_url": format!("{base}/events{{/privacy}}"),
        "received_events_url": format!("{base}/received_events"),
        "type": "User",
        "site_admin": false,
        "name": u.name,
        "company": null,
        "blog": "",
        "location": null,
        "email": u.email,
        "hireable": null,
        "bio": null,
        "twitter_username": null,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": "2011-01-25T18:44:36Z",
        "updated_at": "2024-01-01T00:00:00Z",
    })
}

fn plan_json(p: &Plan, api: &str) -> Value {
    json!({
        "url": format!("{api}/marketplace_listing/plans/{}", p.id),
        "accounts_url": format!("{api}/marketplace_listing/plans/{}/accounts", p.id),
        "id": p.id,
        "number": p.number,
        "name": p.name,
        "description": p.description,
        "monthly_price_in_cents": p.monthly_price_in_cents,
        "yearly_price_in_cents": p.yearly_price_in_cents,
        "price_model": p.price_model.as_str(),
        "has_free_trial": p.has_free_trial,
        "unit_name": p.unit_name,
        "state": p.state,
        "bullets": p.bullets,
    })
}

/// The account behind a purchase: a user (personal account) or an org.
enum Account<'a> {
    User(&'a User),
    Org(&'a Org),
    Unknown(u64),
}

fn account<'a>(s: &'a SimState, id: u64) -> Account<'a> {
    if let Some(o) = s.orgs.get(&id) {
        Account::Org(o)
    } else if let Some(u) = s.users.get(&id) {
        Account::User(u)
    } else {
        Account::Unknown(id)
    }
}

impl Account<'_> {
    fn id(&self) -> u64 {
        match self {
            Account::User(u) => u.id,
            Account::Org(o) => o.id,
            Account::Unknown(id) => *id,
        }
    }

    fn login(&self) -> String {
        match self {
            Account::User(u) => u.login.clone(),
            Account::Org(o) => o.login.clone(),
            Account::Unknown(id) => format!("account-{id}"),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Account::Org(_) => "Organization",
            _ => "User",
        }
    }

    fn url(&self, api: &str) -> String {
        match self {
            Account::Org(o) => format!("{api}/orgs/{}", o.login),
            _ => format!("{api}/users/{}", self.login()),
        }
    }

    fn node_id(&self) -> String {
        match self {
            Account::Org(o) => node_id("012:Organization", o.id),
            _ => node_id("04:User", self.id()),
        }
    }

    fn public_email(&self) -> Option<String> {
        match self {
            Account::User(u) => u.email.clone(),
            _ => None,
        }
    }

    fn billing_email(&self) -> Option<String> {
        match self {
            Account::Org(o) => o.billing_email.clone(),
            _ => None,
        }
    }
}

fn plan_or_placeholder(s: &SimState, plan_id: u64, api: &str) -> Value {
    match s.plans.get(&plan_id) {
        Some(p) => plan_json(p, api),
        // A purchase of a plan the test never added: still a valid shape.
        None => plan_json(
            &Plan::new(
                plan_id,
                0,
                format!("Plan {plan_id}"),
                super::PriceModel::FlatRate,
            ),
            api,
        ),
    }
}

/// `user-marketplace-purchase`.
fn user_purchase_json(s: &SimState, p: &Purchase, api: &str) -> Value {
    let a = account(s, p.account_id);
    json!({
        "billing_cycle": p.billing_cycle,
        "next_billing_date": p.next_billing_date.map(iso),
        "unit_count": p.unit_count,
        "on_free_trial": p.on_free_trial,
        "free_trial_ends_on": p.free_trial_ends_on.map(iso),
        "updated_at": iso(p.updated_at),
        "account": {
            "login": a.login(),
            "id": a.id(),
            "node_id": a.node_id(),
            "url": a.url(api),
            "email": a.public_email(),
            "organization_billing_email": a.billing_email(),
            "type": a.kind(),
        },
        "plan": plan_or_placeholder(s, p.plan_id, api),
    })
}

/// `marketplace-purchase`: the account at the top level, its purchase and
/// any pending change nested.
fn account_purchase_json(s: &SimState, p: &Purchase, api: &str) -> Value {
    let a = account(s, p.account_id);
    let mut obj = json!({
        "url": a.url(api),
        "type": a.kind(),
        "id": a.id(),
        "login": a.login(),
        "email": a.public_email().or_else(|| a.billing_email()),
        "marketplace_pending_change": p.pending_change.as_ref().map(|c| json!({
            "effective_date": iso(c.effective_date),
            "unit_count": c.unit_count,
            "id": c.id,
            "plan": plan_or_placeholder(s, c.plan_id, api),
        })),
        "marketplace_purchase": {
            "billing_cycle": p.billing_cycle,
            "next_billing_date": p.next_billing_date.map(iso),
            "unit_count": p.unit_count,
            "on_free_trial": p.on_free_trial,
            "free_trial_ends_on": p.free_trial_ends_on.map(iso),
            "updated_at": iso(p.updated_at),
            "plan": plan_or_placeholder(s, p.plan_id, api),
        },
    });
    // The schema types it as a (non-null) string: absent for personal accounts.
    if let (Some(email), Some(map)) = (a.billing_email(), obj.as_object_mut()) {
        map.insert("organization_billing_email".to_owned(), Value::from(email));
    }
    obj
}

async fn user(
    State(sim): State<GithubSim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let user_id = match prelude(&sim, &method, &uri, &headers).and_then(requires_user) {
        Ok(id) => id,
        Err(reply) => return *reply,
    };
    let body = {
        let s = sim.lock();
        match s.users.get(&user_id) {
            Some(u) => user_json(u, &s.api_url),
            None => return error(StatusCode::UNAUTHORIZED, "Bad credentials", DOCS_REST),
        }
    };
    ok(&sim, body, None)
}

async fn user_marketplace_purchases(
    State(sim): State<GithubSim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user_id = match prelude(&sim, &method, &uri, &headers).and_then(requires_user) {
        Ok(id) => id,
        Err(reply) => return *reply,
    };
    let (body, link) = {
        let s = sim.lock();
        let all: Vec<Value> = s
            .purchases_visible_to(user_id)
            .into_iter()
            .map(|p| user_purchase_json(&s, p, &s.api_url))
            .collect();
        paginate(all, &q, s.max_per_page, &s.api_url, uri.path())
    };
    ok(&sim, Value::Array(body), link)
}

async fn listing_account(
    State(sim): State<GithubSim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(account_id): Path<String>,
) -> Response {
    if let Err(reply) = prelude(&sim, &method, &uri, &headers).and_then(requires_app) {
        return *reply;
    }
    let body = {
        let s = sim.lock();
        match account_id
            .parse::<u64>()
            .ok()
            .and_then(|id| s.purchases.get(&id))
        {
            Some(p) => account_purchase_json(&s, p, &s.api_url),
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    "Not Found",
                    "https://docs.github.com/rest/apps/marketplace#get-a-subscription-plan-for-an-account",
                );
            }
        }
    };
    ok(&sim, body, None)
}

async fn listing_plans(
    State(sim): State<GithubSim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(reply) = prelude(&sim, &method, &uri, &headers).and_then(requires_app) {
        return *reply;
    }
    let (body, link) = {
        let s = sim.lock();
        let all: Vec<Value> = s.plans.values().map(|p| plan_json(p, &s.api_url)).collect();
        paginate(all, &q, s.max_per_page, &s.api_url, uri.path())
    };
    ok(&sim, Value::Array(body), link)
}

async fn plan_accounts(
    State(sim): State<GithubSim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(plan_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(reply) = prelude(&sim, &method, &uri, &headers).and_then(requires_app) {
        return *reply;
    }
    let sort = q.get("sort").map(String::as_str);
    let direction = q.get("direction").map(String::as_str);
    if !matches!(sort, None | Some("created" | "updated"))
        || !matches!(direction, None | Some("asc" | "desc"))
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed",
            "https://docs.github.com/rest/apps/marketplace#list-accounts-for-a-plan",
        );
    }
    let (body, link) = {
        let s = sim.lock();
        let Some(plan_id) = plan_id
            .parse::<u64>()
            .ok()
            .filter(|id| s.plans.contains_key(id))
        else {
            return error(
                StatusCode::NOT_FOUND,
                "Not Found",
                "https://docs.github.com/rest/apps/marketplace#list-accounts-for-a-plan",
            );
        };
        let mut purchases: Vec<&Purchase> = s
            .purchases
            .values()
            .filter(|p| p.plan_id == plan_id)
            .collect();
        // Account ids grow with creation, so they order by `created`.
        match sort {
            Some("updated") => purchases.sort_by_key(|p| (p.updated_at, p.account_id)),
            _ => purchases.sort_by_key(|p| p.account_id),
        }
        // `direction` only applies with `sort`, and then defaults to `desc`.
        if sort.is_some() && direction != Some("asc") {
            purchases.reverse();
        }
        let all: Vec<Value> = purchases
            .into_iter()
            .map(|p| account_purchase_json(&s, p, &s.api_url))
            .collect();
        paginate(all, &q, s.max_per_page, &s.api_url, uri.path())
    };
    ok(&sim, Value::Array(body), link)
}
