//! Flags shared by several subcommands, defined once so they read and behave
//! the same everywhere.

use std::net::IpAddr;

/// `--host`/`--port` of a command that listens; `PORT` is its default port.
///
/// (`default_value`, not `default_value_t`: the latter keeps the rendered
/// default in one static shared by every `PORT`.)
#[derive(Debug, Clone, clap::Args)]
pub struct Listen<const PORT: u16> {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// First port to listen on (0: ports the OS picks)
    #[arg(long, default_value = PORT.to_string())]
    pub port: u16,
}

/// `--json`: print one JSON object instead of text, for scripts.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Json {
    /// Print one JSON object on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// `--marketplace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Marketplace {
    /// GitHub Marketplace
    Github,
    /// Google Cloud Marketplace
    Gcp,
    /// Q2's banking marketplace
    Q2,
}

impl From<Marketplace> for tollgate::model::Marketplace {
    fn from(m: Marketplace) -> Self {
        match m {
            Marketplace::Github => Self::Github,
            Marketplace::Gcp => Self::Gcp,
            Marketplace::Q2 => Self::Q2,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{Parser, ValueEnum};

    use super::*;
    use crate::{Cli, Command};

    #[test]
    fn each_listening_command_has_its_own_default_port() {
        let parse = |argv: &[&str]| Cli::try_parse_from(argv).unwrap().command;
        let Command::Dev(dev) = parse(&["tollgate", "dev"]) else {
            unreachable!()
        };
        let Command::Sim(sim) = parse(&["tollgate", "sim"]) else {
            unreachable!()
        };
        assert_eq!((dev.listen.port, sim.listen.port), (9101, 9201));
        assert_eq!(dev.listen.host, IpAddr::from([127, 0, 0, 1]));
        let Command::Sim(sim) = parse(&["tollgate", "sim", "--port", "0", "--host", "::1"]) else {
            unreachable!()
        };
        assert_eq!(
            (sim.listen.host, sim.listen.port),
            ("::1".parse().unwrap(), 0)
        );
    }

    #[test]
    fn marketplace_values_are_the_model_names() {
        for m in Marketplace::value_variants() {
            let name = m.to_possible_value().unwrap();
            assert_eq!(
                name.get_name(),
                tollgate::model::Marketplace::from(*m).as_str()
            );
        }
    }
}
