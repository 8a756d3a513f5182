//! `tollgate sim`: the local stand-ins for github.com and api.github.com
//! (`tollgate-sim`), seeded with a demo buyer, for Google's services
//! (token endpoint, key documents, Partner Procurement API, Marketplace
//! publishing through Pub/Sub push) and for Q2's marketplace. `tollgate
//! dev` starts the same stand-ins in-process through [`start`],
//! [`start_gcp`], [`start_q2`], [`write_secrets`] and [`connect`]; this
//! command runs them on their own, e.g. beside `tollgate dev --no-sim`.
//!
//! The GitHub and Q2 stand-ins send the marketplace's events themselves
//! (`tollgate fire github|q2` asks them to): [`connect`] points them at
//! purchase-webhook and hands them the secrets it checks.
//!
//! Point the functions at the printed URLs (`TOLLGATE_GITHUB_URL`,
//! `TOLLGATE_GITHUB_API_URL`). With `--secrets-out`, the stand-in app's
//! credentials (`github_client_id`, `github_client_secret`, `github_app_id`,
//! `github_app_private_key`) are merged into that JSON secrets file, plus a
//! random `github_webhook_secret` and `oauth_state_key` if it has none, so
//! `TOLLGATE_SECRETS=file:<it>` makes the functions use them; they are never
//! printed.
//!
//! Demo data, matching the GitHub plan ids of `tollgate.example.toml`: user
//! `octocat` (id 1) signs in; org `acme` (id 2001, octocat a member) is on a
//! 14-day trial of `Team` (plan 1002, per-unit) with 5 seats; octocat's
//! personal account has `Free` (plan 1001). `Business` (1003) is flat-rate.
//!
//! Google: one server on `--port`+2 serves every Google URL Tollgate calls
//! (`TOLLGATE_GOOGLE_TOKEN_URL`, `TOLLGATE_GOOGLE_OIDC_CERTS_URL`,
//! `TOLLGATE_GCP_SIGNUP_CERTS_URL`, `TOLLGATE_PROCUREMENT_URL`) and the
//! scenario API `tollgate fire gcp` drives (`/_sim/...`). Its listing is the
//! one of `tollgate.example.toml`: provider `acme-public`, product
//! `acme-ci.endpoints.acme-public.cloud.goog`, plans `free`, `team-monthly`,
//! `business-yearly` (any plan name can be ordered; an unmapped one is
//! rejected by Tollgate). It starts with no accounts: `fire gcp order`
//! creates them. Each step's Pub/Sub messages are pushed, signed, to
//! pubsub-push (`--gcp-push-url`), and so are the messages Tollgate's own
//! Procurement calls cause (approvals), right after the call. With
//! `--secrets-out`, the service account's key goes into the file as
//! `gcp_service_account_key`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use tollgate::marketplace::gcp::credentials::SERVICE_ACCOUNT_KEY_SECRET;
use tollgate::marketplace::github::SECRET_NAME as WEBHOOK_SECRET;
use tollgate::marketplace::github::oauth_state::STATE_KEY_SECRET;
use tollgate::setup::Settings;
use tollgate_sim::gcp::{GcpSim, PushConfig, Running as GcpRunning};
use tollgate_sim::github::{App, GithubSim, Org, Plan, PriceModel, Purchase, Running, User};
use tollgate_sim::q2::stand_in::{Q2Sim, Running as Q2Running};

use crate::args::Listen;

/// github.com's stand-in; api.github.com's is on the next port.
pub const DEFAULT_PORT: u16 = 9201;

/// The demo buyer: the user who signs in, and the organization that bought.
pub const DEMO_USER_ID: u64 = 1;
pub const DEMO_USER_LOGIN: &str = "octocat";
pub const DEMO_ORG_ID: u64 = 2001;
pub const DEMO_ORG_LOGIN: &str = "acme";
/// The plan and seats acme is on in the seed.
pub const DEMO_PLAN_ID: u64 = 1002;
pub const DEMO_UNITS: u64 = 5;

