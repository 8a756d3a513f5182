//! Runs the example app.
//!
//! ```sh
//! make dev    # in another terminal: entitlement-check on http://127.0.0.1:9104
//! TOLLGATE_URL=http://127.0.0.1:9104 cargo run -p tollgate-example-axum-app
//! curl -H 'x-org: github:4242' -H 'x-user: alice' http://127.0.0.1:3000/builds
//! ```
//!
//! `TOLLGATE_API_KEY` (optional) is sent as a bearer key; `APP_ADDR` is the
//! listen address (default `127.0.0.1:3000`).

use std::process::ExitCode;

use tollgate_client::EntitlementClient;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum-app: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let tollgate =
        std::env::var("TOLLGATE_URL").unwrap_or_else(|_| "http://127.0.0.1:9104".to_owned());
    let key = std::env::var("TOLLGATE_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let addr = std::env::var("APP_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let client = EntitlementClient::new(&tollgate, key.as_deref()).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("bind {addr}: {e}"))?;
    println!("Acme CI example on http://{addr}/ asking {tollgate}");
    axum::serve(listener, tollgate_example_axum_app::app(client))
        .await
        .map_err(|e| e.to_string())
}
