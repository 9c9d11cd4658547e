//! `cnet-bridge`: config → logging → store → sockets → serve until SIGTERM or SIGINT.

use clap::Parser;
use cnet_bridge::{Config, SERVICE};
use cnet_common::{config::CommonArgs, service, shutdown};

/// cnet's bridge agent: Linux bridges, veth pairs and container namespaces.
#[derive(Debug, Parser)]
#[command(name = "cnet-bridge", version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let service::Prepared { config, store, listeners } =
        service::prepare::<Config>(SERVICE, &args.common, "info").await?;
    cnet_bridge::run(&config, store, listeners, shutdown::signal_received()).await?;
    Ok(())
}
