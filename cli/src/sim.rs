//! `tollgate sim`: the local stand-ins for github.com and api.github.com
//! (`tollgate-sim`), seeded with a demo buyer. `tollgate dev` starts the same
//! stand-ins in-process through [`start`] and [`write_secrets`]; this command
//! runs them on their own, e.g. beside `tollgate dev --no-sim`.
//!
//! Point the functions at the printed URLs (`TOLLGATE_GITHUB_URL`,
//! `TOLLGATE_GITHUB_API_URL`). With `--secrets-out`, the stand-in app's
//! credentials (`github_client_id`, `github_client_secret`, `github_app_id`,
//! `github_app_private_key`) are merged into that JSON secrets file, plus a
//! random `github_webhook_secret` if it has none, so
//! `TOLLGATE_SECRETS=file:<it>` makes the functions use them; they are never
//! printed.
//!
//! Demo data, matching the GitHub plan ids of `tollgate.example.toml`: user
//! `octocat` (id 1) signs in; org `acme` (id 2001, octocat a member) is on a
//! 14-day trial of `Team` (plan 1002, per-unit) with 5 seats; octocat's
//! personal account has `Free` (plan 1001). `Business` (1003) is flat-rate.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use tollgate::marketplace::github::SECRET_NAME as WEBHOOK_SECRET;
use tollgate_sim::github::{App, GithubSim, Org, Plan, PriceModel, Purchase, Running, User};

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

// `tollgate sim`: github.com's stand-in on `--port`, api.github.com's on +1.
#[derive(Debug, clap::Args)]
#[command(after_help = "Point the functions at the printed URLs \
(TOLLGATE_GITHUB_URL, TOLLGATE_GITHUB_API_URL).")]
pub struct Args {
    #[command(flatten)]
    pub listen: Listen<DEFAULT_PORT>,
    /// Accept only this OAuth redirect_uri, as GitHub does for a GitHub App
    #[arg(long, value_name = "URL")]
    pub callback_url: Option<String>,
    /// Merge the stand-in app's credentials (and a webhook secret if missing) into this JSON secrets file
    #[arg(long, value_name = "PATH")]
    pub secrets_out: Option<PathBuf>,
}

pub async fn run(args: Args) -> Result<(), String> {
    let Listen { host, port } = args.listen;
    let stand_ins = start(host, port, args.callback_url.as_deref()).await?;
    let secrets_out = args.secrets_out.as_deref().map(|p| p.display().to_string());
    if let Some(path) = &args.secrets_out {
        write_secrets(path, Some(&stand_ins.sim.app()))
            .map_err(|e| format!("--secrets-out {e}"))?;
    }
    print!("{}", summary(&stand_ins, secrets_out.as_deref()));
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

/// What [`write_secrets`] changed (names only: values are never shown).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// A `github_webhook_secret` was missing and a random one was added.
    pub generated_webhook_secret: bool,
}

/// Merges into the JSON object at `path` (created if missing, every other
/// secret kept) the stand-in app's credentials (`github_client_id`,
/// `github_client_secret`, `github_app_id`, `github_app_private_key`) when
/// `app` is given, and a random `github_webhook_secret` unless one is there:
/// the functions and `tollgate fire` then share it. Errors start with the path.
pub fn write_secrets(path: &Path, app: Option<&App>) -> Result<Written, String> {
    let fail = |e: String| format!("{}: {e}", path.display());
    let mut secrets = match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(fail("exists but is not a JSON object".into())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
        Err(e) => return Err(fail(e.to_string())),
    };
    let mut written = Written::default();
    let has_webhook_secret = secrets
        .get(WEBHOOK_SECRET)
        .and_then(serde_json::Value::as_str)
        .is_some_and(|s| !s.trim().is_empty());
    if !has_webhook_secret {
        // 32 random bytes, hex: what `openssl rand -hex 32` would give.
        secrets.insert(
            WEBHOOK_SECRET.to_owned(),
            serde_json::Value::String(tollgate::web::random_token(32)),
        );
        written.generated_webhook_secret = true;
    }
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
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    let text = serde_json::to_string_pretty(&secrets).map_err(|e| fail(e.to_string()))?;
    write_private(path, &text).map_err(|e| fail(e.to_string()))?;
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
