//! `tollgate dev` (what `make dev` runs): the four functions on local ports,
//! same handler code as in Lambda, on the embedded store. Each function gets
//! its own port so it sees the same paths it sees behind its function URL.
//!
//! Unless `--no-sim`, the GitHub stand-ins (`tollgate sim`) start first, in
//! the same process, on `--port`+100 and +101; the functions are pointed at
//! them through their [`Settings`] (never the process environment), and the
//! stand-in app's credentials and a webhook secret go into the secrets file,
//! so sign-in, webhooks (`tollgate fire`) and entitlement checks all work
//! offline with nothing configured.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
use tollgate::marketplace::github::oauth::{CALLBACK_PATH, SETUP_PATH};
use tollgate::model::Marketplace;
use tollgate::setup::{Deps, Settings};
use tollgate::web::{Body, Function, MAX_BODY_BYTES, serve};

use crate::args::Listen;
use crate::fire;
use crate::sim::{self, StandIns, Written};

/// purchase-webhook's port; the other three functions take the next three.
pub const DEFAULT_PORT: u16 = 9101;

/// The GitHub stand-ins listen this far above `--port` (9201/9202 by
/// default), clear of the four functions' ports.
pub const SIM_PORT_OFFSET: u16 = 100;

// `tollgate dev`: the functions listen on `--port`..`--port`+3.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Reads TOLLGATE_CONFIG, TOLLGATE_STORE and TOLLGATE_SECRETS \
(which must name a file:<path> unless --no-sim).\nThe GitHub stand-ins listen on \
--port +100 and +101."
)]
pub struct Args {
    #[command(flatten)]
    pub listen: Listen<DEFAULT_PORT>,
    /// Do not start the GitHub stand-ins (keep the real GitHub URLs and app credentials)
    #[arg(long)]
    pub no_sim: bool,
}

pub async fn run(args: Args) -> Result<(), String> {
    let Listen { host, port } = args.listen;
    if port != 0 && port.checked_add(SIM_PORT_OFFSET + 1).is_none() {
        return Err(format!(
            "--port {port} leaves no room for the GitHub stand-ins at +{SIM_PORT_OFFSET}"
        ));
    }
    let with_sim = !args.no_sim;

    let mut settings = Settings::from_env();
    let secrets_file = settings.secrets.strip_prefix("file:").map(PathBuf::from);
    let stand_ins = if with_sim {
        if secrets_file.is_none() {
            return Err(format!(
                "TOLLGATE_SECRETS is `{}`: the GitHub stand-ins hand their app credentials over through a secrets file; set TOLLGATE_SECRETS=file:<path> (make dev does) or pass --no-sim",
                settings.secrets
            ));
        }
        let sim_port = if port == 0 { 0 } else { port + SIM_PORT_OFFSET };
        let stand_ins = sim::start(host, sim_port, None).await?;
        settings.github_url = stand_ins.running.web_url.clone();
        settings.github_api_url = stand_ins.running.api_url.clone();
        // With fixed ports the redirect URI is known before anything runs;
        // with port 0 it is taken from the request's Host header instead.
        if port != 0 && settings.public_url.is_none() {
            settings.public_url = Some(format!("http://{}", SocketAddr::new(host, port + 2)));
        }
        Some(stand_ins)
    } else {
        None
    };
    let written = match &secrets_file {
        Some(path) => {
            let app = stand_ins.as_ref().map(|s| s.sim.app());
            Some(sim::write_secrets(path, app.as_ref()).map_err(|e| format!("secrets file {e}"))?)
        }
        None => None,
    };

    let deps = Deps::from_settings(settings)
        .await
        .map_err(|e| e.to_string())?;
    let running = start(deps.clone(), &host.to_string(), port).await?;
    if let (Some(stand_ins), Some(oauth)) = (
        &stand_ins,
        running.iter().find(|r| r.name == OauthCallback::NAME),
    ) {
        // Like a GitHub App, the stand-in then accepts only this redirect URI.
        let base = deps
            .settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", oauth.addr));
        stand_ins
            .sim
            .add_callback_url(format!("{base}{CALLBACK_PATH}"));
    }

    let text = banner(&Banner {
        deps: &deps,
        running: &running,
        stand_ins: stand_ins.as_ref(),
        secrets_file: secrets_file.as_deref(),
        written: written.as_ref(),
    });
    // One write, errors ignored: whoever reads the banner (a test, a pipe to
    // `head`) may close stdout, and that must not stop the server.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    drop(out);

    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    drop(stand_ins);
    Ok(())
}

