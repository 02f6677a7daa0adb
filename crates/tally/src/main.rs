//! `tally`, the PBX binary (DESIGN.md: `crates/tally`): configuration, the
//! runtime shell around the sans-IO cores (sockets, timers, tasks), the
//! store, and for now the REST API.
//!
//! ```text
//! tally serve [--config tally.toml] [--sip-port 5060] [--http-port 8887]
//!             [--data-dir ./tally-data] [--database postgres://…]
//!             [--admin-password …] [--demo]
//! ```
//!
//! Modules, in the order a SIP message meets them: [`transport`] (UDP and
//! TCP listeners: parse, check, reject), [`shard`] (the task owning
//! `pbx::Engine`), [`cdr_commit`] (builders and the store writer),
//! [`bindings`] (registrations to the store and back). Around them:
//! [`serve`] (start-up and shutdown), [`api`] (REST), [`provision`] and
//! [`demo`] (tenants and users), [`admin`] (the system admin account),
//! [`config`] and [`cli`].

mod admin;
mod api;
mod apps;
mod bindings;
mod cdr_commit;
mod cli;
mod clock;
mod cluster;
mod config;
mod console;
mod delivery;
mod demo;
mod directory;
mod fd_limit;
mod ids;
mod media;
mod metrics;
mod provision;
mod random;
mod secret_key;
mod serve;
mod shard;
mod sip_thread;
mod transport;
mod trunks;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args_os()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    // Logs go to stderr; stdout carries only what a person must read
    // (generated credentials).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
