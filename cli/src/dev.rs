//! `tollgate dev` (what `make dev` runs): the four functions on local ports,
//! same handler code as in Lambda, on the embedded store. Each function gets
//! its own port so it sees the same paths it sees behind its function URL.
//!
//! Unless `--no-sim`, the GitHub stand-ins (`tollgate sim`) start first, in
//! the same process, on `--port`+100 and +101, the Google stand-in on +102
//! and the Q2 stand-in on +103; the functions are pointed at them through
//! their [`Settings`] (never the process environment), and the stand-in
//! app's credentials, a webhook secret, a Q2 signing secret and the Google
//! service account's key go into the secrets file; the GitHub and Q2
//! stand-ins deliver to purchase-webhook signed with those secrets. So
//! sign-in, purchases (`tollgate fire github|q2`), Google's orders and
//! sign-up (`tollgate fire gcp`) and entitlement checks all work offline
//! with nothing configured.
//!
//! The configuration is checked before anything is bound or written (a
//! missing one says how to get one); a port in use names `DEV_PORT` and
//! `--port`; `--reset` deletes the SQLite store once every port is bound
//! (so never under another running dev server), keeping the secrets.
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
use crate::sim::{self, GcpStandIn, Q2StandIn, StandIns, Written};

/// purchase-webhook's port; the other three functions take the next three.
pub const DEFAULT_PORT: u16 = 9101;

/// The GitHub stand-ins listen this far above `--port` (9201/9202 by
/// default), clear of the four functions' ports; the Google stand-in
/// [`sim::GCP_PORT_OFFSET`] further (9203).
pub const SIM_PORT_OFFSET: u16 = 100;

// `tollgate dev`: the functions listen on `--port`..`--port`+3.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Reads TOLLGATE_CONFIG (default ./tollgate.toml; `make dev` uses tollgate.example.toml \
when there is none), TOLLGATE_STORE and TOLLGATE_SECRETS (which must name a file:<path> unless \
--no-sim).\nThe GitHub stand-ins listen on --port +100 and +101, the Google stand-in on +102, the \
Q2 stand-in on +103."
)]
pub struct Args {
    #[command(flatten)]
    pub listen: Listen<DEFAULT_PORT>,
    /// Do not start the marketplace stand-ins (keep the real URLs, app credentials and Google settings)
    #[arg(long)]
    pub no_sim: bool,
    /// Start from a clean store: delete the SQLite store (TOLLGATE_STORE) first. The stand-ins always start fresh; the secrets file is kept
    #[arg(long)]
    pub reset: bool,
}

/// Why `tollgate dev` could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(
        "no configuration at {path} (TOLLGATE_CONFIG): copy the example (`cp tollgate.example.toml tollgate.toml`) or point TOLLGATE_CONFIG at a file (`make dev` uses tollgate.example.toml when there is no tollgate.toml)"
    )]
    NoConfig { path: String },
    #[error(
        "{what}: {addr} is already in use (another `tollgate dev`?); pick other ports with DEV_PORT=<port> make dev, or tollgate dev --port <port> (the functions take <port>..+3, the stand-ins +100..+103)"
    )]
    PortInUse { what: String, addr: String },
    #[error("--reset: {0}")]
    Reset(String),
    #[error("{0}")]
    Other(String),
}

impl From<DevError> for String {
    fn from(e: DevError) -> Self {
        e.to_string()
    }
}

impl From<String> for DevError {
    fn from(e: String) -> Self {
        DevError::Other(e)
    }
}

/// A stand-in's start error, as a [`DevError::PortInUse`] when its port was taken.
fn stand_in_error(what: &str, addr: SocketAddr, e: String) -> DevError {
    if e.contains("in use") {
        DevError::PortInUse {
            what: what.to_owned(),
            addr: addr.to_string(),
        }
    } else {
        DevError::Other(e)
    }
}

pub async fn run(args: Args) -> Result<(), String> {
    Ok(serve_dev(args).await?)
}

