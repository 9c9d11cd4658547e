//! `cnet-dns`: config → logging → store → sockets → serve until SIGTERM or SIGINT.

use anyhow::Context;
use clap::Parser;

use cnet_common::{
    EXIT_BAD_CONFIG, config::CommonArgs, server::Listeners, shutdown, store::Store, telemetry,
};
use cnet_dns::{Config, SERVICE};

/// cnet embedded DNS service: container names at 127.0.0.11:53 in every container.
#[derive(Debug, Parser)]
#[command(name = "cnet-dns", version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

/// hickory-server logs every query at INFO, a line per name lookup of every container.
/// Unless the operator chose a filter, its per-query lines stay out of the log.
const DEFAULT_LOG_FILTER: &str = "info,hickory_server=warn";

fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_none() {
        // SAFETY: no other thread exists yet (the runtime is built below), so nothing can
        // read the environment concurrently.
        unsafe { std::env::set_var("RUST_LOG", DEFAULT_LOG_FILTER) };
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let args = Args::parse();
    let config: Config = match cnet_common::config::load(SERVICE, &args.common) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("cnet-dns: {error}");
            std::process::exit(EXIT_BAD_CONFIG);
        }
    };
    if let Err(error) = config.validate() {
        eprintln!("cnet-dns: invalid configuration: {error}");
        std::process::exit(EXIT_BAD_CONFIG);
    }
    telemetry::init(SERVICE);
    let store_dir = config.server.store_dir(SERVICE);
    let store =
        Store::open(&store_dir).with_context(|| format!("open store {}", store_dir.display()))?;
    let listeners = Listeners::bind(SERVICE, &config.server).await?;
    cnet_dns::run(&config, store, listeners, shutdown::signal_received()).await?;
    Ok(())
}
