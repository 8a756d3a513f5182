//! `tollgate dev` (what `make dev` runs): the four functions on local ports,
//! same handler code as in Lambda, on the embedded store. Each function gets
//! its own port so it sees the same paths it sees behind its function URL.
//!
//! Unless `--no-sim`, the GitHub stand-ins (`tollgate sim`) start first, in
//! the same process, on `--port`+100 and +101, and the Google stand-in on
//! +102; the functions are pointed at them through their [`Settings`] (never
//! the process environment), and the stand-in app's credentials, a webhook
//! secret and the Google service account's key go into the secrets file, so
//! sign-in, webhooks (`tollgate fire`), Google's orders and sign-up
//! (`tollgate fire gcp`) and entitlement checks all work offline with
//! nothing configured.
//!
//! The functions' listeners are bound before anything else: the Google
//! stand-in pushes Marketplace's messages to pubsub-push, and that URL is
//! also the push audience pubsub-push checks, so it must be known (even
//! with `--port 0`) before the functions are built.

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
use crate::sim::{self, GcpStandIn, StandIns, Written};

/// purchase-webhook's port; the other three functions take the next three.
pub const DEFAULT_PORT: u16 = 9101;

/// The GitHub stand-ins listen this far above `--port` (9201/9202 by
/// default), clear of the four functions' ports; the Google stand-in
/// [`sim::GCP_PORT_OFFSET`] further (9203).
pub const SIM_PORT_OFFSET: u16 = 100;

// `tollgate dev`: the functions listen on `--port`..`--port`+3.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Reads TOLLGATE_CONFIG, TOLLGATE_STORE and TOLLGATE_SECRETS \
(which must name a file:<path> unless --no-sim).\nThe GitHub stand-ins listen on \
--port +100 and +101, the Google stand-in on +102."
)]
pub struct Args {
    #[command(flatten)]
    pub listen: Listen<DEFAULT_PORT>,
    /// Do not start the GitHub and Google stand-ins (keep the real URLs, app credentials and Google settings)
    #[arg(long)]
    pub no_sim: bool,
}

