//! "Acme CI", a toy SaaS app sold through the marketplaces, gated by
//! Tollgate with `tollgate-client`:
//!
//! | route | needs |
//! |---|---|
//! | `GET /` | nothing (public) |
//! | `GET /builds` | any tier of `acme-ci`; the user takes a seat on seat-counted tiers |
//! | `GET /audit-log` | the `audit-log` feature (business tier) |
//! | `POST /sign-out` | an entitlement; gives the user's seat back |
//!
//! Who is asking comes from the `x-org` (`<marketplace>:<customer id>`) and
//! `x-user` headers. They stand in for the session an app's own login sets;
//! a real app identifies from its authenticated session, never from headers
//! its end users control.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::{Router, http::HeaderMap};
use serde_json::{Value, json};
use tollgate_client::{Entitled, EntitlementClient, RequireEntitlement, Subject};

/// The product id in Tollgate's `tollgate.toml`.
pub const PRODUCT: &str = "acme-ci";
pub const ORG_HEADER: &str = "x-org";
pub const USER_HEADER: &str = "x-user";

/// The app, asking the entitlement-check that `client` points at.
pub fn app(client: EntitlementClient) -> Router {
    let require = |client: &EntitlementClient| {
        RequireEntitlement::new(
            client.clone(),
            PRODUCT,
            Subject::from_headers(ORG_HEADER, USER_HEADER),
        )
    };
    Router::new()
        .route("/", get(home))
        .route("/builds", get(builds).layer(require(&client).claim_seat()))
        .route(
            "/audit-log",
            get(audit_log).layer(require(&client).feature("audit-log")),
        )
        .route("/sign-out", post(sign_out).layer(require(&client)))
        .with_state(client)
}

async fn home() -> &'static str {
    "Acme CI. Try GET /builds with the x-org and x-user headers.\n"
}

async fn builds(Entitled(decision): Entitled) -> Json<Value> {
    Json(json!({
        "builds": ["#41 passed", "#42 running"],
        "tier": decision.tier,
        "trial_days_left": decision.trial_days_left,
        "seats": decision.seats,
    }))
}

async fn audit_log(Entitled(decision): Entitled) -> Json<Value> {
    Json(json!({
        "events": ["alice changed the pipeline"],
        "tier": decision.tier,
    }))
}

/// Signing out gives the seat back so a colleague can take it.
async fn sign_out(
    State(client): State<EntitlementClient>,
    Entitled(decision): Entitled,
    headers: HeaderMap,
) -> Response {
    let user = headers.get(USER_HEADER).and_then(|v| v.to_str().ok());
    let (Some(subscription), Some(user)) = (decision.subscription.as_ref(), user) else {
        return (StatusCode::OK, Json(json!({"released": false}))).into_response();
    };
    match client.release_seat(subscription, user).await {
        Ok(released) => Json(json!({"released": released})).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": {"code": "seat_release_failed", "message": e.to_string()}})),
        )
            .into_response(),
    }
}