/// The Google stand-in listens this far above github.com's stand-in.
pub const GCP_PORT_OFFSET: u16 = 2;
/// The Q2 stand-in listens this far above github.com's stand-in.
pub const Q2_PORT_OFFSET: u16 = 3;
/// purchase-webhook under `make dev`: where the GitHub stand-in delivers
/// (`/github`) and the Q2 stand-in relays (`/q2`) by default.
pub const DEFAULT_PURCHASE_WEBHOOK_URL: &str = "http://127.0.0.1:9101";
/// pubsub-push under `make dev`: where the Google stand-in pushes by default.
pub const DEFAULT_GCP_PUSH_URL: &str = "http://127.0.0.1:9102/";
/// The Google plans of the demo listing (`[products.acme-ci.plans.gcp]` of
/// `tollgate.example.toml`).
pub const GCP_DEMO_PLANS: [&str; 3] = ["free", "team-monthly", "business-yearly"];
/// The Procurement account `tollgate fire gcp` acts for unless told otherwise.
pub const GCP_DEMO_ACCOUNT: &str = "demo-buyer";
/// The plan `tollgate fire gcp order` orders unless told otherwise.
pub const GCP_DEMO_PLAN: &str = "team-monthly";

// `tollgate sim`: github.com's stand-in on `--port`, api.github.com's on +1,
// Google's on +2.
#[derive(Debug, clap::Args)]
#[command(after_help = "Point the functions at the printed URLs \
(TOLLGATE_GITHUB_URL, TOLLGATE_GITHUB_API_URL, and the printed TOLLGATE_GOOGLE_*/TOLLGATE_GCP_*/\
TOLLGATE_PROCUREMENT_URL settings).\nThe Google stand-in listens on --port +2.")]
pub struct Args {
    #[command(flatten)]
    pub listen: Listen<DEFAULT_PORT>,
    /// Accept only this OAuth redirect_uri, as GitHub does for a GitHub App
    #[arg(long, value_name = "URL")]
    pub callback_url: Option<String>,
    /// Merge the stand-in app's credentials (and a webhook secret if missing) and the Google service account key into this JSON secrets file
    #[arg(long, value_name = "PATH")]
    pub secrets_out: Option<PathBuf>,
    /// Where the Google stand-in pushes Marketplace's Pub/Sub messages (pubsub-push; also the push audience)
    #[arg(long, value_name = "URL", default_value = DEFAULT_GCP_PUSH_URL)]
    pub gcp_push_url: String,
    /// purchase-webhook: the GitHub stand-in delivers to its /github, the Q2 stand-in relays to its /q2 (with --secrets-out, signed with that file's secrets)
    #[arg(long, value_name = "URL", default_value = DEFAULT_PURCHASE_WEBHOOK_URL)]
    pub purchase_webhook_url: String,
}

