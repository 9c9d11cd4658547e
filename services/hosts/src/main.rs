//! `cnet-hosts`: config → logging → store → sockets → serve until SIGTERM or SIGINT.

use clap::Parser;
use cnet_common::{config::CommonArgs, service, shutdown};
use cnet_hosts::{Config, SERVICE};

/// cnet hosts and links service: containers' /etc/hosts, /etc/resolv.conf, /etc/hostname.
#[derive(Debug, Parser)]
#[command(name = "cnet-hosts", version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let service::Prepared { config, store, listeners } =
        service::prepare::<Config>(SERVICE, &args.common, "info").await?;
    cnet_hosts::run(&config, store, listeners, shutdown::signal_received()).await?;
    Ok(())
}
