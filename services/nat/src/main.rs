//! `cnet-nat`: config → logging → store → sockets → serve until SIGTERM or SIGINT.

use anyhow::Context;
use clap::Parser;

use cnet_common::{
    EXIT_BAD_CONFIG, config::CommonArgs, server::Listeners, shutdown, store::Store, telemetry,
};
use cnet_nat::{Config, SERVICE};

/// cnet NAT and port-publishing service.
#[derive(Debug, Parser)]
#[command(name = "cnet-nat", version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config: Config = match cnet_common::config::load(SERVICE, &args.common) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("cnet-nat: {error}");
            std::process::exit(EXIT_BAD_CONFIG);
        }
    };
    if let Err(error) = config.validate() {
        eprintln!("cnet-nat: invalid configuration: {error}");
        std::process::exit(EXIT_BAD_CONFIG);
    }
    telemetry::init(SERVICE);
    let store_dir = config.server.store_dir(SERVICE);
    let store =
        Store::open(&store_dir).with_context(|| format!("open store {}", store_dir.display()))?;
    let listeners = Listeners::bind(SERVICE, &config.server).await?;
    cnet_nat::run(&config, store, listeners, shutdown::signal_received()).await?;
    Ok(())
}
