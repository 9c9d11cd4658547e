//! The command line as clap sees it: global flags, subcommands and their arguments.
//! Flag names follow Docker's so that the lab's commands work with `docker` replaced by
//! `cnet`. Nothing here talks to the gateway; see `commands` for that.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use cnet_common::config::{ClientTlsFiles, DEFAULT_RUNTIME_DIR, DEFAULT_STATE_DIR, socket_path};
use tonic::transport::ClientTlsConfig;

#[derive(Debug, Parser)]
#[command(
    name = "cnet",
    version,
    about = "Docker-style container networking, one gRPC service per job"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Gateway address (unix:///path, /path, tcp://host:port, https://host:port) [default: unix://<runtime-dir>/gateway.sock]
    #[arg(short = 'H', long, env = "CNET_HOST", global = true)]
    pub host: Option<String>,
    /// Directory for the cluster's sockets, namespaces and pid file
    #[arg(long, env = "CNET_RUNTIME_DIR", default_value = DEFAULT_RUNTIME_DIR, global = true)]
    pub runtime_dir: PathBuf,
    /// Directory for the cluster's persistent state and service logs
    #[arg(long, env = "CNET_STATE_DIR", default_value = DEFAULT_STATE_DIR, global = true)]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Docker's client TLS flags, for a gateway on `https://` (or `tcp://` with them, as
/// `docker --tlsverify -H tcp://...` does).
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Trust only gateway certificates signed by this CA (PEM)
    #[arg(long = "tlscacert", env = "CNET_TLS_CACERT", value_name = "FILE", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate to present to the gateway (PEM)
    #[arg(long = "tlscert", env = "CNET_TLS_CERT", value_name = "FILE", global = true)]
    pub cert: Option<PathBuf>,
    /// Private key of the client certificate (PEM)
    #[arg(long = "tlskey", env = "CNET_TLS_KEY", value_name = "FILE", global = true)]
    pub key: Option<PathBuf>,
}

impl GlobalArgs {
    /// The gateway address: `--host`, else the gateway socket in the runtime dir. With
    /// `--tlscacert`, a `tcp://` host is dialled with TLS.
    pub fn gateway_target(&self) -> String {
        match &self.host {
            Some(host) => match host.strip_prefix("tcp://") {
                Some(rest) if self.tls.ca_cert.is_some() => format!("https://{rest}"),
                _ => host.clone(),
            },
            None => format!("unix://{}", socket_path(&self.runtime_dir, "gateway").display()),
        }
    }

    /// The client TLS settings the flags give, read and checked; `None` without flags.
    pub fn client_tls(&self) -> anyhow::Result<Option<ClientTlsConfig>> {
        let TlsArgs { ca_cert, cert, key } = &self.tls;
        let Some(ca) = ca_cert else {
            if cert.is_some() || key.is_some() {
                anyhow::bail!("--tlscert and --tlskey need --tlscacert (the CA to trust)");
            }
            return Ok(None);
        };
        let files = ClientTlsFiles {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
            server_name: None,
        };
        Ok(Some(cnet_common::tls::client_config(&files)?))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage the cluster as a whole
    #[command(subcommand)]
    System(SystemCommand),
    /// Create a container without starting it (prints its id)
    Create(CreateArgs),
    /// Create and start a container
    Run(RunArgs),
    /// List containers
    Ps(PsArgs),
    /// Show containers in detail (JSON array)
    Inspect(NamesArgs),
    /// Start stopped containers
    Start(NamesArgs),
    /// Stop running containers (SIGTERM, then SIGKILL after the timeout)
    Stop(StopArgs),
    /// Remove containers
    Rm(RmArgs),
    /// Print a container's output
    Logs(LogsArgs),
    /// List a container's published ports
    Port(ContainerArg),
    /// Run a command inside a running container's namespaces (needs root, same host)
    Exec(ExecArgs),
    /// Start the local cluster: ipam, bridge, [nat, dns, hosts,] gateway, supervised
    Up(UpArgs),
    /// Stop the cluster started by `cnet up` (containers keep running)
    ///
    /// Stops the services in reverse start order. Containers are NOT stopped: like
    /// Docker's live-restore, they keep running and the next `cnet up` picks them up.
    Down,
}

impl Command {
    /// Exit code for a failure of this command: Docker uses 125 for `run` and `create`
    /// so that it cannot be mistaken for the container's own exit code.
    pub fn failure_code(&self) -> i32 {
        match self {
            Command::Run(_) | Command::Create(_) => 125,
            _ => 1,
        }
    }

