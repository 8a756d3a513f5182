//! The GitHub stand-ins answer like GitHub: every reply is checked against
//! the schemas and examples of GitHub's OpenAPI description
//! (`fixtures/github/openapi-subset.json`, copied from
//! `@octokit/openapi@23.0.2`), and the OAuth endpoints against GitHub's
//! documented behaviour (errors as HTTP 200 with an `error` field).

use chrono::{DateTime, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use tollgate_sim::github::{
    Authorize, GithubSim, Org, PendingChange, Plan, PriceModel, Purchase, RateLimit, Running, User,
};

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/github/openapi-subset.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("tollgate-sim-tests")
        .build()
        .unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Checks `value` against an OpenAPI schema: types, `nullable`, `required`,
/// `enum`, nested objects and arrays. Stricter than the schema on one point:
/// a key the schema does not list is an error, so the stand-in never invents
/// fields.
fn validate(
    schema: &Value,
    value: &Value,
    schemas: &Map<String, Value>,
    at: &str,
    errors: &mut Vec<String>,
) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        let Some(target) = schemas.get(name) else {
            errors.push(format!("{at}: unresolved {r}"));
            return;
        };
        return validate(target, value, schemas, at, errors);
    }
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            errors.push(format!("{at}: null but not nullable"));
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !ok {
        errors.push(format!("{at}: expected {ty}, got {value}"));
        return;
    }
    if let (Some(allowed), Some(s)) = (schema.get("enum").and_then(Value::as_array), value.as_str())
        && !allowed.iter().any(|a| a == s)
    {
        errors.push(format!("{at}: `{s}` not in {allowed:?}"));
    }
    if let Some(obj) = value.as_object() {
        let props = schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(k) = req.as_str()
                && !obj.contains_key(k)
            {
                errors.push(format!("{at}: missing required `{k}`"));
            }
        }
        for (k, v) in obj {
            match props.get(k) {
                Some(s) => validate(s, v, schemas, &format!("{at}.{k}"), errors),
                None => errors.push(format!("{at}: `{k}` is not in the schema")),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            validate(items, v, schemas, &format!("{at}[{i}]"), errors);
        }
    }
}

fn assert_schema(fx: &Value, schema: &str, value: &Value) {
    let schemas = fx["schemas"].as_object().unwrap();
    let mut errors = Vec::new();
    validate(&schemas[schema], value, schemas, schema, &mut errors);
    assert!(errors.is_empty(), "{schema}: {errors:#?}\n{value:#}");
}

/// Every key of GitHub's example has the same value in the stand-in's reply
/// (base URL swapped; `node_id` skipped: GitHub's example reuses a placeholder).
fn assert_matches_example(example: &Value, actual: &Value, api_url: &str, at: &str) {
    match (example, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                if k == "node_id" {
                    continue;
                }
                let av = a
                    .get(k)
                    .unwrap_or_else(|| panic!("{at}.{k} missing in {actual:#}"));
                assert_matches_example(ev, av, api_url, &format!("{at}.{k}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{at}: length");
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                assert_matches_example(ev, av, api_url, &format!("{at}[{i}]"));
            }
        }
        (Value::String(e), Value::String(a)) => {
            assert_eq!(*e, a.replace(api_url, "https://api.github.com"), "{at}");
        }
        _ => assert_eq!(example, actual, "{at}"),
    }
}

/// The data of GitHub's OpenAPI examples: org 4 `github` on a Pro trial with
/// a pending move to Startup; user 1 `octocat` is a member.
fn example_sim() -> GithubSim {
    let sim = GithubSim::generate().unwrap();
    let bullets_pro = ["Up to 25 private repositories", "11 concurrent builds"];
    sim.add_plan(
        Plan::new(1313, 3, "Pro", PriceModel::FlatRate)
            .with_description("A professional-grade CI solution")
            .with_prices(1099, 11870)
            .with_free_trial()
            .with_bullets(bullets_pro),
    );
    sim.add_plan(
        Plan::new(1111, 2, "Startup", PriceModel::FlatRate)
            .with_description("A professional-grade CI solution")
            .with_prices(699, 7870)
            .with_free_trial()
            .with_bullets(["Up to 10 private repositories", "3 concurrent builds"]),
    );
    sim.add_user(
        User::new(1, "octocat")
            .with_name("monalisa octocat")
            .with_email("octocat@github.com"),
    );
    sim.add_org(
        Org::new(4, "github")
            .with_billing_email("billing@github.com")
            .with_member(1),
    );
    sim.add_purchase(
        Purchase::new(4, 1313)
            .on_trial_until(t("2017-11-11T00:00:00Z"))
            .with_updated_at(t("2017-11-02T01:12:12Z"))
            .with_pending_change(PendingChange {
                id: 77,
                plan_id: 1111,
                unit_count: None,
                effective_date: t("2017-11-11T00:00:00Z"),
            }),
    );
    sim
}

