//! One config story for every service: defaults, then an optional TOML file, then
//! `CNET_<SERVICE>__KEY` environment variables, then command-line flags.
//!
//! The runtime dir (sockets, namespaces) and the state dir (sled stores) are shared by
//! all services of one cluster, so they also come from `CNET_RUNTIME_DIR` and
//! `CNET_STATE_DIR`: several clusters can run side by side, e.g. one per test.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub const DEFAULT_RUNTIME_DIR: &str = "/run/cnet";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cnet";

/// Flags every service binary accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// TOML file with this service's settings.
    #[arg(long, env = "CNET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for Unix sockets and namespace files.
    #[arg(long, env = "CNET_RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// Directory for persistent state (one sled store per service).
    #[arg(long, env = "CNET_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Also listen on this TCP address (e.g. 127.0.0.1:7411).
    #[arg(long)]
    pub listen_tcp: Option<SocketAddr>,
}

/// Settings of the gRPC server part, the `[server]` table of every service's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub runtime_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Unix socket path; default `<runtime_dir>/<service>.sock`.
    pub socket: Option<PathBuf>,
    pub listen_tcp: Option<SocketAddr>,
    /// Serve Prometheus metrics over HTTP on this address (e.g. 127.0.0.1:9411); off
    /// when unset.
    pub metrics_listen: Option<SocketAddr>,
    /// Deadline for one request, in seconds.
    pub request_timeout_secs: u64,
    /// Requests served at the same time before callers queue.
    pub max_concurrent_requests: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            runtime_dir: DEFAULT_RUNTIME_DIR.into(),
            state_dir: DEFAULT_STATE_DIR.into(),
            socket: None,
            listen_tcp: None,
            metrics_listen: None,
            request_timeout_secs: 60,
            max_concurrent_requests: 256,
        }
    }
}

impl ServerConfig {
    pub fn socket_path(&self, service: &str) -> PathBuf {
        self.socket.clone().unwrap_or_else(|| socket_path(&self.runtime_dir, service))
    }

    /// Directory of this service's sled store.
    pub fn store_dir(&self, service: &str) -> PathBuf {
        self.state_dir.join(service)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

/// Where a service of the cluster rooted at `runtime_dir` listens.
pub fn socket_path(runtime_dir: &Path, service: &str) -> PathBuf {
    runtime_dir.join(format!("{service}.sock"))
}

/// A service's config: anything with a `[server]` table.
pub trait ServiceConfig: Serialize + DeserializeOwned + Default {
    fn server(&self) -> &ServerConfig;

    /// Checks what serde cannot; the service exits 64 with this message otherwise.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

/// Loads `C` for `service` from defaults, file, environment and flags, in that order.
pub fn load<C: ServiceConfig>(service: &str, args: &CommonArgs) -> Result<C, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(C::default()));
    if let Some(file) = &args.config {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment =
        figment.merge(Env::prefixed(&format!("CNET_{}__", service.to_uppercase())).split("__"));
    if let Some(dir) = &args.runtime_dir {
        figment = figment.merge(Serialized::default("server.runtime_dir", dir));
    }
    if let Some(dir) = &args.state_dir {
        figment = figment.merge(Serialized::default("server.state_dir", dir));
    }
    if let Some(addr) = &args.listen_tcp {
        figment = figment.merge(Serialized::default("server.listen_tcp", addr));
    }
    figment.extract().map_err(|e| ConfigError(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct TestConfig {
        server: ServerConfig,
        answer: u32,
    }

    impl ServiceConfig for TestConfig {
        fn server(&self) -> &ServerConfig {
            &self.server
        }
    }

    fn args(config: Option<PathBuf>) -> CommonArgs {
        CommonArgs { config, runtime_dir: None, state_dir: None, listen_tcp: None }
    }

    #[test]
    fn file_then_flags_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("svc.toml");
        std::fs::write(&file, "answer = 42\n[server]\nstate_dir = \"/tmp/x\"\n").unwrap();
        let mut args = args(Some(file));
        args.runtime_dir = Some("/tmp/rt".into());
        let config: TestConfig = load("testsvc", &args).unwrap();
        assert_eq!(config.answer, 42);
        assert_eq!(config.server.state_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.server.runtime_dir, PathBuf::from("/tmp/rt"));
        assert_eq!(config.server().socket_path("testsvc"), PathBuf::from("/tmp/rt/testsvc.sock"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("svc.toml");
        std::fs::write(&file, "anwser = 42\n").unwrap();
        let error = load::<TestConfig>("testsvc", &args(Some(file))).unwrap_err();
        assert!(error.to_string().contains("anwser"), "{error}");
    }
}