    /// The command as typed, without arguments: `run`, `network create`, …
    pub fn name(&self) -> &'static str {
        match self {
            Command::Network(NetworkCommand::Create(_)) => "network create",
            Command::Network(NetworkCommand::Ls(_)) => "network ls",
            Command::Network(NetworkCommand::Inspect(_)) => "network inspect",
            Command::Network(NetworkCommand::Rm(_)) => "network rm",
            Command::Network(NetworkCommand::Prune(_)) => "network prune",
            Command::Network(NetworkCommand::Connect(_)) => "network connect",
            Command::Network(NetworkCommand::Disconnect(_)) => "network disconnect",
            Command::System(SystemCommand::Check(_)) => "system check",
            Command::Create(_) => "create",
            Command::Run(_) => "run",
            Command::Ps(_) => "ps",
            Command::Inspect(_) => "inspect",
            Command::Start(_) => "start",
            Command::Stop(_) => "stop",
            Command::Rm(_) => "rm",
            Command::Logs(_) => "logs",
            Command::Port(_) => "port",
            Command::Exec(_) => "exec",
            Command::Up(_) => "up",
            Command::Down => "down",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network (prints its id)
    Create(NetworkCreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Show networks in detail (JSON array)
    Inspect(NamesArgs),
    /// Remove networks
    #[command(visible_alias = "remove")]
    Rm(NamesArgs),
    /// Remove every network no running container uses
    Prune(PruneArgs),
    /// Connect a container to a network (the next ethN inside it)
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Accepted for Docker compatibility: cnet never asks for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Static IPv4 address (user-defined networks with a --subnet only)
    #[arg(long)]
    pub ip: Option<String>,
    /// Network-scoped alias for the container
    #[arg(long = "alias", value_name = "ALIAS")]
    pub aliases: Vec<String>,
    /// Network name or id
    pub network: String,
    /// Container name or id
    pub container: String,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Network name or id
    pub network: String,
    /// Container name or id
    pub container: String,
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// Driver to manage the network
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format, host bits allowed (e.g. 172.16.1.0/16)
    #[arg(long)]
    pub subnet: Option<String>,
    /// Allocate container addresses from this sub-range (CIDR)
    #[arg(long)]
    pub ip_range: Option<String>,
    /// Gateway address of the subnet
    #[arg(long)]
    pub gateway: Option<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Metadata for the network (KEY=VALUE or KEY)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Driver options (com.docker.network.bridge.name, com.docker.network.driver.mtu)
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub options: Vec<(String, String)>,
    /// Network name
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people
    Table,
    /// A JSON array of the same objects `inspect` prints, for scripts
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only print ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate ids or commands
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers, not only running ones
    #[arg(short, long)]
    pub all: bool,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Names, ids or unambiguous id prefixes
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Container name (default: generated)
    #[arg(long)]
    pub name: Option<String>,
    /// Container hostname (default: the 12-hex short id)
    #[arg(long)]
    pub hostname: Option<String>,
    /// Network to connect to: bridge (default), a network name or id, host, none or
    /// container:<name|id>
    #[arg(long, visible_alias = "net")]
    pub network: Option<String>,
    /// Static IPv4 address (user-defined networks with a --subnet only)
    #[arg(long)]
    pub ip: Option<String>,
    /// Network-scoped alias (user-defined networks only)
    #[arg(long = "network-alias", value_name = "ALIAS")]
    pub network_aliases: Vec<String>,
    /// Publish a container port ([IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO])
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Legacy link to another container (NAME or NAME:ALIAS)
    #[arg(long = "link", value_name = "NAME[:ALIAS]")]
    pub links: Vec<String>,
    /// Extra /etc/hosts entry (HOSTNAME:IP)
    #[arg(long = "add-host", value_name = "HOSTNAME:IP")]
    pub add_hosts: Vec<String>,
    /// DNS server (resolv.conf on the default bridge; forwarded to by the embedded DNS on
    /// user-defined networks)
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,
    /// DNS search domain
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// DNS resolver option (e.g. ndots:2)
    #[arg(long = "dns-option", visible_alias = "dns-opt", value_name = "OPTION")]
    pub dns_options: Vec<String>,
    /// Environment variable (KEY=VALUE, or KEY to pass on this shell's value)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Accepted for Docker compatibility and ignored: no terminal or stdin is attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Accepted for Docker compatibility and ignored: no terminal or stdin is attached
    #[arg(short, long)]
    pub tty: bool,
    /// Host command and arguments [default: sleep infinity]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background and print the container id
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container [default: 10]
    #[arg(short = 't', long = "time", visible_alias = "timeout", value_name = "SECS")]
    pub timeout: Option<u32>,
    #[command(flatten)]
    pub names: NamesArgs,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Stop running containers first instead of refusing
    #[arg(short, long)]
    pub force: bool,
    #[command(flatten)]
    pub names: NamesArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing output until the container exits
    #[arg(short, long)]
    pub follow: bool,
    /// Container name or id
    pub container: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Environment variable for the command (KEY=VALUE)
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// Container name or id
    pub container: String,
    /// Command and arguments, run with the container's hostname, network and files
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Start in the background and return once the gateway is serving
    #[arg(short, long)]
    pub detach: bool,
    /// Directory holding the cnet-* service binaries [default: the directory of `cnet`]
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

/// `KEY=VALUE`, or a bare `KEY` with an empty value (Docker's `--label` accepts both).
fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
        None => Ok((text.to_owned(), String::new())),
    }
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("invalid key/value pair {text:?}: expected KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests;

#[derive(Debug, Args)]
pub struct ContainerArg {
    /// Container name or id
    pub container: String,
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show what the services hold that the gateway's records do not want (exit 1 if any)
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Remove what is found
    #[arg(long)]
    pub repair: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}