async fn serve_dev(args: Args) -> Result<(), DevError> {
    let Listen { host, port } = args.listen;
    let gcp_offset = SIM_PORT_OFFSET + sim::GCP_PORT_OFFSET;
    let q2_offset = SIM_PORT_OFFSET + sim::Q2_PORT_OFFSET;
    if port != 0 && port.checked_add(q2_offset).is_none() {
        return Err(DevError::Other(format!(
            "--port {port} leaves no room for the stand-ins at +{SIM_PORT_OFFSET}..+{q2_offset}"
        )));
    }
    let with_sim = !args.no_sim;

    let mut settings = Settings::from_env();
    // The configuration first: nothing is written or bound without one.
    if !settings.config_path.exists() {
        return Err(DevError::NoConfig {
            path: settings.config_path.display().to_string(),
        });
    }
    tollgate::config::Catalog::load(&settings.config_path)
        .map_err(|e| DevError::Other(e.to_string()))?;
    let reset_path = if args.reset {
        Some(sqlite_path(&settings.store)?)
    } else {
        None
    };
    let secrets_file = settings.secrets.strip_prefix("file:").map(PathBuf::from);
    let at = |offset: u16| if port == 0 { 0 } else { port + offset };
    let stand_ins = if with_sim {
        if secrets_file.is_none() {
            return Err(DevError::Other(format!(
                "TOLLGATE_SECRETS is `{}`: the stand-ins hand their app credentials over through a secrets file; set TOLLGATE_SECRETS=file:<path> (make dev does) or pass --no-sim",
                settings.secrets
            )));
        }
        let sim_port = at(SIM_PORT_OFFSET);
        let stand_ins = sim::start(host, sim_port, None).await.map_err(|e| {
            stand_in_error("the GitHub stand-ins", SocketAddr::new(host, sim_port), e)
        })?;
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
        let gcp_port = at(gcp_offset);
        let gcp = sim::start_gcp(host, gcp_port, Some(&push_url))
            .await
            .map_err(|e| {
                stand_in_error("the Google stand-in", SocketAddr::new(host, gcp_port), e)
            })?;
        gcp.configure(&mut settings, &push_url);
        Some((gcp, push_url))
    } else {
        None
    };
    let q2 =
        if with_sim {
            let q2_port = at(q2_offset);
            Some(sim::start_q2(host, q2_port).await.map_err(|e| {
                stand_in_error("the Q2 stand-in", SocketAddr::new(host, q2_port), e)
            })?)
        } else {
            None
        };
    // Everything listens: no other dev server is using these ports, so
    // the store can go.
    if let Some(path) = &reset_path {
        delete_store(path)?;
    }
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
        // `/v1/token` signs with it (README "Signed entitlement tokens").
        sim::ensure_secret(path, tollgate::api::token::TOKEN_KEY_SECRET, || {
            tollgate::api::token::generate_key()
                .map(|key| key.expose().to_owned())
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("secrets file {e}"))?;
    }
    if let (Some(path), Some(stand_ins), Some(q2)) = (&secrets_file, &stand_ins, &q2) {
        let webhook = format!("http://{}", listeners.addr(PurchaseWebhook::NAME)?);
        sim::connect(path, &webhook, &stand_ins.sim, &q2.sim)
            .map_err(|e| format!("secrets file {e}"))?;
    }

    let deps = Deps::from_settings(settings)
        .await
        .map_err(|e| DevError::Other(e.to_string()))?;
    let running = start(deps.clone(), listeners).await?;
    let notifications = drain_notifications(&deps).await?;
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
        q2: q2.as_ref(),
        secrets_file: secrets_file.as_deref(),
        written: written.as_ref(),
        reset: reset_path.as_deref(),
    });
    // One write, errors ignored: whoever reads the banner (a test, a pipe to
    // `head`) may close stdout, and that must not stop the server.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    drop(out);

    tokio::signal::ctrl_c()
        .await
        .map_err(|e| DevError::Other(e.to_string()))?;
    notifications.abort();
    drop(stand_ins);
    drop(gcp);
    drop(q2);
    Ok(())
}