pub async fn run(args: Args) -> Result<(), String> {
    let Listen { host, port } = args.listen;
    let gcp_offset = SIM_PORT_OFFSET + sim::GCP_PORT_OFFSET;
    if port != 0 && port.checked_add(gcp_offset).is_none() {
        return Err(format!(
            "--port {port} leaves no room for the stand-ins at +{SIM_PORT_OFFSET}..+{gcp_offset}"
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
    let listeners = Listeners::bind(&host.to_string(), port).await?;
    let gcp = if with_sim {
        // Pub/Sub's audience defaults to the push endpoint's URL; so here.
        let push_url = format!("http://{}/", listeners.addr(PubsubPush::NAME)?);
        let gcp_port = if port == 0 { 0 } else { port + gcp_offset };
        let gcp = sim::start_gcp(host, gcp_port, Some(&push_url)).await?;
        gcp.configure(&mut settings, &push_url);
        Some((gcp, push_url))
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
    if let (Some(path), Some((gcp, _))) = (&secrets_file, &gcp) {
        sim::write_gcp_key(path, &gcp.sim).map_err(|e| format!("secrets file {e}"))?;
    }
    if let Some(path) = &secrets_file {
        fire::q2::ensure_signing_secret(path).map_err(|e| format!("secrets file {e}"))?;
    }

    let deps = Deps::from_settings(settings)
        .await
        .map_err(|e| e.to_string())?;
    let running = start(deps.clone(), listeners).await?;
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
        gcp: gcp.as_ref().map(|(g, url)| (g, url.as_str())),
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
    drop(gcp);
    Ok(())
}

struct Banner<'a> {
    deps: &'a Deps,
    running: &'a [Running],
    stand_ins: Option<&'a StandIns>,
    /// The Google stand-in and the URL it pushes to.
    gcp: Option<(&'a GcpStandIn, &'a str)>,
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
    if let Some((gcp, push_url)) = b.gcp {
        let path = b.secrets_file.map(|p| p.display().to_string());
        out.push_str(&sim::gcp_summary(gcp, push_url, path.as_deref(), false));
    }
    if let (Some(path), Some(written)) = (b.secrets_file, b.written) {
        let note = |generated: bool| if generated { "generated now" } else { "kept" };
        out.push_str(&format!(
            "Secrets: {} (github_webhook_secret {}, oauth_state_key {}; values never printed)\n",
            path.display(),
            note(written.generated_webhook_secret),
            note(written.generated_state_key),
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
    out.push_str(&q2_hint(
        &fire_cmd,
        &url_of(PurchaseWebhook::NAME),
        &url_of(EntitlementCheck::NAME),
    ));
    if let Some((gcp, _)) = b.gcp {
        out.push_str(&gcp_hint(
            &gcp.running.base_url,
            &url_of(OauthCallback::NAME),
            &url_of(EntitlementCheck::NAME),
        ));
    }
    out.push_str("Ready (Ctrl-C to stop)\n");
    out
}

/// The banner's Q2 lines: a signed order as the Q2 extension relays it
/// (signed with `q2_signing_secret`, which the secrets file now holds).
fn q2_hint(github_fire_cmd: &str, webhook: &str, check: &str) -> String {
    let cmd = github_fire_cmd.replace("fire github", "fire q2");
    let mut urls = String::new();
    if format!("{webhook}/q2") != fire::q2::DEFAULT_URL {
        urls.push_str(&format!(" --url {webhook}/q2"));
    }
    if format!("{check}/v1/check") != fire::q2::DEFAULT_CHECK_URL {
        urls.push_str(&format!(" --check-url {check}/v1/check"));
    }
    format!(
        "  # a signed Q2 order (the extension's subscribe, signed with q2_signing_secret): user 123456 of Local Credit Union buys Budget Helper\n  {cmd} subscribe{urls}\n  # then: update --edition STANDARD | cancel\n"
    )
}

/// The banner's Google lines: an order before sign-up, the sign-up, a
/// cancellation, through the Google stand-in (`fire gcp` flags only where
/// the URLs differ from `make dev`'s).
fn gcp_hint(sim_url: &str, oauth: &str, check: &str) -> String {
    let mut urls = String::new();
    if sim_url != fire::gcp::DEFAULT_SIM_URL {
        urls.push_str(&format!(" --sim-url {sim_url}"));
    }
    if format!("{check}/v1/check") != fire::gcp::DEFAULT_CHECK_URL {
        urls.push_str(&format!(" --check-url {check}/v1/check"));
    }
    let mut signup = urls.clone();
    if format!("{oauth}{}", fire::gcp::SIGNUP_PATH) != fire::gcp::DEFAULT_SIGNUP_URL {
        signup.push_str(&format!(" --signup-url {oauth}{}", fire::gcp::SIGNUP_PATH));
    }
    let cmd = format!("{} fire gcp", exe_hint());
    format!(
        "  # Google Cloud Marketplace: {account} orders {plan} (pending until sign-up), signs up (Tollgate approves), cancels\n  {cmd} order --account {account} --plan {plan}{urls}\n  {cmd} signup --account {account}{signup}\n  {cmd} cancel --account {account}{urls}\n  # other steps: request-plan-change --plan business-yearly | cancel-plan-change | revert-cancellation | end-term | cancel-now | delete | delete-account | deliver\n",
        account = sim::GCP_DEMO_ACCOUNT,
        plan = sim::GCP_DEMO_PLAN,
    )
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

/// The four functions' listeners, bound before the functions are built, in
/// the order of [`start`].
pub struct Listeners([(&'static str, TcpListener); 4]);

impl Listeners {
    /// Binds purchase-webhook on `first_port` and the others on the next
    /// three (port 0: ports the OS picks).
    pub async fn bind(host: &str, first_port: u16) -> Result<Self, String> {
        let names = [
            PurchaseWebhook::NAME,
            PubsubPush::NAME,
            OauthCallback::NAME,
            EntitlementCheck::NAME,
        ];
        let mut bound = Vec::with_capacity(names.len());
        for (i, name) in (0u16..).zip(names) {
            let port = if first_port == 0 { 0 } else { first_port + i };
            let listener = TcpListener::bind((host, port))
                .await
                .map_err(|e| format!("{name}: bind {host}:{port}: {e}"))?;
            bound.push((name, listener));
        }
        let bound: [(&'static str, TcpListener); 4] =
            bound.try_into().map_err(|_| "four listeners".to_owned())?;
        Ok(Self(bound))
    }

    /// The address function `name` listens on.
    pub fn addr(&self, name: &str) -> Result<SocketAddr, String> {
        let (_, listener) = self
            .0
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| format!("no function {name}"))?;
        listener.local_addr().map_err(|e| format!("{name}: {e}"))
    }
}

/// Builds every function and serves each on its listener until the process
/// ends. Returns the addresses once all are serving.
pub async fn start(deps: Deps, listeners: Listeners) -> Result<Vec<Running>, String> {
    let [webhook, push, oauth, check] = listeners.0;
    Ok(vec![
        mount::<PurchaseWebhook>(&deps, webhook).await?,
        mount::<PubsubPush>(&deps, push).await?,
        mount::<OauthCallback>(&deps, oauth).await?,
        mount::<EntitlementCheck>(&deps, check).await?,
    ])
}

async fn mount<F: FromDeps>(
    deps: &Deps,
    (name, listener): (&'static str, TcpListener),
) -> Result<Running, String> {
    debug_assert_eq!(name, F::NAME, "listeners are bound in start's order");
    let function = F::from_deps(deps.clone())
        .await
        .map_err(|e| format!("{}: {e}", F::NAME))?;
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