struct Banner<'a> {
    deps: &'a Deps,
    running: &'a [Running],
    stand_ins: Option<&'a StandIns>,
    secrets_file: Option<&'a Path>,
    written: Option<&'a Written>,
}

/// What `tollgate dev` prints once everything listens: the functions' URLs
/// (one line each, then the `Health:` line — tests read up to it), the
/// stand-ins, and commands to try. Ends with `Ready`.
fn banner(b: &Banner<'_>) -> String {
    let settings = &b.deps.settings;
    let url_of = |name: &str| {
        b.running
            .iter()
            .find(|r| r.name == name)
            .map(|r| format!("http://{}", r.addr))
            .unwrap_or_default()
    };
    let mut out = format!(
        "Tollgate dev server (store: {}, config: {})\n",
        settings.store,
        settings.config_path.display()
    );
    for r in b.running {
        out.push_str(&format!("  {:<18} http://{}/\n", r.name, r.addr));
    }
    out.push_str(&format!(
        "Health: curl {}/healthz\n",
        url_of(PurchaseWebhook::NAME)
    ));
    if let Some(stand_ins) = b.stand_ins {
        let path = b.secrets_file.map(|p| p.display().to_string());
        out.push_str(&sim::summary(stand_ins, path.as_deref()));
    }
    if let (Some(path), Some(written)) = (b.secrets_file, b.written) {
        let note = if written.generated_webhook_secret {
            "generated now"
        } else {
            "kept"
        };
        out.push_str(&format!(
            "Secrets: {} (github_webhook_secret {note}; values never printed)\n",
            path.display()
        ));
    }

    out.push_str("Try it:\n");
    if b.stand_ins.is_some() {
        let base = settings
            .public_url
            .clone()
            .unwrap_or_else(|| url_of(OauthCallback::NAME));
        out.push_str(&format!(
            "  # sign in as the demo buyer, as after a Marketplace purchase (GitHub's Setup URL)\n  open {base}{SETUP_PATH}\n"
        ));
    }
    let mut fire_cmd = String::new();
    if settings.secrets != Settings::from_lookup(|_| None).secrets {
        fire_cmd.push_str(&format!("TOLLGATE_SECRETS={} ", settings.secrets));
    }
    fire_cmd.push_str(&format!("{} fire github", exe_hint()));
    let webhook = format!("{}/github", url_of(PurchaseWebhook::NAME));
    let url_arg = if webhook == fire::github::DEFAULT_URL {
        String::new()
    } else {
        format!(" --url {webhook}")
    };
    out.push_str(&format!(
        "  # a signed marketplace_purchase: acme buys Team, 5 seats, 14-day trial\n  {fire_cmd} purchased --trial{url_arg}\n"
    ));
    if let Some(product) = b.deps.catalog.product_for(Marketplace::Github, None) {
        out.push_str(&format!(
            "  # may acme use private repos?\n  curl -s {}/v1/check -H 'content-type: application/json' \\\n    -d '{{\"marketplace\":\"github\",\"customer_id\":\"{}\",\"product\":\"{product}\",\"feature\":\"private-repos\"}}'\n",
            url_of(EntitlementCheck::NAME),
            sim::DEMO_ORG_ID,
        ));
    }
    out.push_str(
        "  # other actions: changed --plan 1003 | pending_change --units 2 | pending_change_cancelled | cancelled\n",
    );
    out.push_str("Ready (Ctrl-C to stop)\n");
    out
}

/// How to run this binary from the current directory
/// (`./target/debug/tollgate` from the repository root).
fn exe_hint() -> String {
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    match (exe, cwd) {
        (Some(exe), Some(cwd)) => match exe.strip_prefix(&cwd) {
            Ok(rel) => format!("./{}", rel.display()),
            Err(_) => exe.display().to_string(),
        },
        _ => "tollgate".to_owned(),
    }
}

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