pub async fn run(args: Args) -> Result<(), String> {
    let Listen { host, port } = args.listen;
    let gcp_port = match port {
        0 => 0,
        p => p
            .checked_add(GCP_PORT_OFFSET)
            .ok_or("--port too high for the Google stand-in at +2")?,
    };
    let q2_port = match port {
        0 => 0,
        p => p
            .checked_add(Q2_PORT_OFFSET)
            .ok_or("--port too high for the Q2 stand-in at +3")?,
    };
    let stand_ins = start(host, port, args.callback_url.as_deref()).await?;
    let gcp = start_gcp(host, gcp_port, Some(&args.gcp_push_url)).await?;
    let q2 = start_q2(host, q2_port).await?;
    let secrets_out = args.secrets_out.as_deref().map(|p| p.display().to_string());
    if let Some(path) = &args.secrets_out {
        write_secrets(path, Some(&stand_ins.sim.app()))
            .map_err(|e| format!("--secrets-out {e}"))?;
        write_gcp_key(path, &gcp.sim).map_err(|e| format!("--secrets-out {e}"))?;
        crate::fire::q2::ensure_signing_secret(path).map_err(|e| format!("--secrets-out {e}"))?;
        connect(path, &args.purchase_webhook_url, &stand_ins.sim, &q2.sim)
            .map_err(|e| format!("--secrets-out {e}"))?;
    }
    print!("{}", summary(&stand_ins, secrets_out.as_deref()));
    print!(
        "{}",
        gcp_summary(&gcp, &args.gcp_push_url, secrets_out.as_deref(), true)
    );
    let relay = secrets_out
        .is_some()
        .then_some(args.purchase_webhook_url.as_str());
    print!("{}", q2_summary(&q2, relay));
    println!("Ready (Ctrl-C to stop)");
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// The GitHub stand-ins, seeded and listening.
pub struct StandIns {
    pub sim: GithubSim,
    /// Dropping this stops the servers.
    pub running: Running,
}

/// Starts github.com's stand-in on `port` and api.github.com's on `port`+1
/// (port 0: both on ports the OS picks), with a fresh app (id 1) and the
/// demo data. With `callback_url`, `redirect_uri` must equal it, as GitHub
/// requires of a GitHub App.
pub async fn start(
    host: IpAddr,
    port: u16,
    callback_url: Option<&str>,
) -> Result<StandIns, String> {
    let api_port = if port == 0 {
        0
    } else {
        port.checked_add(1)
            .ok_or("port too high for the GitHub stand-ins")?
    };
    let mut app = App::generate(1).map_err(|e| e.to_string())?;
    if let Some(url) = callback_url {
        app = app.with_callback_url(url);
    }
    let sim = GithubSim::new(app);
    seed(&sim);
    let running = sim
        .start_on(SocketAddr::new(host, port), SocketAddr::new(host, api_port))
        .await
        .map_err(|e| format!("GitHub stand-ins: {e}"))?;
    Ok(StandIns { sim, running })
}

/// The listing's plans, matching the GitHub plan ids of
/// `tollgate.example.toml` (1001 free, 1002 team, 1003 business).
pub fn demo_plans() -> Vec<Plan> {
    vec![
        Plan::new(1001, 1, "Free", PriceModel::Free).with_bullets(["Public repositories"]),
        Plan::new(1002, 2, "Team", PriceModel::PerUnit)
            .with_free_trial()
            .with_prices(400, 4000)
            .with_bullets(["Public and private repositories", "Per seat"]),
        Plan::new(1003, 3, "Business", PriceModel::FlatRate)
            .with_prices(9900, 99000)
            .with_bullets(["Up to 50 users", "SSO", "Audit log"]),
    ]
}

/// The demo user.
pub fn demo_user() -> User {
    User::new(DEMO_USER_ID, DEMO_USER_LOGIN).with_name("The Octocat")
}

/// An organization the demo user belongs to (`acme` in the seed).
pub fn demo_org(id: u64, login: &str) -> Org {
    Org::new(id, login)
        .with_billing_email(format!("billing@{login}.example"))
        .with_member(DEMO_USER_ID)
}

fn seed(sim: &GithubSim) {
    for plan in demo_plans() {
        sim.add_plan(plan);
    }
    sim.add_user(demo_user());
    sim.add_org(demo_org(DEMO_ORG_ID, DEMO_ORG_LOGIN));
    sim.add_purchase(
        Purchase::new(DEMO_ORG_ID, DEMO_PLAN_ID)
            .with_units(DEMO_UNITS)
            .on_trial_until(Utc::now() + Duration::days(14)),
    );
    sim.add_purchase(Purchase::new(DEMO_USER_ID, 1001).unbilled());
    sim.sign_in(DEMO_USER_ID);
}

/// The Q2 stand-in, listening.
pub struct Q2StandIn {
    pub sim: Q2Sim,
    /// Dropping this stops the server.
    pub running: Q2Running,
}

/// Starts the Q2 stand-in on `port` (0: a port the OS picks), holding no
/// subscriptions; [`connect`] tells it where to relay.
pub async fn start_q2(host: IpAddr, port: u16) -> Result<Q2StandIn, String> {
    let sim = Q2Sim::new();
    let running = sim
        .start_on(SocketAddr::new(host, port))
        .await
        .map_err(|e| format!("Q2 stand-in: {e}"))?;
    Ok(Q2StandIn { sim, running })
}

/// Points the GitHub stand-in's webhook at `purchase_webhook`'s `/github`
/// and the Q2 stand-in's relay at its `/q2`, signed with the
/// `github_webhook_secret` and `q2_signing_secret` of the secrets file at
/// `path` (the functions' secrets: the marketplace and Tollgate share them).
pub fn connect(
    path: &Path,
    purchase_webhook: &str,
    github: &GithubSim,
    q2: &Q2Sim,
) -> Result<(), String> {
    let base = purchase_webhook.trim_end_matches('/');
    let webhook = read_secret(path, WEBHOOK_SECRET)?;
    github.set_webhook(format!("{base}/github"), webhook.into_bytes());
    let q2_secret = read_secret(path, tollgate::marketplace::q2::SECRET_NAME)?;
    q2.set_relay(format!("{base}/q2"), q2_secret.into_bytes());
    Ok(())
}

/// The secret `name` of the JSON secrets file at `path`. Errors start with
/// the path and never contain a value.
pub fn read_secret(path: &Path, name: &str) -> Result<String, String> {
    let fail = |e: &str| format!("{}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| fail(&e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| fail("is not JSON"))?;
    value[name]
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
        .ok_or_else(|| fail(&format!("has no `{name}`")))
}

/// The Q2 stand-in's block of the startup banner; `relay`: where it relays.
pub fn q2_summary(q2: &Q2StandIn, relay: Option<&str>) -> String {
    let base = &q2.running.base_url;
    let mut out = format!(
        "Q2 stand-in (tollgate-sim): the Q2 marketplace and the vendor's extension\n  q2-marketplace      {base}\n"
    );
    match relay {
        Some(url) => out.push_str(&format!(
            "  relays each event to {}/q2, signed with q2_signing_secret; `tollgate fire q2` drives {base}/_sim\n",
            url.trim_end_matches('/')
        )),
        None => out.push_str(
            "  (pass --secrets-out <secrets.json> so it can sign and relay events to purchase-webhook)\n",
        ),
    }
    out
}

/// The Google stand-in, listening.
pub struct GcpStandIn {
    pub sim: GcpSim,
    /// Dropping this stops the server and its push deliverer.
    pub running: GcpRunning,
}

/// Starts the Google stand-in for the demo listing on `port` (0: a port the
/// OS picks). With `push_url`, Marketplace's messages are pushed there
/// (audience: that URL) after every step and right after every Procurement
/// call that publishes one, as Pub/Sub would; without, they stay queued.
pub async fn start_gcp(
    host: IpAddr,
    port: u16,
    push_url: Option<&str>,
) -> Result<GcpStandIn, String> {
    let sim = GcpSim::generate().map_err(|e| format!("Google stand-in: {e}"))?;
    let running = sim
        .start_on(SocketAddr::new(host, port))
        .await
        .map_err(|e| format!("Google stand-in: {e}"))?;
    if let Some(url) = push_url {
        sim.set_push(PushConfig::new(url));
        sim.set_auto_deliver(true);
    }
    Ok(GcpStandIn { sim, running })
}

impl GcpStandIn {
    /// The settings that point Tollgate at the stand-in, by variable name:
    /// Google's URLs, the listing's provider id and sign-up audience, and
    /// the push subscription (`push_url` as audience, the stand-in's push
    /// service account).
    pub fn settings(&self, push_url: &str) -> Vec<(&'static str, String)> {
        self.sim.tollgate_settings(&self.running, push_url)
    }

    /// `settings` with [`GcpStandIn::settings`] applied, field by field (the
    /// process environment is never touched).
    pub fn configure(&self, settings: &mut Settings, push_url: &str) {
        let r = &self.running;
        let listing = self.sim.listing();
        settings.google_token_url = r.token_url.clone();
        settings.google_oidc_certs_url = r.oidc_certs_url.clone();
        settings.gcp_signup_certs_url = r.signup_certs_url.clone();
        settings.procurement_url = r.procurement_url.clone();
        settings.gcp_provider_id = Some(listing.provider_id);
        settings.gcp_push_audience = Some(push_url.to_owned());
        settings.gcp_push_service_account = Some(self.sim.push_service_account());
        settings.gcp_signup_audience = Some(listing.signup_audience);
    }
}

/// The Google stand-in's block of the startup banner. `exports`: also the
/// settings to export for functions running elsewhere (`tollgate sim`).
pub fn gcp_summary(
    gcp: &GcpStandIn,
    push_url: &str,
    secrets_out: Option<&str>,
    exports: bool,
) -> String {
    let listing = gcp.sim.listing();
    let base = &gcp.running.base_url;
    let mut out = format!(
        "Google stand-in (tollgate-sim): provider {}, product {}\n",
        listing.provider_id, listing.product_external_name
    );
    out.push_str(&format!("  googleapis.com      {base}\n"));
    out.push_str(&format!(
        "  token, certs, Procurement API on that URL; `tollgate fire gcp` drives {base}/_sim\n"
    ));
    out.push_str(&format!(
        "  pushes each message to {push_url} as {} (audience: that URL)\n",
        gcp.sim.push_service_account()
    ));
    if exports {
        for (name, value) in gcp.settings(push_url) {
            out.push_str(&format!("  export {name}={value}\n"));
        }
    }
    match secrets_out {
        Some(path) => out.push_str(&format!(
            "  service account key in {path} ({SERVICE_ACCOUNT_KEY_SECRET})\n"
        )),
        None if exports => out.push_str(
            "  (pass --secrets-out <secrets.json> to hand the service account key to the functions)\n",
        ),
        None => {}
    }
    out.push_str(&format!(
        "  plans {}; sign-up tokens for {}; no accounts until `fire gcp order`\n",
        GCP_DEMO_PLANS.join(", "),
        listing.signup_audience
    ));
    out
}

/// What [`write_secrets`] changed (names only: values are never shown).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// A `github_webhook_secret` was missing and a random one was added.
    pub generated_webhook_secret: bool,
    /// An `oauth_state_key` (signs the GitHub sign-in's `state`) was
    /// missing and a random one was added.
    pub generated_state_key: bool,
}

/// Merges into the JSON object at `path` (created if missing, every other
/// secret kept) the stand-in app's credentials (`github_client_id`,
/// `github_client_secret`, `github_app_id`, `github_app_private_key`) when
/// `app` is given, a random `github_webhook_secret` unless one is there
/// (the functions and `tollgate fire` then share it), and a random
/// `oauth_state_key` unless one is there. Errors start with the path.
pub fn write_secrets(path: &Path, app: Option<&App>) -> Result<Written, String> {
    merge_secrets(path, |secrets| add_github_secrets(secrets, app))?
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Merges into the JSON object at `path` (created if missing, every other
/// secret kept) the Google stand-in's service-account key as
/// `gcp_service_account_key`, so the functions' Procurement calls
/// authenticate at the stand-in. Errors start with the path.
pub fn write_gcp_key(path: &Path, sim: &GcpSim) -> Result<(), String> {
    let key = sim.service_account_key().to_json();
    merge_secrets(path, |secrets| {
        secrets.insert(
            SERVICE_ACCOUNT_KEY_SECRET.to_owned(),
            serde_json::Value::String(key),
        );
    })
}

/// Reads the JSON object at `path` (none: empty), lets `change` edit it and
/// writes it back, owner-readable only. Errors start with the path.
fn merge_secrets<T>(
    path: &Path,
    change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) -> T,
) -> Result<T, String> {
    let fail = |e: String| format!("{}: {e}", path.display());
    let mut secrets = match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(fail("exists but is not a JSON object".into())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
        Err(e) => return Err(fail(e.to_string())),
    };
    let out = change(&mut secrets);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    let text = serde_json::to_string_pretty(&secrets).map_err(|e| fail(e.to_string()))?;
    write_private(path, &text).map_err(|e| fail(e.to_string()))?;
    Ok(out)
}

/// Adds 32 random bytes as hex (what `openssl rand -hex 32` gives) under
/// `name` unless a non-empty value is there; whether it did. Refuses rather
/// than write a guessable secret when the OS random source fails.
fn ensure_random(
    secrets: &mut serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<bool, tollgate::web::NoRandomness> {
    let has = secrets
        .get(name)
        .and_then(serde_json::Value::as_str)
        .is_some_and(|s| !s.trim().is_empty());
    if !has {
        let value = tollgate::web::random_token(32)?;
        secrets.insert(name.to_owned(), serde_json::Value::String(value));
    }
    Ok(!has)
}

fn add_github_secrets(
    secrets: &mut serde_json::Map<String, serde_json::Value>,
    app: Option<&App>,
) -> Result<Written, tollgate::web::NoRandomness> {
    let written = Written {
        generated_webhook_secret: ensure_random(secrets, WEBHOOK_SECRET)?,
        generated_state_key: ensure_random(secrets, STATE_KEY_SECRET)?,
    };
    if let Some(app) = app {
        for (k, v) in [
            ("github_client_id", app.client_id.clone()),
            ("github_client_secret", app.client_secret.clone()),
            ("github_app_id", app.app_id.to_string()),
            ("github_app_private_key", app.private_key_pem().to_owned()),
        ] {
            secrets.insert(k.to_owned(), serde_json::Value::String(v));
        }
    }
    Ok(written)
}

/// Writes `text`, readable by the owner only where the OS has modes.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        // `mode` applies only when the file is created; tighten an old one too.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(text.as_bytes())
}

/// The stand-ins' block of the startup banner.
pub fn summary(stand_ins: &StandIns, secrets_out: Option<&str>) -> String {
    let app = stand_ins.sim.app();
    let running = &stand_ins.running;
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line("GitHub stand-ins (tollgate-sim)".into());
    line(format!("  github.com          {}", running.web_url));
    line(format!("  api.github.com      {}", running.api_url));
    match secrets_out {
        Some(path) => line(format!(
            "  app id {}, client id {}; credentials in {path} (github_client_id, github_client_secret, github_app_id, github_app_private_key)",
            app.app_id, app.client_id
        )),
        None => {
            line(format!("  export TOLLGATE_GITHUB_URL={}", running.web_url));
            line(format!(
                "  export TOLLGATE_GITHUB_API_URL={}",
                running.api_url
            ));
            line(format!(
                "  app id {}, client id {}",
                app.app_id, app.client_id
            ));
            line("  (pass --secrets-out <secrets.json> to hand the app credentials to the functions)".into());
        }
    }
    match app.callback_urls.as_slice() {
        [] => line("  any redirect_uri is accepted (pass --callback-url to require one)".into()),
        urls => line(format!("  redirect_uri must be {}", urls.join(" or "))),
    }
    line(format!(
        "  signs in as {DEMO_USER_LOGIN} ({DEMO_USER_ID}); {DEMO_ORG_LOGIN} (org {DEMO_ORG_ID}): Team x{DEMO_UNITS} seats on a 14-day trial; {DEMO_USER_LOGIN}: Free"
    ));
    out
}

/// Adds `name` to the JSON secrets file at `path`, made by `make`, unless it
/// holds a non-empty value already (every other entry kept); whether it
/// did. The values `tollgate dev` needs and no stand-in provides: Q2's
/// signing secret, the entitlement-token signing key.
pub fn ensure_secret(
    path: &Path,
    name: &str,
    make: impl FnOnce() -> Result<String, String>,
) -> Result<bool, String> {
    let fail = |e: String| format!("{}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let mut secrets = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(fail("is not a JSON object".into())),
    };
    let has = secrets
        .get(name)
        .and_then(serde_json::Value::as_str)
        .is_some_and(|s| !s.trim().is_empty());
    if has {
        return Ok(false);
    }
    secrets.insert(
        name.to_owned(),
        serde_json::Value::String(make().map_err(fail)?),
    );
    let text = serde_json::to_string_pretty(&secrets).map_err(|e| fail(e.to_string()))?;
    // The file is the owner's only (`tollgate dev` created it so); writing
    // in place keeps its mode.
    std::fs::write(path, text).map_err(|e| fail(e.to_string()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_printed_google_settings_are_the_ones_the_dev_server_applies() {
        let gcp = start_gcp(IpAddr::from([127, 0, 0, 1]), 0, None)
            .await
            .unwrap();
        let push_url = "http://127.0.0.1:9/";
        let exported = gcp.settings(push_url);
        let from_env = Settings::from_lookup(|k| {
            exported
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.clone())
        });
        let mut applied = Settings::from_lookup(|_| None);
        gcp.configure(&mut applied, push_url);
        assert_eq!(from_env, applied);
        assert_eq!(applied.gcp_provider_id.as_deref(), Some("acme-public"));
        assert_eq!(applied.gcp_push_audience.as_deref(), Some(push_url));
        assert!(applied.procurement_url.starts_with("http://127.0.0.1:"));

        let text = gcp_summary(&gcp, push_url, None, true);
        for (name, value) in &exported {
            assert!(text.contains(&format!("export {name}={value}\n")), "{text}");
        }
        assert!(
            !text.contains("BEGIN PRIVATE KEY"),
            "the key is never printed"
        );
    }

    #[test]
    fn the_google_key_is_merged_into_the_secrets_file_keeping_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        std::fs::write(&path, r#"{"github_webhook_secret":"keep-me"}"#).unwrap();
        let sim = GcpSim::generate().unwrap();
        write_gcp_key(&path, &sim).unwrap();
        let stored: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(stored["github_webhook_secret"], "keep-me");
        let key: serde_json::Value =
            serde_json::from_str(stored[SERVICE_ACCOUNT_KEY_SECRET].as_str().unwrap()).unwrap();
        assert_eq!(key["client_email"], sim.service_account_key().client_email);
        std::fs::write(&path, "[]").unwrap();
        let err = write_gcp_key(&path, &sim).unwrap_err();
        assert!(err.contains("not a JSON object"), "{err}");
    }
}
