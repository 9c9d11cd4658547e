//! `cnet-bridge`: config, logging, store and sockets, then the agent until SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use cnet_bridge::{Config, SERVICE, run};
use cnet_common::{
    EXIT_BAD_CONFIG,
    config::{CommonArgs, load},
    server::Listeners,
    shutdown::signal_received,
    store::Store,
    telemetry,
};

/// cnet's bridge agent: Linux bridges, veth pairs and container namespaces.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config: Config = match load(SERVICE, &args.common) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("cnet-bridge: {error}");
            return ExitCode::from(EXIT_BAD_CONFIG as u8);
        }
    };
    telemetry::init(SERVICE);
    match start(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn start(config: Config) -> anyhow::Result<()> {
    let store_dir = config.server.store_dir(SERVICE);
    let store = Store::open(&store_dir).with_context(|| format!("open {}", store_dir.display()))?;
    let listeners = Listeners::bind(SERVICE, &config.server).await?;
    run(&config, store, listeners, signal_received()).await?;
    Ok(())
}