/// Change notifications (README "Change notifications"): the outbox drained
/// every 2 s in the background, as the table's stream does in AWS. With no
/// endpoint configured there is nothing to send and the loop only looks.
async fn drain_notifications(deps: &Deps) -> Result<tokio::task::JoinHandle<()>, DevError> {
    use tollgate::notify::{HttpTransport, Sender};
    let fail = |e: String| DevError::Other(format!("change notifications: {e}"));
    let outbox = tollgate::setup::open_outbox(&deps.settings.store)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let transport = HttpTransport::new().map_err(|e| fail(e.to_string()))?;
    let sender = Sender::new(
        outbox,
        std::sync::Arc::clone(&deps.catalog),
        &deps.secrets,
        std::sync::Arc::new(transport),
        std::sync::Arc::new(tollgate::clock::SystemClock),
    )
    .map_err(|e| fail(e.to_string()))?;
    Ok(tokio::spawn(async move {
        sender
            .run(std::time::Duration::from_secs(2), std::future::pending())
            .await;
    }))
}

/// The file of a `sqlite:<path>` store; `--reset` deletes nothing else.
fn sqlite_path(store: &str) -> Result<PathBuf, DevError> {
    match store.strip_prefix("sqlite:") {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => Err(DevError::Reset(format!(
            "TOLLGATE_STORE is `{store}`: only a local sqlite:<path> store is deleted"
        ))),
    }
}

/// Deletes the SQLite store at `path` and its journal files, if there.
fn delete_store(path: &Path) -> Result<(), DevError> {
    let mut names = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        names.push(PathBuf::from(name));
    }
    for name in names {
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DevError::Reset(format!("{}: {e}", name.display()))),
        }
    }
    Ok(())
}

