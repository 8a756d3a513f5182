//! `tollgate sim`: the local stand-ins for github.com and api.github.com
//! (`tollgate-sim`), seeded with a demo buyer, for `make dev`.
//!
//! Point the functions at the printed URLs (`TOLLGATE_GITHUB_URL`,
//! `TOLLGATE_GITHUB_API_URL`). With `--secrets-out`, the stand-in app's
//! credentials (`github_client_id`, `github_client_secret`, `github_app_id`,
//! `github_app_private_key`) are merged into that JSON secrets file, so
//! `TOLLGATE_SECRETS=file:<it>` makes the functions use them; they are never
//! printed.
//!
//! Demo data, matching the GitHub plan ids of `tollgate.example.toml`: user
//! `octocat` (id 1) signs in; org `acme` (id 2001, octocat a member) is on a
//! 14-day trial of `Team` (plan 1002, per-unit) with 5 seats; octocat's
//! personal account has `Free` (plan 1001).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use chrono::{Duration, Utc};
use tollgate_sim::github::{App, GithubSim, Org, Plan, PriceModel, Purchase, Running, User};

use super::flag;

pub const USAGE: &str =
    "tollgate sim [--host 127.0.0.1] [--port 9201] [--callback-url URL] [--secrets-out PATH]";

pub async fn run(args: &[String]) -> Result<(), String> {
    let host: IpAddr = flag(args, "--host")
        .unwrap_or("127.0.0.1")
        .parse()
        .map_err(|_| format!("--host: an IP address\nusage: {USAGE}"))?;
    let port: u16 = flag(args, "--port")
        .unwrap_or("9201")
        .parse()
        .map_err(|_| format!("--port: a port number\nusage: {USAGE}"))?;
    // Port 0: both servers on ports the OS picks.
    let api_port = if port == 0 {
        0
    } else {
        port.checked_add(1).ok_or("--port too high")?
    };

    let mut app = App::generate(1).map_err(|e| e.to_string())?;
    if let Some(url) = flag(args, "--callback-url") {
        app = app.with_callback_url(url);
    }
    let sim = GithubSim::new(app);
    seed(&sim);
    let running = sim
        .start_on(SocketAddr::new(host, port), SocketAddr::new(host, api_port))
        .await
        .map_err(|e| e.to_string())?;
    let secrets_out = flag(args, "--secrets-out");
    if let Some(path) = secrets_out {
        write_secrets(Path::new(path), &sim.app())?;
    }
    print_summary(&sim, &running, secrets_out);
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}

fn seed(sim: &GithubSim) {
    sim.add_plan(Plan::new(1001, 1, "Free", PriceModel::Free));
    sim.add_plan(
        Plan::new(1002, 2, "Team", PriceModel::PerUnit)
            .with_free_trial()
            .with_prices(400, 4000),
    );
    sim.add_plan(Plan::new(1003, 3, "Business", PriceModel::FlatRate).with_prices(9900, 99000));
    sim.add_user(User::new(1, "octocat").with_name("The Octocat"));
    sim.add_org(
        Org::new(2001, "acme")
            .with_billing_email("billing@acme.example")
            .with_member(1),
    );
    sim.add_purchase(
        Purchase::new(2001, 1002)
            .with_units(5)
            .on_trial_until(Utc::now() + Duration::days(14)),
    );
    sim.add_purchase(Purchase::new(1, 1001).unbilled());
    sim.sign_in(1);
}

/// Merges the stand-in app's credentials into the JSON object at `path`
/// (created if missing), keeping every other secret there.
fn write_secrets(path: &Path, app: &App) -> Result<(), String> {
    let fail = |e: String| format!("--secrets-out {}: {e}", path.display());
    let mut secrets = match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(fail("exists but is not a JSON object".into())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
        Err(e) => return Err(fail(e.to_string())),
    };
    for (k, v) in [
        ("github_client_id", app.client_id.clone()),
        ("github_client_secret", app.client_secret.clone()),
        ("github_app_id", app.app_id.to_string()),
        ("github_app_private_key", app.private_key_pem().to_owned()),
    ] {
        secrets.insert(k.to_owned(), serde_json::Value::String(v));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    let text = serde_json::to_string_pretty(&secrets).map_err(|e| fail(e.to_string()))?;
    write_private(path, &text).map_err(|e| fail(e.to_string()))
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

fn print_summary(sim: &GithubSim, running: &Running, secrets_out: Option<&str>) {
    let app = sim.app();
    println!("GitHub stand-ins (tollgate-sim)");
    println!("  github.com          {}", running.web_url);
    println!("  api.github.com      {}", running.api_url);
    println!("  export TOLLGATE_GITHUB_URL={}", running.web_url);
    println!("  export TOLLGATE_GITHUB_API_URL={}", running.api_url);
    println!("  app id {}, client id {}", app.app_id, app.client_id);
    match secrets_out {
        Some(path) => println!(
            "  app credentials written to {path} (github_client_id, github_client_secret, github_app_id, github_app_private_key)"
        ),
        None => println!(
            "  (pass --secrets-out <secrets.json> to hand the app credentials to the functions)"
        ),
    }
    if app.callback_urls.is_empty() {
        println!("  any redirect_uri is accepted (pass --callback-url to require one)");
    }
    println!(
        "  signs in as octocat (1); acme (org 2001): Team x5 seats on a 14-day trial; octocat: Free"
    );
    println!("Ready (Ctrl-C to stop)");
}
