//! The command line: `tally serve [flags]`. Flags override the
//! configuration file, which overrides the defaults (see [`crate::config`]).

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};

use crate::config::Config;

/// What `tally serve` was asked to do.
#[derive(Debug)]
pub struct ServeArgs {
    pub config: Config,
    /// Sets the system admin's password (first start), or resets it.
    pub admin_password: Option<String>,
    /// Also provision the demo tenant and print its credentials.
    pub demo: bool,
}

/// Environment variable read when `--admin-password` is absent, so the
/// password need not appear in the process list.
pub const ADMIN_PASSWORD_ENV: &str = "TALLY_ADMIN_PASSWORD";

fn command() -> Command {
    let serve = Command::new("serve")
        .about("Run the PBX: SIP (UDP and TCP), the call engine, the CDR store and the REST API")
        .arg(
            Arg::new("config")
                .short('c')
                .long("config")
                .value_name("FILE")
                .value_parser(value_parser!(PathBuf))
                .help("TOML configuration file (flags override it)"),
        )
        .arg(
            Arg::new("sip-bind")
                .long("sip-bind")
                .value_name("IP")
                .value_parser(value_parser!(IpAddr))
                .help("Address SIP listens on, UDP and TCP [default: 0.0.0.0]"),
        )
        .arg(
            Arg::new("sip-port")
                .long("sip-port")
                .value_name("PORT")
                .value_parser(value_parser!(u16))
                .help("SIP port, UDP and TCP [default: 5060]"),
        )
        .arg(
            Arg::new("advertise")
                .long("advertise")
                .value_name("HOST[:PORT]")
                .help("Address written in Via and Contact [default: the SIP bind address, or the host's primary address]"),
        )
        .arg(
            Arg::new("http-bind")
                .long("http-bind")
                .value_name("IP")
                .value_parser(value_parser!(IpAddr))
                .help("Address of the REST API [default: 127.0.0.1]"),
        )
        .arg(
            Arg::new("http-port")
                .long("http-port")
                .value_name("PORT")
                .value_parser(value_parser!(u16))
                .help("Port of the REST API [default: 8887]"),
        )
        .arg(
            Arg::new("data-dir")
                .long("data-dir")
                .value_name("DIR")
                .value_parser(value_parser!(PathBuf))
                .help("Data directory: SQLite database, system admin [default: ./tally-data]"),
        )
        .arg(
            Arg::new("database")
                .long("database")
                .value_name("URL")
                .help("postgres://… to use PostgreSQL instead of SQLite in the data directory"),
        )
        .arg(
            Arg::new("node")
                .long("node")
                .value_name("N")
                .value_parser(value_parser!(u16))
                .help("This node's number in Snowflake ids, below 1024 [default: 0]"),
        )
        .arg(
            Arg::new("admin-password")
                .long("admin-password")
                .value_name("PASSWORD")
                .help(format!(
                    "System admin password: set on first start, reset on later ones \
                     (or ${ADMIN_PASSWORD_ENV}); without it a first start generates one"
                )),
        )
        .arg(
            Arg::new("demo")
                .long("demo")
                .action(ArgAction::SetTrue)
                .help("Also create the demo tenant demo.tally.local, extensions 101-105, and print their SIP credentials"),
        );
    Command::new("tally")
        .about("Tally: a multi-tenant SIP PBX with exact call detail records")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(serve)
}

/// Parses the command line; prints help or an error and exits on failure,
/// as command-line tools do.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<ServeArgs> {
    let matches = command().get_matches_from(args);
    match matches.subcommand() {
        Some(("serve", m)) => serve_args(m),
        // `subcommand_required` makes clap refuse anything else.
        _ => anyhow::bail!("unknown command"),
    }
}

fn serve_args(m: &ArgMatches) -> anyhow::Result<ServeArgs> {
    let mut config = match m.get_one::<PathBuf>("config") {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(ip) = m.get_one::<IpAddr>("sip-bind") {
        config.sip.bind = *ip;
    }
    if let Some(port) = m.get_one::<u16>("sip-port") {
        config.sip.port = *port;
    }
    if let Some(advertise) = m.get_one::<String>("advertise") {
        config.sip.advertise = Some(advertise.clone());
    }
    if let Some(ip) = m.get_one::<IpAddr>("http-bind") {
        config.http.bind = *ip;
    }
    if let Some(port) = m.get_one::<u16>("http-port") {
        config.http.port = *port;
    }
    if let Some(dir) = m.get_one::<PathBuf>("data-dir") {
        config.data_dir = dir.clone();
    }
    if let Some(url) = m.get_one::<String>("database") {
        config.database = Some(url.clone());
    }
    if let Some(node) = m.get_one::<u16>("node") {
        config.node = *node;
    }
    config.check()?;
    let admin_password = m
        .get_one::<String>("admin-password")
        .cloned()
        .or_else(|| std::env::var(ADMIN_PASSWORD_ENV).ok())
        .filter(|p| !p.is_empty());
    Ok(ServeArgs {
        config,
        admin_password,
        demo: m.get_flag("demo"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> ServeArgs {
        parse(args.iter().map(OsString::from)).unwrap()
    }

    #[test]
    fn the_command_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn flags_override_defaults() {
        let a = parse_args(&[
            "tally",
            "serve",
            "--sip-bind",
            "127.0.0.1",
            "--sip-port",
            "5080",
            "--http-port",
            "9999",
            "--data-dir",
            "/tmp/x",
            "--demo",
            "--admin-password",
            "s3cret-pass",
        ]);
        assert_eq!(a.config.sip_addr().to_string(), "127.0.0.1:5080");
        assert_eq!(a.config.http_addr().to_string(), "127.0.0.1:9999");
        assert_eq!(a.config.database_url(), "sqlite:/tmp/x/tally.db");
        assert!(a.demo);
        assert_eq!(a.admin_password.as_deref(), Some("s3cret-pass"));
    }
}
