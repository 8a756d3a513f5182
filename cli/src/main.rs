//! `tollgate`: the local dev server and operator commands.
//!
//! - `tollgate dev [--host H] [--port P]`: serve the four functions locally
//!   (ports P..P+3, default 9101) on the store named by `TOLLGATE_STORE`
//!   (the embedded SQLite file by default).
//! - `tollgate api-key new <name> --scopes check,seats`: a new API key for
//!   entitlement-check, printed once, and the hashed secrets entry to store.
//! - `tollgate replay [--marketplace github]`: finish recorded deliveries
//!   that were never processed (GitHub does not retry).
//! - `tollgate sim [--port 9201] [--secrets-out PATH]`: local stand-ins for
//!   github.com and api.github.com (ports P and P+1), with a demo buyer.

mod api_key;
mod dev;
mod replay;
mod sim;

use std::process::ExitCode;

use tollgate::setup::Deps;

const USAGE: &str = "usage: tollgate dev [--host 127.0.0.1] [--port 9101]\n       \
                     tollgate api-key new <name> [--scopes check,seats] [--json]\n       \
                     tollgate replay [--marketplace github]\n       \
                     tollgate sim [--host 127.0.0.1] [--port 9201] [--callback-url URL] [--secrets-out PATH]";

#[tokio::main]
async fn main() -> ExitCode {
    tollgate::setup::init_telemetry();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dev") => run_dev(&args[1..]).await,
        Some("api-key") => api_key::run(&args[1..]).map(|out| print!("{out}")),
        Some("replay") => replay::run(&args[1..]).await,
        Some("sim") => sim::run(&args[1..]).await,
        _ => Err(USAGE.to_owned()),
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

async fn run_dev(args: &[String]) -> Result<(), String> {
    let host = flag(args, "--host").unwrap_or("127.0.0.1");
    let port: u16 = flag(args, "--port")
        .unwrap_or("9101")
        .parse()
        .map_err(|_| USAGE.to_owned())?;
    let deps = Deps::from_env().await.map_err(|e| e.to_string())?;
    let running = dev::start(deps.clone(), host, port).await?;
    println!("Tollgate dev server (store: {})", deps.settings.store);
    for r in &running {
        println!("  {:<18} http://{}/", r.name, r.addr);
    }
    println!(
        "Health: curl http://{}/healthz   (Ctrl-C to stop)",
        running[0].addr
    );
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}
