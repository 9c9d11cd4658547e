//! Parsing tests: the lab's commands, with `docker` replaced by `cnet`, must parse into
//! the requests the lab expects.

use clap::Parser;

use super::*;

fn parse(line: &str) -> Cli {
    Cli::try_parse_from(line.split_whitespace()).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn lab_network_create() {
    let cli = parse(
        "cnet network create --driver bridge --subnet 172.16.1.0/16 \
         --ip-range 172.16.1.0/24 --gateway=172.16.1.1 vswitch01",
    );
    let Command::Network(NetworkCommand::Create(args)) = cli.command else { panic!() };
    assert_eq!(args.driver, "bridge");
    assert_eq!(args.subnet.as_deref(), Some("172.16.1.0/16"));
    assert_eq!(args.ip_range.as_deref(), Some("172.16.1.0/24"));
    assert_eq!(args.gateway.as_deref(), Some("172.16.1.1"));
    assert!(!args.internal);
    assert_eq!(args.name, "vswitch01");
}

#[test]
fn network_create_labels_and_options() {
    let cli = parse(
        "cnet network create --internal --label team=net --label solo \
         -o com.docker.network.bridge.name=br-lab --opt mtu=1400 lab",
    );
    let Command::Network(NetworkCommand::Create(args)) = cli.command else { panic!() };
    assert!(args.internal);
    assert_eq!(args.driver, "bridge", "bridge is the default driver");
    assert_eq!(args.labels, [("team".into(), "net".into()), ("solo".into(), String::new())]);
    assert_eq!(
        args.options,
        [("com.docker.network.bridge.name".into(), "br-lab".into()), ("mtu".into(), "1400".into())]
    );
    assert!(Cli::try_parse_from(["cnet", "network", "create", "-o", "novalue", "x"]).is_err());
}

#[test]
fn lab_run_detached_without_command() {
    let cli = parse("cnet run -d --name centos1 --hostname centos1 --network vswitch01");
    let Command::Run(args) = cli.command else { panic!() };
    assert!(args.detach);
    assert_eq!(args.create.name.as_deref(), Some("centos1"));
    assert_eq!(args.create.hostname.as_deref(), Some("centos1"));
    assert_eq!(args.create.network.as_deref(), Some("vswitch01"));
    assert!(args.create.command.is_empty(), "the gateway supplies the default command");
}

#[test]
fn lab_run_with_docker_flags_and_net_alias() {
    // The lab writes `-itd` and `--net=container:<id>`; both must keep working.
    let cli = parse("cnet run --name centos4 --net=container:centos1 -itd");
    let Command::Run(args) = cli.command else { panic!() };
    assert!(args.detach && args.create.interactive && args.create.tty);
    assert_eq!(args.create.network.as_deref(), Some("container:centos1"));
}

#[test]
fn run_command_keeps_its_own_flags() {
    let cli = parse("cnet run --ip 172.16.2.7 -e A=1 -e HOME ping -c1 -W 2 172.16.1.2");
    let Command::Run(args) = cli.command else { panic!() };
    assert!(!args.detach);
    assert_eq!(args.create.ip.as_deref(), Some("172.16.2.7"));
    assert_eq!(args.create.env, ["A=1", "HOME"]);
    assert_eq!(args.create.command, ["ping", "-c1", "-W", "2", "172.16.1.2"]);

    let cli = parse("cnet create --name x -- sh -c true");
    let Command::Create(args) = cli.command else { panic!() };
    assert_eq!(args.command, ["sh", "-c", "true"]);
}

#[test]
fn lab_exec() {
    let cli = parse("cnet exec centos1 -- ping -c1 172.16.1.2");
    let Command::Exec(args) = cli.command else { panic!() };
    assert_eq!(args.container, "centos1");
    assert_eq!(args.command, ["ping", "-c1", "172.16.1.2"]);

    let cli = parse("cnet exec -e X=1 centos1 cat /etc/hosts");
    let Command::Exec(args) = cli.command else { panic!() };
    assert_eq!(args.env, [("X".into(), "1".into())]);
    assert_eq!(args.command, ["cat", "/etc/hosts"]);
    assert!(Cli::try_parse_from(["cnet", "exec", "centos1"]).is_err(), "a command is required");
}

#[test]
fn list_and_lifecycle_commands() {
    let cli = parse("cnet ps -a --format json");
    let Command::Ps(args) = cli.command else { panic!() };
    assert!(args.all);
    assert_eq!(args.list.format, Format::Json);

    let Command::Network(NetworkCommand::Ls(args)) = parse("cnet network ls").command else {
        panic!()
    };
    assert_eq!(args.format, Format::Table);

    let Command::Stop(args) = parse("cnet stop -t 3 a b").command else { panic!() };
    assert_eq!(args.timeout, Some(3));
    assert_eq!(args.names.names, ["a", "b"]);

    let Command::Rm(args) = parse("cnet rm -f a").command else { panic!() };
    assert!(args.force);

    let Command::Logs(args) = parse("cnet logs -f a").command else { panic!() };
    assert!(args.follow);

    assert!(Cli::try_parse_from(["cnet", "network", "rm"]).is_err(), "a name is required");
    assert!(Cli::try_parse_from(["cnet", "ps", "--format", "yaml"]).is_err());
}

#[test]
fn global_flags_and_gateway_target() {
    let cli = parse("cnet network ls --runtime-dir /tmp/rt --state-dir /tmp/st");
    assert_eq!(cli.global.runtime_dir, PathBuf::from("/tmp/rt"));
    assert_eq!(cli.global.state_dir, PathBuf::from("/tmp/st"));
    if std::env::var_os("CNET_HOST").is_none() {
        assert_eq!(cli.global.gateway_target(), "unix:///tmp/rt/gateway.sock");
    }

    let cli = parse("cnet -H tcp://127.0.0.1:7400 ps");
    assert_eq!(cli.global.gateway_target(), "tcp://127.0.0.1:7400");
}

#[test]
fn up_and_down() {
    let Command::Up(args) = parse("cnet up -d --bin-dir /opt/cnet").command else { panic!() };
    assert!(args.detach);
    assert_eq!(args.bin_dir, Some(PathBuf::from("/opt/cnet")));
    assert!(matches!(parse("cnet down").command, Command::Down));
}

#[test]
fn run_and_create_fail_with_125() {
    assert_eq!(parse("cnet run -d").command.failure_code(), 125);
    assert_eq!(parse("cnet create").command.failure_code(), 125);
    assert_eq!(parse("cnet start a").command.failure_code(), 1);
}

#[test]
fn definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn docker_tls_flags_anywhere_on_the_line() {
    let cli = parse(
        "cnet -H tcp://127.0.0.1:7411 network ls --tlscacert /tls/ca.pem --tlscert \
         /tls/cert.pem --tlskey /tls/key.pem",
    );
    assert_eq!(cli.global.tls.ca_cert, Some(PathBuf::from("/tls/ca.pem")));
    assert_eq!(cli.global.tls.cert, Some(PathBuf::from("/tls/cert.pem")));
    assert_eq!(cli.global.tls.key, Some(PathBuf::from("/tls/key.pem")));
    // With a CA, tcp:// is dialled with TLS, as `docker --tlsverify -H tcp://` does.
    assert_eq!(cli.global.gateway_target(), "https://127.0.0.1:7411");
    let plain = parse("cnet -H tcp://127.0.0.1:7411 ps");
    assert_eq!(plain.global.gateway_target(), "tcp://127.0.0.1:7411");
    assert!(plain.global.client_tls().unwrap().is_none());
}

#[test]
fn a_client_certificate_needs_a_ca_and_readable_files() {
    let cli = parse("cnet --tlscert /tls/cert.pem --tlskey /tls/key.pem ps");
    let error = cli.global.client_tls().unwrap_err().to_string();
    assert!(error.contains("need --tlscacert"), "{error}");
    let cli = parse("cnet --tlscacert /nonexistent/ca.pem ps");
    let error = cli.global.client_tls().unwrap_err().to_string();
    assert!(error.contains("read /nonexistent/ca.pem"), "{error}");
}
