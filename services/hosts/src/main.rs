//! `cnet-hosts`: config → logging → store → sockets → serve until SIGTERM or SIGINT.

use anyhow::Context;
use clap::Parser;

use cnet_common::{
    EXIT_BAD_CONFIG, config::CommonArgs, server::Listeners, shutdown, store::Store, telemetry,
};
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
    let config: Config = match cnet_common::config::load(SERVICE, &args.common) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("cnet-hosts: {error}");
            std::process::exit(EXIT_BAD_CONFIG);
        }
    };
    telemetry::init(SERVICE);
    let store_dir = config.server.store_dir(SERVICE);
    let store =
        Store::open(&store_dir).with_context(|| format!("open store {}", store_dir.display()))?;
    let listeners = Listeners::bind(SERVICE, &config.server).await?;
    cnet_hosts::run(&config, store, listeners, shutdown::signal_received()).await?;
    Ok(())
}
