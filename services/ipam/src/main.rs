//! `cnet-ipam`: config → logging → store → sockets → serve until SIGTERM or SIGINT.

use clap::Parser;
use cnet_common::{config::CommonArgs, service, shutdown};
use cnet_ipam::{Config, SERVICE};

/// cnet IP address management service.
#[derive(Debug, Parser)]
#[command(name = "cnet-ipam", version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let service::Prepared { config, store, listeners } =
        service::prepare::<Config>(SERVICE, &args.common, "info").await?;
    cnet_ipam::run(&config, store, listeners, shutdown::signal_received()).await?;
    Ok(())
}
