//! The `cnet` command line. It speaks only to the gateway's public gRPC API
//! (`cnet.gateway.v1`), except for three things that need the host itself: `exec`
//! enters a container's namespaces, `run`/`logs` read the container's log file, and
//! `up`/`down` start and stop the cluster's service processes.
//!
//! Output contract: tables and JSON on stdout, every diagnostic on stderr as
//! `Error: <message>`. Exit codes: 0 ok, 1 failure, 125 when `run`/`create` fail
//! (Docker's convention), the container's or command's own code for `run` and `exec`.

pub mod cli;
pub mod commands;
pub mod gateway;
pub mod output;
pub mod ports;
pub mod supervisor;

use cli::Cli;

/// A failure with its own exit code, for the few places that need one other than the
/// command's default (exec's 126/127, a container that is not running).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Runs one command line and returns the process exit code, having printed any error.
pub fn run(cli: Cli) -> i32 {
    let default_code = cli.command.failure_code();
    match commands::execute(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:#}");
            error.downcast_ref::<Failure>().map_or(default_code, |failure| failure.code)
        }
    }
}
