//! `tollgate`: the local dev server and operator commands.
//!
//! - `tollgate dev [--host H] [--port P] [--no-sim]`: serve the four
//!   functions locally (ports P..P+3, default 9101) on the store named by
//!   `TOLLGATE_STORE` (the embedded SQLite file by default), wired to the
//!   GitHub stand-ins (ports P+100, P+101) unless `--no-sim`.
//! - `tollgate fire github <action> …`: send a signed GitHub Marketplace
//!   `marketplace_purchase` delivery to the local purchase-webhook.
//! - `tollgate api-key new <name> --scopes check,seats`: a new API key for
//!   entitlement-check, printed once, and the hashed secrets entry to store.
//! - `tollgate replay [--marketplace github]`: finish recorded deliveries
//!   that were never processed (GitHub does not retry).
//! - `tollgate sim [--port 9201] [--secrets-out PATH]`: local stand-ins for
//!   github.com and api.github.com (ports P and P+1), with a demo buyer.

mod api_key;
mod dev;
mod fire;
mod replay;
mod sim;

use std::process::ExitCode;

fn usage() -> String {
    format!(
        "usage: {}\n       {}\n       \
         tollgate api-key new <name> [--scopes check,seats] [--json]\n       \
         tollgate replay [--marketplace github]\n       {}",
        dev::USAGE,
        fire::USAGE,
        sim::USAGE
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    tollgate::setup::init_telemetry();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dev") => dev::run(&args[1..]).await,
        Some("fire") => fire::run(&args[1..]).await,
        Some("api-key") => api_key::run(&args[1..]).map(|out| print!("{out}")),
        Some("replay") => replay::run(&args[1..]).await,
        Some("sim") => sim::run(&args[1..]).await,
        _ => Err(usage()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads `--name value` from `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// Reads `--host` (default 127.0.0.1) and `--port` (default `default_port`).
fn host_and_port(
    args: &[String],
    default_port: &str,
    usage: &str,
) -> Result<(std::net::IpAddr, u16), String> {
    let host = flag(args, "--host")
        .unwrap_or("127.0.0.1")
        .parse()
        .map_err(|_| format!("--host: an IP address\nusage: {usage}"))?;
    let port = flag(args, "--port")
        .unwrap_or(default_port)
        .parse()
        .map_err(|_| format!("--port: a port number\nusage: {usage}"))?;
    Ok((host, port))
}
