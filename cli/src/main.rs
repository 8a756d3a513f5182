//! `tollgate`: the local dev server and operator commands.
//!
//! One module per subcommand, each with its own clap `Args` (or
//! `Subcommand`) type and a `run`; [`Command`] lists them. Flags that mean
//! the same thing everywhere (`--host`/`--port`, `--json`, `--marketplace`)
//! are defined once, in [`args`]. Parsing never reads the config, the store
//! or the secrets: `--help` works anywhere.

mod api_key;
mod args;
mod demo;
mod dev;
mod fire;
mod link;
mod notify;
mod reconcile;
mod replay;
mod sim;
mod status;
mod token_key;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tollgate: marketplace subscriptions (GitHub, Google Cloud, Q2) for a SaaS
/// vendor — the local dev server and operator commands.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the four functions locally on the embedded store, with the GitHub, Google and Q2 stand-ins
    Dev(dev::Args),
    /// Play a marketplace against `tollgate dev`: its stand-in changes the customer's purchase and sends the signed event
    #[command(subcommand)]
    Fire(fire::Marketplace),
    /// A narrated tour of GitHub, Google and Q2 against a running `tollgate dev` (what `make demo` runs)
    Demo(demo::Args),
    /// Create API keys for entitlement-check
    #[command(subcommand)]
    ApiKey(api_key::Command),
    /// Create the key entitlement-check signs its entitlement tokens with
    #[command(subcommand)]
    TokenKey(token_key::Command),
    /// List or remove the links from an app user to the customers it is entitled through
    #[command(subcommand)]
    Link(link::Command),
    /// Change notifications: replay dead letters, or drain the outbox locally
    #[command(subcommand)]
    Notify(notify::Command),
    /// Finish recorded deliveries that were never processed
    Replay(replay::Args),
    /// Compare every subscription with its marketplace and fix drift (exit 3: --dry-run found drift)
    Reconcile(reconcile::Args),
    /// Run the local stand-ins for github.com, api.github.com, Google (token, keys, Procurement API, Pub/Sub push) and Q2
    Sim(sim::Args),
    /// Show a customer's subscriptions and recent events, and pending deliveries (exit 1 if any)
    Status(status::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    // Usage errors exit 2, `--help`/`--version` 0, before anything is read.
    let cli = Cli::parse();
    tollgate::setup::init_telemetry();
    let result = match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Fire(marketplace) => fire::run(marketplace).await,
        Command::Demo(args) => demo::run(args).await,
        Command::ApiKey(command) => api_key::run(command).map(|out| print!("{out}")),
        Command::TokenKey(command) => token_key::run(command).map(|out| print!("{out}")),
        Command::Link(command) => link::run(command).await,
        Command::Notify(command) => notify::run(command).await,
        Command::Replay(args) => replay::run(args).await,
        // Its own exit codes (0 in sync/fixed, 1 errors, 3 drift in a dry run).
        Command::Reconcile(args) => return reconcile::run(args).await,
        Command::Sim(args) => sim::run(args).await,
        Command::Status(args) => status::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
