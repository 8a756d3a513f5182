//! `tollgate dev`: the four functions on local ports, same handler code as in
//! Lambda, on the embedded store. Each function gets its own port so it sees
//! the same paths it sees behind its function URL.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body as AxumBody, to_bytes};
use axum::extract::{Request as AxumRequest, State};
use axum::response::{IntoResponse, Response as AxumResponse};
use tokio::net::TcpListener;
use tollgate::functions::FromDeps;
use tollgate::functions::entitlement_check::EntitlementCheck;
use tollgate::functions::oauth_callback::OauthCallback;
use tollgate::functions::pubsub_push::PubsubPush;
use tollgate::functions::purchase_webhook::PurchaseWebhook;
use tollgate::http::{Body, Function, MAX_BODY_BYTES, serve};
use tollgate::setup::Deps;

/// A function listening on a local address.
pub struct Running {
    pub name: &'static str,
    pub addr: SocketAddr,
}

/// Binds every function (port 0 = any free port) and serves them until the
/// process ends. Returns the bound addresses once all are listening.
pub async fn start(deps: Deps, host: &str, first_port: u16) -> Result<Vec<Running>, String> {
    let mut running = Vec::new();
    let port = |i: u16| if first_port == 0 { 0 } else { first_port + i };
    running.push(mount::<PurchaseWebhook>(&deps, host, port(0)).await?);
    running.push(mount::<PubsubPush>(&deps, host, port(1)).await?);
    running.push(mount::<OauthCallback>(&deps, host, port(2)).await?);
    running.push(mount::<EntitlementCheck>(&deps, host, port(3)).await?);
    Ok(running)
}

async fn mount<F: FromDeps>(deps: &Deps, host: &str, port: u16) -> Result<Running, String> {
    let function = F::from_deps(deps.clone())
        .await
        .map_err(|e| format!("{}: {e}", F::NAME))?;
    let listener = TcpListener::bind((host, port))
        .await
        .map_err(|e| format!("{}: bind {host}:{port}: {e}", F::NAME))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let shared: Arc<dyn Function> = Arc::new(function);
    let app = axum::Router::new().fallback(forward).with_state(shared);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(function = F::NAME, error = %e, "dev server stopped");
        }
    });
    Ok(Running {
        name: F::NAME,
        addr,
    })
}

/// Translates an HTTP request into what `lambda_http` would hand the
/// function, and the reply back.
async fn forward(State(function): State<Arc<dyn Function>>, req: AxumRequest) -> AxumResponse {
    let (parts, body) = req.into_parts();
    // Read one byte past the limit so the function itself answers 413.
    let bytes = match to_bytes(body, MAX_BODY_BYTES + 1).await {
        Ok(b) => b,
        Err(_) => {
            return (http::StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
        }
    };
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes.to_vec())
    };
    let res = serve(&*function, http::Request::from_parts(parts, body)).await;
    let (parts, body) = res.into_parts();
    let bytes: Vec<u8> = match body {
        Body::Empty => Vec::new(),
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    AxumResponse::from_parts(parts, AxumBody::from(bytes))
}
