//! Signed deliveries for the property, fault, robustness and load tests:
//! GitHub `marketplace_purchase` and Q2 bodies built from a few parameters,
//! requests signed the way the marketplaces sign them, one way to send a
//! request to a function and read the answer, and the size knobs.

use chrono::{DateTime, SecondsFormat, Utc};
use http::StatusCode;
use serde_json::{Value, json};
use tollgate::web::{Body, Function, Request, serve};

/// The catalog the GitHub tests sell through: plan 435 and 686 per unit,
/// 433 free.
pub const GITHUB_CONFIG: &str = r#"
[products.acme-ci]
[products.acme-ci.tiers.free]
features = ["public-repos"]
[products.acme-ci.tiers.team]
features = ["public-repos", "private-repos"]
[products.acme-ci.tiers.business]
features = ["public-repos", "private-repos", "sso"]
[products.acme-ci.plans.github]
"433" = "free"
"435" = "team"
"686" = "business"
[marketplaces.github]
product = "acme-ci"
"#;

/// The number of cases of a property test: `TOLLGATE_PROPTEST_CASES`, else
/// `PROPTEST_CASES`, else `default`. One knob for every property test; each
/// test picks its own default (fewer on moto than on SQLite).
pub fn proptest_cases(default: u32) -> u32 {
    knob(&["TOLLGATE_PROPTEST_CASES", "PROPTEST_CASES"]).unwrap_or(default)
}

/// A numeric setting from the first of `names` that is set and parses.
pub fn knob(names: &[&str]) -> Option<u32> {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok()?.trim().parse().ok())
}

/// A GitHub plan as the payload names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GithubPlan {
    pub id: u64,
    pub price_model: &'static str,
}

impl GithubPlan {
    pub const FREE: GithubPlan = GithubPlan {
        id: 433,
        price_model: "FREE",
    };
    pub const TEAM: GithubPlan = GithubPlan {
        id: 435,
        price_model: "PER_UNIT",
    };
    pub const BUSINESS: GithubPlan = GithubPlan {
        id: 686,
        price_model: "PER_UNIT",
    };
    pub const ALL: [GithubPlan; 3] = [Self::FREE, Self::TEAM, Self::BUSINESS];

    pub fn per_unit(self) -> bool {
        self.price_model == "PER_UNIT"
    }
}

/// A `marketplace_purchase` body: `action` on `account` for `plan` with
/// `units`, effective at `effective`, no trial.
pub fn github_body(
    action: &str,
    account: u64,
    plan: GithubPlan,
    units: u32,
    effective: DateTime<Utc>,
) -> Value {
    json!({
        "action": action,
        "effective_date": effective.to_rfc3339_opts(SecondsFormat::Secs, false),
        "sender": {"login": "octocat", "id": 583231, "type": "User"},
        "marketplace_purchase": {
            "account": {"type": "Organization", "id": account, "login": format!("org-{account}"),
                        "organization_billing_email": "billing@org.example"},
            "billing_cycle": "monthly",
            "unit_count": units,
            "on_free_trial": false,
            "free_trial_ends_on": null,
            "next_billing_date": null,
            "plan": {"id": plan.id, "name": format!("Plan {}", plan.id),
                     "price_model": plan.price_model, "unit_name": "seat"}
        }
    })
}

/// `POST /github` as GitHub sends it, signed with `secret`.
pub fn github_request(secret: &str, event: &str, delivery: &str, body: &[u8]) -> Request {
    use tollgate::marketplace::github::signature::sign;
    http::Request::builder()
        .method("POST")
        .uri("/github")
        .header("user-agent", "GitHub-Hookshot/044aadd")
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sign(secret.as_bytes(), body))
        .body(Body::Binary(body.to_vec()))
        .unwrap_or_else(|e| panic!("request: {e}"))
}

/// `POST /q2` as the relay sends it, signed with `secret` at `t` (Unix seconds).
pub fn q2_request(secret: &str, t: i64, body: &[u8]) -> Request {
    use tollgate::marketplace::q2::signature::sign;
    http::Request::builder()
        .method("POST")
        .uri("/q2")
        .header("content-type", "application/json")
        .header("tollgate-signature", sign(secret.as_bytes(), t, body))
        .body(Body::Binary(body.to_vec()))
        .unwrap_or_else(|e| panic!("request: {e}"))
}

/// A Q2 envelope event (snake_case keys) for `product` at `institution`.
pub fn q2_body(
    kind: &str,
    subscription: &str,
    institution: &str,
    user: &str,
    product: &str,
    edition: Option<&str>,
) -> Value {
    let event_type = format!("SUBSCRIPTION_{}", kind.to_ascii_uppercase());
    let mut payload = json!({});
    if kind != "order" {
        payload["account"] = json!({"accountIdentifier": subscription});
    }
    if let Some(edition) = edition {
        payload["order"] = json!({
            "editionCode": edition,
            "pricingDuration": "MONTHLY",
            "items": [{"unit": "USER", "quantity": "1"}]
        });
    }
    json!({
        "event_type": event_type,
        "subscription_id": subscription,
        "user_id": user,
        "fi_name": institution,
        "product_identifier": product,
        "event": {"type": event_type, "payload": payload}
    })
}

/// `POST /v1/check` with a JSON body.
pub fn check_request(body: &Value) -> Request {
    http::Request::builder()
        .method("POST")
        .uri("/v1/check")
        .header("content-type", "application/json")
        .body(Body::Binary(body.to_string().into_bytes()))
        .unwrap_or_else(|e| panic!("request: {e}"))
}

/// An answer: status and JSON body (`Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub json: Value,
}

impl Answer {
    /// `{"error":{"code"}}` of an error answer, `""` otherwise.
    pub fn error_code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or_default()
    }
}

/// Sends `req` to `function` the way the Lambda runtime would.
pub async fn send(function: &dyn Function, req: Request) -> Answer {
    let res = serve(function, req).await;
    let status = res.status();
    let json = serde_json::from_slice(res.body().as_ref()).unwrap_or(Value::Null);
    Answer { status, json }
}
