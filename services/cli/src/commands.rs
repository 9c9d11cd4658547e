//! Runs a parsed command line. Gateway commands share one tokio runtime and one
//! [`Gateway`]; `up` and `down` manage processes and run without it.

pub mod container;
pub mod exec;
pub mod network;
pub mod system;
pub mod up;

use std::io::{IsTerminal, Write};

use tracing::Instrument;

use crate::{
    cli::{Cli, Command, NetworkCommand, SystemCommand},
    gateway::Gateway,
};

/// Process-wide setup that depends on the command, done once in `main`. Gateway
/// commands set up logging (and trace export) inside their runtime instead.
pub fn init_process(command: &Command) {
    if matches!(command, Command::Up(_) | Command::Down) {
        // The supervisor logs what it does.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            // `up -d` logs to a file, where colour codes are noise.
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .init();
    } else {
        // Die quietly on a closed pipe (`cnet ps | head -1`) like other Unix tools,
        // instead of panicking in println!. The supervisor keeps Rust's default.
        // SAFETY: called before any other thread exists; the handler only makes
        // async-signal-safe calls.
        unsafe { libc::signal(libc::SIGPIPE, on_sigpipe as *const () as libc::sighandler_t) };
    }
}

/// SIGPIPE: die of it (as with SIG_DFL) when stdout or stderr is a closed pipe; ignore it
/// when it is the gateway's connection that broke (a TLS gateway that refused our client
/// certificate closes it under our first write), so that the call fails with a message.
extern "C" fn on_sigpipe(_: libc::c_int) {
    let mut fds = [1, 2].map(|fd| libc::pollfd { fd, events: libc::POLLOUT, revents: 0 });
    // SAFETY: poll, signal and raise are async-signal-safe; `fds` outlives the call.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0);
        if fds.iter().any(|fd| fd.revents & (libc::POLLERR | libc::POLLHUP) != 0) {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::raise(libc::SIGPIPE);
        }
    }
}

/// Runs `cli` and returns the exit code; errors are printed by the caller.
pub fn execute(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Up(args) => up::up(&cli.global, &args),
        Command::Down => up::down(&cli.global),
        command => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            // The channel spawns its connection task, so it is made inside the runtime.
            runtime.block_on(async {
                // Quiet unless RUST_LOG says; spans exported when OTEL_* says (the
                // exporter needs the runtime).
                cnet_common::telemetry::init("cli", "warn");
                let tls = cli.global.client_tls()?;
                let gateway = Gateway::connect_with(&cli.global.gateway_target(), tls.as_ref())?;
                let span = tracing::info_span!(
                    "cnet",
                    command = command.name(),
                    otel.name = format!("cnet {}", command.name()),
                    otel.kind = "client",
                );
                let done = dispatch(&gateway, command).instrument(span).await;
                cnet_common::telemetry::shutdown().await;
                done
            })
        }
    }
}

async fn dispatch(gateway: &Gateway, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::System(SystemCommand::Check(args)) => system::check(gateway, &args).await,
        Command::Network(NetworkCommand::Create(args)) => network::create(gateway, args).await,
        Command::Network(NetworkCommand::Ls(args)) => network::list(gateway, &args).await,
        Command::Network(NetworkCommand::Inspect(args)) => {
            network::inspect(gateway, &args.names).await
        }
        Command::Network(NetworkCommand::Rm(args)) => network::remove(gateway, &args.names).await,
        Command::Network(NetworkCommand::Prune(_)) => network::prune(gateway).await,
        Command::Network(NetworkCommand::Connect(args)) => network::connect(gateway, args).await,
        Command::Network(NetworkCommand::Disconnect(args)) => {
            network::disconnect(gateway, &args).await
        }
        Command::Create(args) => container::create(gateway, &args).await,
        Command::Run(args) => container::run(gateway, &args).await,
        Command::Ps(args) => container::list(gateway, &args).await,
        Command::Inspect(args) => container::inspect(gateway, &args.names).await,
        Command::Start(args) => container::start(gateway, &args.names).await,
        Command::Stop(args) => container::stop(gateway, &args).await,
        Command::Rm(args) => container::remove(gateway, &args).await,
        Command::Logs(args) => container::logs(gateway, &args).await,
        Command::Port(args) => container::port(gateway, &args.container).await,
        Command::Exec(args) => exec::exec(gateway, &args).await,
        Command::Up(_) | Command::Down => unreachable!("handled without a gateway"),
    }
}

/// Applies `action` to every name like Docker does for `rm a b c`: print each name that
/// succeeded, report each failure on stderr, go on, and exit 1 if anything failed.
async fn for_each_name(
    names: &[String],
    mut action: impl AsyncFnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<i32> {
    let mut failed = false;
    for name in names {
        match action(name).await {
            Ok(()) => print(&format!("{name}\n"))?,
            Err(error) => {
                eprintln!("Error: {error:#}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

/// Writes to stdout and flushes, so output interleaves correctly with stderr.
fn print(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}
