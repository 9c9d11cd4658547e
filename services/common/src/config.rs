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
    /// `--listen-tcp` and `--insecure`; `None` when neither is given.
    #[command(flatten)]
    pub listen_tcp: Option<TcpArgs>,
}

/// The TCP listener's flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TcpArgs {
    /// Also listen on this TCP address (e.g. 127.0.0.1:7411). Needs TLS with client
    /// certificates ([server.tls] in the config file) or --insecure.
    #[arg(long)]
    pub listen_tcp: Option<SocketAddr>,
    /// Serve --listen-tcp in plaintext with no authentication (testing on loopback only:
    /// whoever reaches the port controls the service). Logs a warning at start.
    #[arg(long)]
    pub insecure: bool,
}

/// Settings of the gRPC server part, the `[server]` table of every service's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub runtime_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Unix socket path; default `<runtime_dir>/<service>.sock`.
    pub socket: Option<PathBuf>,
    /// Group of the Unix socket (a name or a numeric gid), like docker.sock's `docker`
    /// group: its members may talk to the service. Default: the service's own group.
    pub socket_group: Option<SocketGroup>,
    /// Also listen on this TCP address: with `tls` (mutual TLS), or with `insecure`.
    pub listen_tcp: Option<SocketAddr>,
    /// Serve `listen_tcp` in plaintext with no authentication. For tests on loopback.
    pub insecure: bool,
    /// TLS of the `listen_tcp` listener; clients must present a certificate signed by
    /// `client_ca`.
    pub tls: Option<ServerTlsFiles>,
    /// TLS this service uses when it connects to `https://` targets (the gateway, to
    /// the other services): the CA it trusts and the certificate it presents.
    pub client_tls: Option<ClientTlsFiles>,
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
            socket_group: None,
            listen_tcp: None,
            insecure: false,
            tls: None,
            client_tls: None,
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

    /// The gid the Unix socket is given, if `socket_group` is set.
    pub fn socket_gid(&self) -> Result<Option<u32>, String> {
        self.socket_group.as_ref().map(SocketGroup::gid).transpose()
    }

    /// Checks who may talk: the socket group exists, a TCP listener has TLS (whose files
    /// load) or an explicit insecure opt-in, and the client TLS files load. Every
    /// service runs this at start and exits 64 with the message otherwise.
    pub fn validate(&self) -> Result<(), String> {
        self.socket_gid()?;
        if self.insecure && self.tls.is_some() {
            return Err("server.insecure and [server.tls] are both set: choose one (TLS)".into());
        }
        if let Some(addr) = self.listen_tcp
            && self.tls.is_none()
            && !self.insecure
        {
            return Err(format!(
                "listen_tcp = {addr} needs TLS with client certificates ([server.tls] cert, \
                 key and client_ca) or an explicit insecure = true / --insecure to serve \
                 plaintext gRPC with no authentication (loopback testing only)"
            ));
        }
        if let Some(files) = &self.tls {
            crate::tls::server_config(files).map_err(|e| e.to_string())?;
        }
        if let Some(files) = &self.client_tls {
            crate::tls::client_config(files).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A group given by name (`docker`) or by numeric gid (`999`, or `"999"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SocketGroup {
    Gid(u32),
    Name(String),
}

impl SocketGroup {
    /// The gid, looking the name up in the group database (`/etc/group`, NSS).
    pub fn gid(&self) -> Result<u32, String> {
        let name = match self {
            SocketGroup::Gid(gid) => return Ok(*gid),
            SocketGroup::Name(name) => name,
        };
        if let Ok(gid) = name.parse::<u32>() {
            return Ok(gid);
        }
        if name.is_empty() {
            return Err("socket_group is empty: give a group name or a numeric gid".into());
        }
        match nix::unistd::Group::from_name(name) {
            Ok(Some(group)) => Ok(group.gid.as_raw()),
            Ok(None) => Err(format!(
                "socket_group {name:?}: no such group (create it, e.g. `groupadd --system \
                 {name}`, or give a numeric gid)"
            )),
            Err(error) => Err(format!("socket_group {name:?}: cannot look it up: {error}")),
        }
    }
}

/// `[server.tls]`: PEM files of the TCP listener. All three are required: cnet serves
/// TCP only with mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsFiles {
    /// The server's certificate chain (leaf first).
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1); keep it mode 0600.
    pub key: PathBuf,
    /// CA certificate(s) that client certificates must be signed by.
    pub client_ca: PathBuf,
}

/// `[server.client_tls]`, or the CLI's `--tlscacert --tlscert --tlskey`: PEM files a
/// client uses for `https://` targets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsFiles {
    /// CA certificate(s) the service's certificate must be signed by.
    pub ca: PathBuf,
    /// The client's certificate chain; the services require one.
    pub cert: Option<PathBuf>,
    /// Its private key; required with `cert`.
    pub key: Option<PathBuf>,
    /// Name to verify the service's certificate against; default: the target's host.
    pub server_name: Option<String>,
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
    if let Some(tcp) = &args.listen_tcp {
        if let Some(addr) = &tcp.listen_tcp {
            figment = figment.merge(Serialized::default("server.listen_tcp", addr));
        }
        if tcp.insecure {
            figment = figment.merge(Serialized::default("server.insecure", true));
        }
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
