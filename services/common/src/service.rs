//! What every service binary does before it serves: load its config (exiting 64, as
//! operators' tooling expects, when it is invalid, including who-may-talk settings: an
//! unknown socket group, TCP without TLS or `insecure`, unreadable TLS files), start
//! logging, set the default client TLS, open its store and bind its sockets.

use std::path::PathBuf;

use crate::{
    EXIT_BAD_CONFIG, client,
    config::{self, CommonArgs, ServiceConfig},
    server::Listeners,
    store::{Store, StoreError},
    telemetry,
};

pub struct Prepared<C> {
    pub config: C,
    pub store: Store,
    pub listeners: Listeners,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("open store {dir}: {source}")]
    Store { dir: PathBuf, source: StoreError },
    #[error(transparent)]
    Listen(#[from] std::io::Error),
}

/// `log_filter` is the default for `RUST_LOG`.
pub async fn prepare<C: ServiceConfig>(
    service: &str,
    args: &CommonArgs,
    log_filter: &str,
) -> Result<Prepared<C>, StartupError> {
    let config: C = config::load(service, args).unwrap_or_else(|error| bad_config(service, error));
    if let Err(error) = config.server().validate().and_then(|()| config.validate()) {
        bad_config(service, format!("invalid configuration: {error}"));
    }
    if let Some(files) = &config.server().client_tls {
        let tls = crate::tls::client_config(files)
            .unwrap_or_else(|error| bad_config(service, format!("invalid configuration: {error}")));
        client::set_default_tls(Some(tls));
    }
    telemetry::init(service, log_filter);
    crate::otlp_metrics::start(service);
    let dir = config.server().store_dir(service);
    let store = Store::open(&dir).map_err(|source| StartupError::Store { dir, source })?;
    let listeners = Listeners::bind(service, config.server()).await?;
    Ok(Prepared { config, store, listeners })
}

fn bad_config(service: &str, error: impl std::fmt::Display) -> ! {
    eprintln!("cnet-{service}: {error}");
    std::process::exit(EXIT_BAD_CONFIG)
}
