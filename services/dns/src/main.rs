//! `cnet-dns`: config → logging → store → sockets → serve until SIGTERM or SIGINT.

use clap::Parser;
use cnet_common::{config::CommonArgs, service, shutdown};
use cnet_dns::{Config, SERVICE};

/// cnet embedded DNS service: container names at 127.0.0.11:53 in every container.
#[derive(Debug, Parser)]
#[command(name = "cnet-dns", version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

/// hickory-server, which serves the TCP side, logs every query at INFO, a line per name
/// lookup. Unless the operator chose a filter, its per-query lines stay out of the log.
const DEFAULT_LOG_FILTER: &str = "info,hickory_server=warn";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let service::Prepared { config, store, listeners } =
        service::prepare::<Config>(SERVICE, &args.common, DEFAULT_LOG_FILTER).await?;
    cnet_dns::run(&config, store, listeners, shutdown::signal_received()).await?;
    Ok(())
}
