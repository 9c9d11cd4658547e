//! Logging: structured lines on stderr (stdout is for machine output), filtered with
//! `RUST_LOG` (default chosen by the service, normally `info`).

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber for `service`. Safe to call once per process.
pub fn init(service: &str, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    tracing::debug!(service, "logging initialised");
}
