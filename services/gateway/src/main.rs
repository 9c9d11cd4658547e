//! `cnet-gateway`: config → logging → store → listen → reconcile and serve until SIGTERM.

use clap::Parser;
use cnet_common::{EXIT_BAD_CONFIG, config, server::Listeners, shutdown, store::Store, telemetry};
use cnet_gateway::{Config, SERVICE};

/// cnet's public API: networks and containers.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: config::CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config: Config = match config::load(SERVICE, &args.common) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("cnet-gateway: {error}");
            std::process::exit(EXIT_BAD_CONFIG);
        }
    };
    telemetry::init(SERVICE);
    let store = Store::open(&config.server.store_dir(SERVICE))?;
    let listeners = Listeners::bind(SERVICE, &config.server).await?;
    cnet_gateway::run(&config, store, listeners, shutdown::signal_received()).await
}