struct Banner<'a> {
    deps: &'a Deps,
    running: &'a [Running],
    stand_ins: Option<&'a StandIns>,
    /// The Google stand-in and the URL it pushes to.
    gcp: Option<(&'a GcpStandIn, &'a str)>,
    q2: Option<&'a Q2StandIn>,
    secrets_file: Option<&'a Path>,
    written: Option<&'a Written>,
    /// The store `--reset` deleted.
    reset: Option<&'a Path>,
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
    let path = b.secrets_file.map(|p| p.display().to_string());
    if let Some(stand_ins) = b.stand_ins {
        out.push_str(&sim::summary(stand_ins, path.as_deref()));
        out.push_str(&format!(
            "  delivers marketplace_purchase webhooks to {}/github, signed with github_webhook_secret; `tollgate fire github` drives {}/_sim\n",
            url_of(PurchaseWebhook::NAME),
            stand_ins.running.web_url
        ));
    }
    if let Some((gcp, push_url)) = b.gcp {
        out.push_str(&sim::gcp_summary(gcp, push_url, path.as_deref(), false));
    }
    if let Some(q2) = b.q2 {
        out.push_str(&sim::q2_summary(q2, Some(&url_of(PurchaseWebhook::NAME))));
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
    if let Some(path) = b.reset {
        out.push_str(&format!(
            "Store: {} deleted (--reset): every subscription starts over\n",
            path.display()
        ));
    }

    let check = url_of(EntitlementCheck::NAME);
    let fire = format!("{} fire", exe_hint());
    let check_flag = if format!("{check}/v1/check") == fire::DEFAULT_CHECK_URL {
        String::new()
    } else {
        format!(" --check-url {check}/v1/check")
    };
    out.push_str("Try it (in another terminal; `make demo` plays a whole tour):\n");
    if let Some(stand_ins) = b.stand_ins {
        let mut flags = check_flag.clone();
        if stand_ins.running.web_url != fire::github::DEFAULT_SIM_URL {
            flags = format!(" --sim-url {}{flags}", stand_ins.running.web_url);
        }
        out.push_str(&format!(
            "  # GitHub: acme buys Team, 5 seats, on a 14-day trial (the stand-in sends the signed webhook)\n  {fire} github purchased --trial{flags}\n"
        ));
        let base = settings
            .public_url
            .clone()
            .unwrap_or_else(|| url_of(OauthCallback::NAME));
        out.push_str(&format!(
            "  # sign in as the buyer octocat, as after a Marketplace purchase (Chrome or Firefox)\n  open {base}{SETUP_PATH}\n"
        ));
        if let Some(product) = b.deps.catalog.product_for(Marketplace::Github, None) {
            out.push_str(&format!(
                "  # may acme use private repos?\n  curl -s {check}/v1/check -H 'content-type: application/json' \\\n    -d '{{\"marketplace\":\"github\",\"customer_id\":\"{}\",\"product\":\"{product}\",\"feature\":\"private-repos\"}}'\n",
                sim::DEMO_ORG_ID,
            ));
        }
        out.push_str(
            "  # then: changed --plan 1003 | pending_change --units 2 | pending_change_cancelled | cancelled [--now]\n",
        );
    }
    if let Some(q2) = b.q2 {
        let mut flags = check_flag.clone();
        if q2.running.base_url != fire::q2::DEFAULT_SIM_URL {
            flags = format!(" --sim-url {}{flags}", q2.running.base_url);
        }
        out.push_str(&format!(
            "  # Q2: user 123456 of Local Credit Union subscribes to Budget Helper (the stand-in relays the signed event)\n  {fire} q2 subscribe{flags}\n  # then: update --edition STANDARD | cancel\n"
        ));
    }
    if let Some((gcp, _)) = b.gcp {
        out.push_str(&gcp_hint(
            &gcp.running.base_url,
            &url_of(OauthCallback::NAME),
            &check,
        ));
    }
    if b.stand_ins.is_some() {
        out.push_str(
            "Start over: make dev-reset (tollgate dev --reset: a clean store; the secrets file is kept)\n",
        );
    }
    out.push_str("Ready (Ctrl-C to stop)\n");
    out
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
    pub async fn bind(host: &str, first_port: u16) -> Result<Self, DevError> {
        let names = [
            PurchaseWebhook::NAME,
            PubsubPush::NAME,
            OauthCallback::NAME,
            EntitlementCheck::NAME,
        ];
        let mut bound = Vec::with_capacity(names.len());
        for (i, name) in (0u16..).zip(names) {
            let port = if first_port == 0 { 0 } else { first_port + i };
            let listener = TcpListener::bind((host, port)).await.map_err(|e| {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    DevError::PortInUse {
                        what: name.to_owned(),
                        addr: format!("{host}:{port}"),
                    }
                } else {
                    DevError::Other(format!("{name}: bind {host}:{port}: {e}"))
                }
            })?;
            bound.push((name, listener));
        }
        let bound: [(&'static str, TcpListener); 4] = bound
            .try_into()
            .map_err(|_| DevError::Other("four listeners".to_owned()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_deletes_only_a_local_sqlite_store_and_its_journal_files() {
        let err = sqlite_path("dynamodb:tollgate").unwrap_err().to_string();
        assert!(err.contains("only a local sqlite:<path> store"), "{err}");
        assert!(sqlite_path("sqlite:").is_err());

        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("dev.db");
        for name in ["dev.db", "dev.db-wal", "dev.db-shm", "secrets.json"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let path = sqlite_path(&format!("sqlite:{}", db.display())).unwrap();
        delete_store(&path).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["secrets.json"]);
        // Nothing there: nothing to do.
        delete_store(&path).unwrap();
    }

    #[test]
    fn a_port_in_use_names_dev_port_and_the_flag() {
        let e = stand_in_error(
            "the Q2 stand-in",
            SocketAddr::from(([127, 0, 0, 1], 9204)),
            "Q2 stand-in: cannot listen on 127.0.0.1:9204: Address already in use (os error 98)"
                .into(),
        )
        .to_string();
        assert!(
            e.contains("127.0.0.1:9204 is already in use")
                && e.contains("DEV_PORT=<port> make dev")
                && e.contains("--port <port>"),
            "{e}"
        );
        let other = stand_in_error(
            "x",
            SocketAddr::from(([127, 0, 0, 1], 1)),
            "permission denied".into(),
        );
        assert!(matches!(other, DevError::Other(_)));
    }
}
