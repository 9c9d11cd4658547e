//! `cnet-nat`: config → logging → store → sockets → serve until SIGTERM or SIGINT.

use clap::Parser;
use cnet_common::{config::CommonArgs, service, shutdown};
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
    let service::Prepared { config, store, listeners } =
        service::prepare::<Config>(SERVICE, &args.common, "info").await?;
    cnet_nat::run(&config, store, listeners, shutdown::signal_received()).await?;
    Ok(())
}