/// Runs the OAuth web flow like a browser would and returns the user token.
async fn user_token(sim: &GithubSim, run: &Running) -> String {
    let app = sim.app();
    let res = http()
        .get(format!("{}/login/oauth/authorize", run.web_url))
        .query(&[
            ("client_id", app.client_id.as_str()),
            ("redirect_uri", "https://app.example/cb"),
            ("state", "s1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let reply: Value = http()
        .post(format!("{}/login/oauth/access_token", run.web_url))
        .header("accept", "application/json")
        .form(&[
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", "https://app.example/cb"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["access_token"].as_str().unwrap().to_owned()
}

fn app_jwt(sim: &GithubSim, iat_offset: i64, exp_offset: i64, iss: Value) -> String {
    let app = sim.app();
    let now = Utc::now().timestamp();
    let claims = json!({ "iat": now + iat_offset, "exp": now + exp_offset, "iss": iss });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(app.private_key_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap()
}

async fn get(url: String, bearer: &str) -> reqwest::Response {
    http()
        .get(url)
        .bearer_auth(bearer)
        .header("x-github-api-version", "2022-11-28")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn replies_follow_githubs_openapi_schemas_and_examples() {
    let fx = fixture();
    let sim = example_sim();
    let run = sim.start().await.unwrap();
    let token = user_token(&sim, &run).await;
    let jwt = app_jwt(&sim, -60, 540, json!(1));

    let user: Value = get(format!("{}/user", run.api_url), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_schema(&fx, "public-user", &user);
    assert_eq!(
        (user["id"].clone(), user["login"].clone()),
        (json!(1), json!("octocat"))
    );

    let purchases: Value = get(
        format!("{}/user/marketplace_purchases", run.api_url),
        &token,
    )
    .await
    .json()
    .await
    .unwrap();
    for p in purchases.as_array().unwrap() {
        assert_schema(&fx, "user-marketplace-purchase", p);
    }
    assert_matches_example(
        &fx["examples"]["user-marketplace-purchase-items"],
        &purchases,
        &run.api_url,
        "user",
    );

    let res = get(
        format!("{}/marketplace_listing/accounts/4", run.api_url),
        &jwt,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let account: Value = res.json().await.unwrap();
    assert_schema(&fx, "marketplace-purchase", &account);
    assert_matches_example(
        &fx["examples"]["marketplace-purchase"],
        &account,
        &run.api_url,
        "account",
    );

    let plans: Value = get(format!("{}/marketplace_listing/plans", run.api_url), &jwt)
        .await
        .json()
        .await
        .unwrap();
    let plans = plans.as_array().unwrap();
    assert_eq!(plans.len(), 2);
    for p in plans {
        assert_schema(&fx, "marketplace-listing-plan", p);
    }
    let pro: Vec<Value> = plans.iter().filter(|p| p["id"] == 1313).cloned().collect();
    assert_matches_example(
        &fx["examples"]["marketplace-listing-plan-items"],
        &Value::Array(pro),
        &run.api_url,
        "plans",
    );

    let accounts: Value = get(
        format!("{}/marketplace_listing/plans/1313/accounts", run.api_url),
        &jwt,
    )
    .await
    .json()
    .await
    .unwrap();
    for a in accounts.as_array().unwrap() {
        assert_schema(&fx, "marketplace-purchase", a);
    }
    assert_matches_example(
        &fx["examples"]["marketplace-purchase-items"],
        &accounts,
        &run.api_url,
        "accounts",
    );

    // Not purchased: 404 with a `basic-error` body, as GitHub's OpenAPI
    // description documents (the fixture's `basic-error` schema).
    let res = get(
        format!("{}/marketplace_listing/accounts/5", run.api_url),
        &jwt,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_schema(&fx, "basic-error", &res.json::<Value>().await.unwrap());
    assert_eq!(
        get(
            format!("{}/marketplace_listing/plans/9/accounts", run.api_url),
            &jwt
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        get(
            format!(
                "{}/marketplace_listing/plans/1313/accounts?sort=price",
                run.api_url
            ),
            &jwt
        )
        .await
        .status(),
        422
    );
}

#[tokio::test]
async fn the_fixture_keeps_the_operations_the_stand_in_serves() {
    let fx = fixture();
    let ops: Vec<(&str, &str)> = fx["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, op)| (p.as_str(), op["operationId"].as_str().unwrap()))
        .collect();
    for want in [
        ("/user", "users/get-authenticated"),
        (
            "/user/marketplace_purchases",
            "apps/list-subscriptions-for-authenticated-user",
        ),
        (
            "/marketplace_listing/accounts/{account_id}",
            "apps/get-subscription-plan-for-account",
        ),
        ("/marketplace_listing/plans", "apps/list-plans"),
        (
            "/marketplace_listing/plans/{plan_id}/accounts",
            "apps/list-accounts-for-plan",
        ),
    ] {
        assert!(ops.contains(&want), "{want:?}");
    }
    assert!(
        fx["source"]
            .as_str()
            .unwrap()
            .contains("@octokit/openapi@23.0.2")
    );
}

#[tokio::test]
async fn authorize_redirects_with_code_and_state_or_with_access_denied() {
    let sim = GithubSim::generate().unwrap();
    sim.add_callback_url("https://app.example/cb");
    sim.add_user(User::new(9, "mona"));
    let run = sim.start().await.unwrap();
    let client_id = sim.app().client_id;
    let authorize = |redirect: &'static str| {
        let url = format!("{}/login/oauth/authorize", run.web_url);
        let client_id = client_id.clone();
        async move {
            let res = http()
                .get(url)
                .query(&[
                    ("client_id", client_id.as_str()),
                    ("redirect_uri", redirect),
                    ("state", "xyz"),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FOUND);
            let loc = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
            let q: std::collections::HashMap<String, String> =
                loc.query_pairs().into_owned().collect();
            (
                format!(
                    "{}://{}{}",
                    loc.scheme(),
                    loc.host_str().unwrap(),
                    loc.path()
                ),
                q,
            )
        }
    };
    let (to, q) = authorize("https://app.example/cb").await;
    assert_eq!(to, "https://app.example/cb");
    assert_eq!(q["state"], "xyz");
    assert_eq!(q["code"].len(), 20, "GitHub codes are 20 hex characters");

    // An unregistered redirect_uri goes back to the registered callback with an error.
    let (to, q) = authorize("https://evil.example/cb").await;
    assert_eq!(to, "https://app.example/cb");
    assert_eq!(q["error"], "redirect_uri_mismatch");

    sim.set_authorize(Authorize::Deny);
    let (_, q) = authorize("https://app.example/cb").await;
    assert_eq!(q["error"], "access_denied");
    assert_eq!(
        q["error_description"],
        "The user has denied your application access."
    );
    assert_eq!(q["state"], "xyz");
    assert!(!q.contains_key("code"));

    let res = http()
        .get(format!(
            "{}/login/oauth/authorize?client_id=nope",
            run.web_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_errors_come_back_as_http_200_with_an_error_field() {
    let sim = GithubSim::generate().unwrap();
    sim.add_user(User::new(9, "mona"));
    let run = sim.start().await.unwrap();
    let app = sim.app();
    let code = || async {
        let res = http()
            .get(format!("{}/login/oauth/authorize", run.web_url))
            .query(&[
                ("client_id", app.client_id.as_str()),
                ("redirect_uri", "https://a.example/cb"),
            ])
            .send()
            .await
            .unwrap();
        let loc = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        loc.query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    };
    let exchange = |code: String, secret: String, redirect: &'static str, json: bool| {
        let url = format!("{}/login/oauth/access_token", run.web_url);
        let client_id = app.client_id.clone();
        async move {
            let req = http().post(url);
            let req = if json {
                req.header("accept", "application/json")
            } else {
                req
            };
            let res = req
                .form(&[
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "always 200, errors included");
            res.text().await.unwrap()
        }
    };
    let secret = app.client_secret.clone();
    let first = code().await;
    let ok: Value = serde_json::from_str(
        &exchange(first.clone(), secret.clone(), "https://a.example/cb", true).await,
    )
    .unwrap();
    assert!(ok["access_token"].as_str().unwrap().starts_with("ghu_"));
    assert_eq!(ok["token_type"], "bearer");
    assert_eq!(ok["expires_in"], 28800);

    // The same code twice: single use.
    let again: Value =
        serde_json::from_str(&exchange(first, secret.clone(), "https://a.example/cb", true).await)
            .unwrap();
    assert_eq!(
        again,
        json!({
            "error": "bad_verification_code",
            "error_description": "The code passed is incorrect or expired.",
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"
        })
    );
    let expired = code().await;
    sim.expire_codes();
    let reply: Value = serde_json::from_str(
        &exchange(expired, secret.clone(), "https://a.example/cb", true).await,
    )
    .unwrap();
    assert_eq!(reply["error"], "bad_verification_code");

    let reply: Value = serde_json::from_str(
        &exchange(code().await, "wrong".into(), "https://a.example/cb", true).await,
    )
    .unwrap();
    assert_eq!(reply["error"], "incorrect_client_credentials");
    let reply: Value = serde_json::from_str(
        &exchange(code().await, secret.clone(), "https://b.example/cb", true).await,
    )
    .unwrap();
    assert_eq!(reply["error"], "redirect_uri_mismatch");

    // Without `Accept: application/json` GitHub answers form-encoded.
    let form = exchange(code().await, secret, "https://a.example/cb", false).await;
    assert!(
        form.starts_with("access_token=ghu_") && form.contains("token_type=bearer"),
        "{form}"
    );
}

#[tokio::test]
async fn lists_are_paginated_with_a_link_header() {
    let sim = GithubSim::generate().unwrap();
    sim.add_user(User::new(1, "mona"));
    sim.add_plan(Plan::new(10, 1, "Team", PriceModel::PerUnit));
    for org in 100..103 {
        sim.add_org(Org::new(org, format!("org{org}")).with_member(1));
        sim.add_purchase(Purchase::new(org, 10).with_units(org - 95));
    }
    let run = sim.start().await.unwrap();
    let token = user_token(&sim, &run).await;
    let res = get(
        format!(
            "{}/user/marketplace_purchases?per_page=1&page=2",
            run.api_url
        ),
        &token,
    )
    .await;
    let link = res.headers()["link"].to_str().unwrap().to_owned();
    let base = format!("{}/user/marketplace_purchases", run.api_url);
    assert_eq!(
        link,
        format!(
            "<{base}?per_page=1&page=1>; rel=\"prev\", <{base}?per_page=1&page=3>; rel=\"next\", \
             <{base}?per_page=1&page=3>; rel=\"last\", <{base}?per_page=1&page=1>; rel=\"first\""
        )
    );
    let page: Value = res.json().await.unwrap();
    assert_eq!(page[0]["account"]["id"], 101);
    assert_eq!(page[0]["unit_count"], 6);

    // A cap below 100 makes GitHub-sized pages span several (for tests).
    sim.set_max_per_page(2);
    let res = get(
        format!("{}/user/marketplace_purchases?per_page=100", run.api_url),
        &token,
    )
    .await;
    assert!(
        res.headers()["link"]
            .to_str()
            .unwrap()
            .contains("per_page=2&page=2>; rel=\"next\"")
    );
    assert_eq!(
        res.json::<Value>().await.unwrap().as_array().unwrap().len(),
        2
    );

    let jwt = app_jwt(&sim, -60, 540, json!(1));
    let res = get(
        format!(
            "{}/marketplace_listing/plans/10/accounts?sort=created&direction=asc",
            run.api_url
        ),
        &jwt,
    )
    .await;
    assert!(
        res.headers()["link"]
            .to_str()
            .unwrap()
            .contains("?direction=asc&sort=created&per_page=2&page=2>")
    );
    let accounts: Value = res.json().await.unwrap();
    assert_eq!(
        (accounts[0]["id"].clone(), accounts[1]["id"].clone()),
        (json!(100), json!(101))
    );
}

#[tokio::test]
async fn marketplace_listing_endpoints_take_only_app_credentials() {
    let sim = example_sim();
    let run = sim.start().await.unwrap();
    let app = sim.app();
    let url = format!("{}/marketplace_listing/accounts/4", run.api_url);
    let message = |res: reqwest::Response| async move {
        let status = res.status();
        (
            status,
            res.json::<Value>().await.unwrap()["message"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        )
    };
    let anonymous = http().get(&url).send().await.unwrap();
    assert_eq!(
        message(anonymous).await,
        (StatusCode::UNAUTHORIZED, "Requires authentication".into())
    );
    let token = user_token(&sim, &run).await;
    assert_eq!(
        get(url.clone(), &token).await.status(),
        401,
        "a user token is not the app"
    );
    assert_eq!(
        get(url.clone(), &app_jwt(&sim, -60, 540, json!(app.client_id)))
            .await
            .status(),
        200
    );
    assert_eq!(
        get(url.clone(), &app_jwt(&sim, -60, 540, json!("1")))
            .await
            .status(),
        200
    );
    assert_eq!(
        get(url.clone(), &app_jwt(&sim, -60, 540, json!(2)))
            .await
            .status(),
        401,
        "wrong iss"
    );
    let (status, msg) = message(get(url.clone(), &app_jwt(&sim, -60, 1200, json!(1))).await).await;
    assert_eq!(
        (status, msg.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            "'Expiration time' claim ('exp') is too far in the future"
        )
    );
    assert_eq!(
        get(url.clone(), &app_jwt(&sim, -700, -60, json!(1)))
            .await
            .status(),
        401,
        "expired"
    );
    let other = GithubSim::generate().unwrap();
    assert_eq!(
        get(url.clone(), &app_jwt(&other, -60, 540, json!(1)))
            .await
            .status(),
        401,
        "another key"
    );
    // OAuth Apps use Basic client_id:client_secret.
    let basic = http()
        .get(&url)
        .basic_auth(&app.client_id, Some(&app.client_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let wrong = http()
        .get(&url)
        .basic_auth(&app.client_id, Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn rate_limits_and_missing_user_agents_are_answered_as_github_does() {
    let sim = example_sim();
    let run = sim.start().await.unwrap();
    let token = user_token(&sim, &run).await;
    let reset = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    sim.rate_limit_next(1, RateLimit::Primary { reset_at: reset });
    sim.rate_limit_next(
        1,
        RateLimit::Secondary {
            retry_after_secs: 30,
        },
    );
    let res = get(format!("{}/user", run.api_url), &token).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(
        res.headers()["x-ratelimit-reset"],
        reset.timestamp().to_string().as_str()
    );
    let res = get(format!("{}/user", run.api_url), &token).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "30");
    let res = get(format!("{}/user", run.api_url), &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["x-ratelimit-remaining"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            < 5000
    );

    let bare = reqwest::Client::new()
        .get(format!("{}/user", run.api_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::FORBIDDEN, "no User-Agent");
    let res = http()
        .get(format!("{}/user", run.api_url))
        .bearer_auth(&token)
        .header("x-github-api-version", "1999-01-01")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        sim.seen()
            .iter()
            .all(|s| !s.query.clone().unwrap_or_default().contains(&token))
    );
}

#[tokio::test]
async fn a_user_who_leaves_an_organization_stops_seeing_its_purchase() {
    let sim = example_sim();
    sim.add_org(Org::new(5, "octo-labs"));
    sim.add_purchase(Purchase::new(5, 1111));
    let run = sim.start().await.unwrap();
    let token = user_token(&sim, &run).await;
    let accounts = || async {
        let list: Value = get(
            format!("{}/user/marketplace_purchases", run.api_url),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|p| p["account"]["id"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(accounts().await, [4], "not a member of octo-labs yet");
    assert!(sim.add_member(5, 1));
    assert!(sim.add_member(5, 1), "joining twice is joining once");
    assert_eq!(accounts().await, [4, 5]);
    assert!(sim.remove_member(4, 1));
    assert!(!sim.remove_member(4, 1), "already gone");
    assert!(!sim.remove_member(99, 1), "no such organization");
    assert!(!sim.add_member(99, 1), "no such organization");
    assert_eq!(accounts().await, [5]);
}
