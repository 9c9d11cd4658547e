//! Random and malformed requests against the public API (issue #7, "Bad input"): each one
//! gets a clear error and leaves the cluster exactly as it was, and one that happens to be
//! valid succeeds and, once undone, leaves nothing behind.
//!
//! # What is checked
//!
//! Each test builds one [`Cluster`] with a baseline: a user network `fuzznet`
//! (10.77.0.0/24, range 10.77.0.128/25, gateway 10.77.0.1, bridge `br-fuzz`), a running
//! container `web` on it publishing 0.0.0.0:18080->80/tcp, a running container `base` on
//! the default bridge and on a second user network `othernet` (with an alias), and a
//! created, never started container `idle` on `fuzznet`. Then requests to every mutating
//! gateway call (and the inspect calls) go in one at a time, mostly malformed or
//! impossible, some valid (the strategies draw most fields valid most of the time, so
//! roughly one request in six to ten is valid as a whole). After each one:
//!
//! - a refusal has code INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS or FAILED_PRECONDITION
//!   (OUT_OF_RANGE or RESOURCE_EXHAUSTED only for the size limits), and a message that is
//!   human text: not empty, no panic, no debug dump of an error or status;
//! - a success is undone (remove what was created, disconnect what was connected); a
//!   created container is first started, and a start that refuses what create accepted
//!   as INVALID_ARGUMENT is a failure too (create should have refused it), except where
//!   Docker 20.10 itself checks only at start ([`LATE_BY_DESIGN`]);
//! - then the whole observable state must equal what it was before the request: the
//!   gateway's networks and containers, every other service's records (ipam pools and
//!   allocations, bridges, sandboxes and veths, DNS registrations and records, hosts
//!   records with their files' contents, firewall networks and port bindings), the kernel
//!   of the cluster's "host" namespace (links, addresses, routes, cnet's iptables rules,
//!   listening sockets, named network namespaces), the container processes and the
//!   per-container directories in the state dir.
//!
//! Requests whose success could not be undone exactly (stopping a running baseline
//! container, starting or removing `idle`, detaching a baseline container from its own
//! network) are skipped, and counted. Every [`CHECK_EVERY`] cases, and at the end,
//! `cnet system check` must report no drift.
//!
//! A second test sends oversized messages (> 4 MiB, and bulky ones under the limit), a
//! burst of 500 concurrent bad requests and concurrent creates of one name, and checks
//! the same state afterwards and that the gateway still serves.
//!
//! # Bounded time and knobs
//!
//! CI runs [`DEFAULT_CASES`] random cases within [`DEFAULT_SECONDS`] of wall-clock time
//! (cases past the budget are skipped, and the count run is printed), from a fixed seed,
//! so a CI run is repeatable. For a longer local run:
//!
//! ```text
//! CNET_FUZZ_CASES=3000 CNET_FUZZ_SECS=900 CNET_FUZZ_SEED=random \
//!     cargo test -p cnet-tests --test fuzz -- --nocapture
//! ```
//!
//! `CNET_FUZZ_SEED` takes a number (the seed) or `random` (a fresh seed, printed).
//! `--nocapture` shows the counts of refusals by code, of successes by call, and of skips.
//!
//! # The corpus of past failures
//!
//! 1. [`REGRESSIONS`], a table of hand-written requests that once caused problems or are
//!    classic edge cases. They run first, every time, each with the same checks and most
//!    with a pinned outcome. A bug found by the random cases goes in here as a readable
//!    entry once understood, marked FOUND until the service is fixed (it fails until
//!    then) and "fixed:" after.
//! 2. `tests/proptest-regressions/fuzz.txt`: when a random case fails, proptest shrinks
//!    it and appends the seed of the failing case (`cc <hex>`, with the shrunken input
//!    as a comment) to this file; every later run replays those seeds first. Commit the
//!    new line with the fix. A seed only reproduces its case while the strategies below
//!    stay the same, which is why (1) exists too.
//!
//! So that one known bug does not hide the next, the random cases count a refusal that
//! matches [`KNOWN_BUGS`] instead of failing on it; its FOUND entry in (1) keeps failing.
//! Remove the [`KNOWN_BUGS`] entry when the bug is fixed.
//!
//! # Reproducing a failure
//!
//! The failure message names the concrete request (and the symbolic input proptest
//! shrank to) and what went wrong: the code and message, or a diff of the state
//! sections that changed. Re-run the same command: the persisted seed is replayed first.
//! `CNET_TEST_KEEP=1` keeps the cluster's namespaces and dirs for a look afterwards (the
//! services' logs are in `<dir>/state/logs/`).

use std::{
    cell::{Cell, RefCell},
    collections::{BTreeMap, HashMap},
    fmt::Debug,
    future::Future,
    path::Path,
    time::{Duration, Instant},
};

use cnet_proto::{
    bridge::v1::{self as bridge, bridge_agent_client::BridgeAgentClient},
    dns::v1::{self as dns, dns_client::DnsClient},
    gateway::v1::{self as api, system_service_client::SystemServiceClient},
    hosts::v1::{self as hosts, hosts_client::HostsClient},
    ipam::v1::{self as ipam, ipam_client::IpamClient},
    nat::v1::{self as nat, nat_client::NatClient},
};
use cnet_tests::{Api, Cluster};
use proptest::{
    prelude::*,
    test_runner::{
        Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
    },
};
use tonic::{Code, Status, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Random cases per run unless `CNET_FUZZ_CASES` says otherwise.
const DEFAULT_CASES: u32 = 250;
/// Wall-clock budget of the random cases unless `CNET_FUZZ_SECS` says otherwise.
const DEFAULT_SECONDS: u64 = 40;
/// Seed of the random cases unless `CNET_FUZZ_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x636e_6574_2d66_757a;
/// `cnet system check` after this many cases (and at the end).
const CHECK_EVERY: u32 = 25;
/// Longest wait for one answer; a request still unanswered then is a failure.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Where proptest keeps the seeds of failed cases (see the module docs).
const PERSISTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/fuzz.txt");

/// tonic's default limit on a received message.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// The baseline
// ---------------------------------------------------------------------------------------

const FUZZNET: &str = "fuzznet";
const FUZZNET_SUBNET: &str = "10.77.0.0/24";
const WEB_PORT: u32 = 18080;
const OTHERNET: &str = "othernet";

/// The baseline's networks, by symbol, so that a strategy (and a persisted seed) means the
/// same object in every cluster, whatever its random id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    Fuzz,
    /// A second user network, with only `base` on it.
    Other,
    Bridge,
    Host,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctr {
    /// Running on `fuzznet`, publishing a port.
    Web,
    /// Running on the default bridge and `othernet`.
    Base,
    /// Created on `fuzznet`, never started.
    Idle,
}

impl Net {
    const ALL: [Net; 5] = [Net::Fuzz, Net::Other, Net::Bridge, Net::Host, Net::None];
    fn name(self) -> &'static str {
        match self {
            Net::Fuzz => FUZZNET,
            Net::Other => OTHERNET,
            Net::Bridge => "bridge",
            Net::Host => "host",
            Net::None => "none",
        }
    }
}

impl Ctr {
    const ALL: [Ctr; 3] = [Ctr::Web, Ctr::Base, Ctr::Idle];
    fn name(self) -> &'static str {
        match self {
            Ctr::Web => "web",
            Ctr::Base => "base",
            Ctr::Idle => "idle",
        }
    }
    fn running(self) -> bool {
        matches!(self, Ctr::Web | Ctr::Base)
    }
    /// The networks the baseline attached it to.
    fn networks(self) -> &'static [Net] {
        match self {
            Ctr::Web | Ctr::Idle => &[Net::Fuzz],
            Ctr::Base => &[Net::Bridge, Net::Other],
        }
    }
}

/// How a reference to a baseline object is spelled.
#[derive(Debug, Clone, Copy)]
enum Form {
    Name,
    Id,
    /// The 12-digit short id (a unique prefix).
    ShortId,
    /// The id in upper case: no match.
    Upper,
    /// The id with one more digit: no match.
    Longer,
    /// The name with a leading space: no match.
    Padded,
}

#[derive(Debug, Clone)]
enum NetRef {
    Known(Net, Form),
    Raw(String),
}

#[derive(Debug, Clone)]
enum CtrRef {
    Known(Ctr, Form),
    Raw(String),
}

/// `CreateContainerRequest.network`.
#[derive(Debug, Clone)]
enum Mode {
    Default,
    Net(NetRef),
    /// `container:<ref>`.
    Container(CtrRef),
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct NetworkSpec {
    name: String,
    driver: String,
    subnet: String,
    ip_range: String,
    gateway: String,
    internal: bool,
    labels: Vec<(String, String)>,
    options: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct ContainerSpec {
    name: String,
    hostname: String,
    network: Mode,
    ip: String,
    command: Vec<String>,
    env: Vec<String>,
    aliases: Vec<String>,
    /// Target and optional alias (`target:alias`), or a raw string.
    links: Vec<(CtrRef, Option<String>)>,
    add_hosts: Vec<String>,
    dns: Vec<String>,
    dns_search: Vec<String>,
    dns_options: Vec<String>,
    ports: Vec<api::PortMapping>,
}

/// One call to the gateway.
#[derive(Debug, Clone)]
enum Op {
    CreateNetwork(NetworkSpec),
    CreateContainer(ContainerSpec),
    RunContainer(ContainerSpec),
    Connect { network: NetRef, container: CtrRef, ip: String, aliases: Vec<String> },
    Disconnect { network: NetRef, container: CtrRef },
    Start(CtrRef),
    Stop(CtrRef, Option<u32>),
    Remove(CtrRef, bool),
    RemoveNetwork(NetRef),
    Prune,
    InspectNetwork(NetRef),
    InspectContainer(CtrRef),
}

/// A request made concrete for one cluster.
#[derive(Debug, Clone)]
enum Request {
    CreateNetwork(api::CreateNetworkRequest),
    CreateContainer(api::CreateContainerRequest),
    RunContainer(api::CreateContainerRequest),
    Connect(api::ConnectNetworkRequest),
    Disconnect(api::DisconnectNetworkRequest),
    Start(api::StartContainerRequest),
    Stop(api::StopContainerRequest),
    Remove(api::RemoveContainerRequest),
    RemoveNetwork(api::RemoveNetworkRequest),
    Prune,
    InspectNetwork(api::InspectNetworkRequest),
    InspectContainer(api::InspectContainerRequest),
}

/// What a success needs undone.
#[derive(Debug)]
enum Undo {
    Nothing,
    RemoveNetwork(String),
    RemoveContainer(String),
    Disconnect { network: String, container: String },
}

// ---------------------------------------------------------------------------------------
// Strategies: mostly malformed, some valid
// ---------------------------------------------------------------------------------------

/// Strings that break one rule or another.
const WEIRD: &[&str] = &[
    "x",
    "-x",
    "_x",
    ".x",
    "x-",
    "a/b",
    "/",
    "../x",
    "a b",
    " a",
    "a ",
    "a\nb",
    "a\tb",
    "a\rb",
    "a\0b",
    "\0",
    "caf\u{e9}",
    "\u{540d}\u{524d}",
    "\u{1f600}",
    "\u{202e}cba",
    "a\u{200b}b",
    "..",
    ".",
    "a:b",
    ":",
    "a::b",
    "container:",
    "${HOME}",
    "$(id)",
    "%s%n",
    "\\",
    "'",
    "\"",
    "a=b",
    "=",
    "*",
    "?",
    "[",
    "0",
    "-",
    "\u{7f}",
    "\u{1b}[31mred",
    "A.B",
    "a..b",
    "a.",
    "localhost",
];

/// Lengths around the limits of names, labels and DNS names, and past what an HTTP/2
/// header holds (16 KiB), which matters where an error message echoes the input.
const LONG_LENGTHS: &[usize] = &[63, 64, 128, 129, 253, 254, 256, 4096, 16_400, 70_000];

fn weird() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(WEIRD).prop_map(String::from),
        2 => "[ -~]{0,16}",
        1 => "\\PC{1,8}",
        1 => "[\\x00-\\x1f]{1,3}",
        2 => (prop::sample::select(LONG_LENGTHS), "[a-z.\n]").prop_map(|(n, c)| c.repeat(n)),
    ]
    .boxed()
}

/// `valid` five times in six, else something weird.
fn mostly(valid: impl Strategy<Value = String> + 'static) -> BoxedStrategy<String> {
    prop_oneof![5 => valid, 1 => weird()].boxed()
}

fn select_string(values: &'static [&'static str]) -> BoxedStrategy<String> {
    prop::sample::select(values).prop_map(String::from).boxed()
}

/// Up to `max` items, none most of the time.
fn few<T: Debug + Clone + 'static>(
    item: impl Strategy<Value = T> + 'static,
    max: usize,
) -> BoxedStrategy<Vec<T>> {
    prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(item, 1..=max)].boxed()
}

fn form() -> impl Strategy<Value = Form> {
    prop_oneof![
        6 => Just(Form::Name),
        2 => Just(Form::Id),
        2 => Just(Form::ShortId),
        1 => Just(Form::Upper),
        1 => Just(Form::Longer),
        1 => Just(Form::Padded),
    ]
}

const RAW_REFS: &[&str] = &[
    "",
    "missing",
    "fuzz",
    "FUZZNET",
    "WEB",
    "br-fuzz",
    "cnet0",
    "a",
    "0",
    "f",
    "00",
    "web/",
    "base-alias",
];

fn raw_ref() -> BoxedStrategy<String> {
    prop_oneof![2 => select_string(RAW_REFS), 1 => weird()].boxed()
}

fn net_ref() -> BoxedStrategy<NetRef> {
    prop_oneof![
        6 => (prop::sample::select(&Net::ALL[..]), form()).prop_map(|(n, f)| NetRef::Known(n, f)),
        1 => raw_ref().prop_map(NetRef::Raw),
    ]
    .boxed()
}

fn ctr_ref() -> BoxedStrategy<CtrRef> {
    prop_oneof![
        6 => (prop::sample::select(&Ctr::ALL[..]), form()).prop_map(|(c, f)| CtrRef::Known(c, f)),
        1 => raw_ref().prop_map(CtrRef::Raw),
    ]
    .boxed()
}

fn object_name() -> BoxedStrategy<String> {
    prop_oneof![
        5 => "fz[a-z0-9][a-z0-9_.-]{0,10}",
        1 => select_string(&["web", "base", "idle", "fuzznet", "othernet", "bridge", "host", "none"]),
        2 => weird(),
    ]
    .boxed()
}

const BAD_CIDRS: &[&str] = &[
    "10.77.0.0/24",
    "10.77.0.0/16",
    "10.77.0.128/25",
    "10.0.0.0/8",
    "172.17.0.0/16",
    "172.17.5.0/24",
    "10.1.2.0/33",
    "300.1.1.0/24",
    "foo",
    "10.1.2.0",
    "10.1.2.0/",
    "/24",
    "::1/64",
    "fe80::/64",
    " 10.1.2.0/24",
    "10.1.2.0/24 ",
    "10.1.2.0/024",
    "010.1.2.0/24",
    "0.0.0.0/0",
    "255.255.255.255/32",
    "127.0.0.0/8",
    "127.0.0.1/32",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "0.0.0.0/8",
    "10.1.2.3/32",
    "10.1.2.0/31",
    "10.1.2.0/30",
    "10.1.2.0/-1",
    "10.1.2.0/24/24",
    "10.1.2.0\n/24",
    "10.1.2.0/24,10.1.3.0/24",
];

const BAD_IPS: &[&str] = &[
    "10.77.0.300",
    "10.77.0",
    "10.77.0.1.1",
    "abc",
    "::1",
    "::ffff:10.77.0.9",
    " 10.77.0.9",
    "10.77.0.9 ",
    "10.077.0.9",
    "0x0a.77.0.9",
    "10.78.0.9",
    "172.17.0.9",
    "127.0.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "10.77.0.9/24",
];

/// Subnet, ip-range and gateway, related most of the time.
fn addressing() -> BoxedStrategy<(String, String, String)> {
    (78u8..=120, any::<u8>(), 16u8..=29)
        .prop_flat_map(|(a, b, prefix)| {
            let base = if prefix >= 24 { format!("10.{a}.{b}") } else { format!("10.{a}.0") };
            let subnet = prop_oneof![
                4 => Just(format!("{base}.0/{prefix}")),
                2 => Just(String::new()),
                2 => select_string(BAD_CIDRS),
                1 => weird(),
            ];
            let range = prop_oneof![
                6 => Just(String::new()),
                2 => (prefix + 1..=prefix + 3).prop_map(move |p| format!("{base}.0/{}", p.min(32))),
                1 => Just(format!("10.{}.0.0/24", a.wrapping_add(100))),
                1 => Just(format!("10.{a}.0.0/{}", prefix - 1)),
                1 => select_string(BAD_CIDRS),
            ];
            let base_gw = if prefix >= 24 { format!("10.{a}.{b}") } else { format!("10.{a}.0") };
            let gateway = prop_oneof![
                6 => Just(String::new()),
                2 => (0u8..=255).prop_map(move |h| format!("{base_gw}.{h}")),
                1 => Just(format!("10.{}.0.1", a.wrapping_add(100))),
                1 => select_string(BAD_IPS),
            ];
            (subnet, range, gateway)
        })
        .boxed()
}

fn network_options() -> BoxedStrategy<Vec<(String, String)>> {
    let bridge_name = prop_oneof![
        3 => "fz-[a-z0-9]{1,8}",
        2 => select_string(&["br-fuzz", "cnet0", "lo", "", "a/b", "a b", ".", "..", "fzfzfzfzfzfzfzfz", "x:y"]),
        1 => weird(),
    ];
    let mtu = prop_oneof![
        3 => select_string(&["1500", "9000", "68", "65535"]),
        2 => select_string(&["67", "65536", "0", "-1", "abc", "1e3", " 1500", "", "4294967296"]),
        1 => weird(),
    ];
    let option = prop_oneof![
        2 => (select_string(&["com.docker.network.bridge.name", "bridge_name"]), bridge_name),
        2 => (select_string(&["com.docker.network.driver.mtu", "mtu"]), mtu),
        1 => (weird(), weird()),
    ];
    few(option, 3)
}

fn network_spec() -> BoxedStrategy<NetworkSpec> {
    let driver = prop_oneof![
        6 => Just(String::new()),
        2 => Just("bridge".to_owned()),
        1 => select_string(&["overlay", "host", "null", "BRIDGE", "bridge ", "macvlan", "none"]),
        1 => weird(),
    ];
    let label = (mostly("[a-z][a-z0-9.]{0,12}"), mostly("[ -~]{0,12}"));
    (object_name(), driver, addressing(), any::<bool>(), few(label, 3), network_options())
        .prop_map(|(name, driver, (subnet, ip_range, gateway), internal, labels, options)| {
            NetworkSpec { name, driver, subnet, ip_range, gateway, internal, labels, options }
        })
        .boxed()
}

/// Only programs that cannot do harm: the container runs a host command.
const COMMANDS: &[&[&str]] = &[
    &["sleep", "infinity"],
    &["sleep", "1000"],
    &["true"],
    &["false"],
    &["/nonexistent/cnet-fuzz"],
    &["cnet-fuzz-no-such-program"],
    &[""],
    &["", "x"],
    &["sleep\0x"],
    &["sleep", "a\0b"],
    &["sleep", "not-a-number"],
    &["/"],
    &["/etc/hostname"],
    &["sleep", "--", "-x"],
];

fn command() -> BoxedStrategy<Vec<String>> {
    let listed = prop::sample::select(COMMANDS)
        .prop_map(|command| command.iter().map(|s| s.to_string()).collect());
    let sleep_with =
        prop::collection::vec(weird(), 1..3).prop_map(|args| [vec!["sleep".into()], args].concat());
    prop_oneof![5 => Just(Vec::new()), 2 => listed, 1 => sleep_with].boxed()
}

/// Static addresses: none, anything in `fuzznet`'s subnet, or malformed.
fn static_ip() -> BoxedStrategy<String> {
    prop_oneof![
        6 => Just(String::new()),
        2 => (0u8..=255).prop_map(|n| format!("10.77.0.{n}")),
        1 => select_string(BAD_IPS),
        1 => weird(),
    ]
    .boxed()
}

fn alias() -> BoxedStrategy<String> {
    mostly("[a-z][a-z0-9-]{0,8}")
}

fn mode() -> BoxedStrategy<Mode> {
    prop_oneof![
        3 => Just(Mode::Default),
        5 => net_ref().prop_map(Mode::Net),
        2 => ctr_ref().prop_map(Mode::Container),
    ]
    .boxed()
}

fn port_mapping() -> BoxedStrategy<api::PortMapping> {
    let host_ip = prop_oneof![
        4 => Just(String::new()),
        2 => select_string(&["0.0.0.0", "127.0.0.1", "127.0.0.2", "10.77.0.1"]),
        1 => select_string(&["192.0.2.1", "::", "::1", "localhost", "abc", "1.2.3", "127.0.0.1 "]),
        1 => weird(),
    ];
    let host_port = prop_oneof![
        3 => Just(0u32),
        3 => 20_000u32..20_100,
        1 => Just(WEB_PORT),
        1 => 1u32..1024,
        1 => select_u32(&[65_535, 65_536, u32::MAX]),
    ];
    let host_port_end = prop_oneof![
        5 => Just(0u32),
        2 => 20_000u32..20_200,
        1 => select_u32(&[1, 65_535, 65_536, u32::MAX]),
    ];
    let container_port = prop_oneof![
        5 => Just(80u32),
        2 => 1u32..=65_535,
        1 => select_u32(&[0, 65_536, u32::MAX]),
    ];
    let protocol = prop_oneof![
        5 => Just(String::new()),
        3 => select_string(&["tcp", "udp"]),
        1 => select_string(&["sctp", "TCP", "tcp ", "icmp", "tcp/udp"]),
        1 => weird(),
    ];
    (host_ip, host_port, host_port_end, container_port, protocol)
        .prop_map(|(host_ip, host_port, host_port_end, container_port, protocol)| {
            api::PortMapping { host_ip, host_port, host_port_end, container_port, protocol }
        })
        .boxed()
}

fn select_u32(values: &'static [u32]) -> BoxedStrategy<u32> {
    prop::sample::select(values).boxed()
}

fn container_spec() -> BoxedStrategy<ContainerSpec> {
    let name = prop_oneof![3 => Just(String::new()), 4 => object_name()];
    let hostname = prop_oneof![
        5 => Just(String::new()),
        2 => "[a-z][a-z0-9-]{0,10}",
        1 => weird(),
        1 => select_string(&["a-", "-a", "a_b", "a..b"]),
    ];
    let env = prop_oneof![
        5 => "[A-Z_][A-Z0-9_]{0,6}=[ -~]{0,8}",
        1 => weird(),
        1 => Just(format!("BIG={}", "x".repeat(200 * 1024))),
    ];
    let link_alias = prop::option::of(alias());
    let links = prop_oneof![
        3 => (ctr_ref(), link_alias).prop_map(|(target, alias)| (target, alias)),
        1 => weird().prop_map(|raw| (CtrRef::Raw(raw), None)),
    ];
    let add_host = prop_oneof![
        3 => select_string(&["h:127.0.0.5", "db.local:10.77.0.9", "H1:1.2.3.4"]),
        2 => select_string(&[
            "h", "h:", ":127.0.0.1", "h:::1", "bad host:1.2.3.4", "h\n:1.2.3.4", "h:1.2.3.4\n",
            "h:300.1.1.1", "h:1.2.3.4:5", "h:host-gateway",
        ]),
        1 => weird(),
    ];
    let dns = prop_oneof![
        3 => select_string(&["127.0.0.1", "127.0.0.53"]),
        2 => select_string(&["::1", "1.1.1.1\n", "nameserver 127.0.0.1", "", "10.0.0.300"]),
        1 => weird(),
    ];
    let dns_search = prop_oneof![
        3 => select_string(&["lab.test", ".", "example"]),
        2 => select_string(&["", "a b", "a\nnameserver 1.2.3.4", "-a", "a..b"]),
        1 => weird(),
    ];
    let dns_option = prop_oneof![
        3 => select_string(&["ndots:2", "timeout:1", "rotate"]),
        2 => select_string(&["", "a b", "ndots:2\nnameserver 9.9.9.9", "ndots:2 #"]),
        1 => weird(),
    ];
    (
        (name, hostname, mode(), static_ip(), command(), few(env, 3)),
        (few(alias(), 2), few(links, 2), few(add_host, 2)),
        (few(dns, 2), few(dns_search, 2), few(dns_option, 2), few(port_mapping(), 3)),
    )
        .prop_map(
            |(
                (name, hostname, network, ip, command, env),
                (aliases, links, add_hosts),
                (dns, dns_search, dns_options, ports),
            )| ContainerSpec {
                name,
                hostname,
                network,
                ip,
                command,
                env,
                aliases,
                links,
                add_hosts,
                dns,
                dns_search,
                dns_options,
                ports,
            },
        )
        .boxed()
}

fn op() -> BoxedStrategy<Op> {
    let stop_timeout = prop_oneof![
        3 => Just(None),
        1 => select_u32(&[0, 1, u32::MAX]).prop_map(Some),
    ];
    prop_oneof![
        5 => network_spec().prop_map(Op::CreateNetwork),
        4 => container_spec().prop_map(Op::CreateContainer),
        5 => container_spec().prop_map(Op::RunContainer),
        4 => (net_ref(), ctr_ref(), static_ip(), few(alias(), 2)).prop_map(
            |(network, container, ip, aliases)| Op::Connect { network, container, ip, aliases }
        ),
        2 => (net_ref(), ctr_ref())
            .prop_map(|(network, container)| Op::Disconnect { network, container }),
        1 => ctr_ref().prop_map(Op::Start),
        1 => (ctr_ref(), stop_timeout).prop_map(|(c, t)| Op::Stop(c, t)),
        1 => (ctr_ref(), any::<bool>()).prop_map(|(c, force)| Op::Remove(c, force)),
        1 => net_ref().prop_map(Op::RemoveNetwork),
        1 => Just(Op::Prune),
        1 => net_ref().prop_map(Op::InspectNetwork),
        1 => ctr_ref().prop_map(Op::InspectContainer),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------
// Hand-written regression cases
// ---------------------------------------------------------------------------------------

/// What a regression case must come to, on top of the general checks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Only the general checks.
    Any,
    /// The random cases: the general checks, except that a refusal matching one of
    /// [`KNOWN_BUGS`] is counted rather than failed (the regression cases pin those).
    AnyButKnown,
    Refused(Code),
    Accepted,
}

#[derive(Debug, Clone, Copy)]
struct NetworkCase {
    name: &'static str,
    driver: &'static str,
    subnet: &'static str,
    ip_range: &'static str,
    gateway: &'static str,
    internal: bool,
    labels: &'static [(&'static str, &'static str)],
    options: &'static [(&'static str, &'static str)],
}

const NETWORK: NetworkCase = NetworkCase {
    name: "fzreg",
    driver: "",
    subnet: "",
    ip_range: "",
    gateway: "",
    internal: false,
    labels: &[],
    options: &[],
};

/// In string fields, `<id:NAME>` stands for the full id of baseline object NAME and
/// `<id12:NAME>` for its short id.
#[derive(Debug, Clone, Copy)]
struct ContainerCase {
    run: bool,
    name: &'static str,
    hostname: &'static str,
    network: &'static str,
    ip: &'static str,
    command: &'static [&'static str],
    env: &'static [&'static str],
    aliases: &'static [&'static str],
    links: &'static [&'static str],
    add_hosts: &'static [&'static str],
    dns: &'static [&'static str],
    dns_search: &'static [&'static str],
    dns_options: &'static [&'static str],
    /// host_ip, host_port, host_port_end, container_port, protocol.
    ports: &'static [(&'static str, u32, u32, u32, &'static str)],
}

const CONTAINER: ContainerCase = ContainerCase {
    run: true,
    name: "",
    hostname: "",
    network: "",
    ip: "",
    command: &[],
    env: &[],
    aliases: &[],
    links: &[],
    add_hosts: &[],
    dns: &[],
    dns_search: &[],
    dns_options: &[],
    ports: &[],
};

#[derive(Debug, Clone, Copy)]
enum Case {
    Network(NetworkCase),
    Container(ContainerCase),
    Connect {
        network: &'static str,
        container: &'static str,
        ip: &'static str,
        aliases: &'static [&'static str],
    },
    Disconnect {
        network: &'static str,
        container: &'static str,
    },
    Start(&'static str),
    Stop(&'static str, Option<u32>),
    Remove(&'static str, bool),
    RemoveNetwork(&'static str),
    Prune,
    InspectNetwork(&'static str),
    InspectContainer(&'static str),
}

struct Regression {
    why: &'static str,
    case: Case,
    expect: Expect,
}

const fn reg(why: &'static str, case: Case, expect: Expect) -> Regression {
    Regression { why, case, expect }
}

use Expect::{Accepted, Any, Refused};

/// Requests that once caused problems, or classic edge cases; they run before the
/// random ones, every time (see the module docs). Entries marked "fixed:" are bugs this
/// test found; a FOUND entry fails until its bug is fixed.
#[rustfmt::skip]
const REGRESSIONS: &[Regression] = &[
    // --- networks
    reg("empty name", Case::Network(NetworkCase { name: "", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("one-character name", Case::Network(NetworkCase { name: "x", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("slash in name", Case::Network(NetworkCase { name: "a/b", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("newline in name", Case::Network(NetworkCase { name: "a\nb", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("unicode name", Case::Network(NetworkCase { name: "r\u{e9}seau", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("129-character name", Case::Network(NetworkCase { name: LONG_NAME_129, ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("128-character name is fine", Case::Network(NetworkCase { name: LONG_NAME_128, ..NETWORK }), Accepted),
    reg(
        "fixed: a 20 000-character name; the error echoed it whole, and a reply header over 16 KiB \
         reaches the client as INTERNAL \"h2 protocol error\"",
        Case::Network(NetworkCase { name: NAME_20K, ..NETWORK }),
        Refused(Code::InvalidArgument),
    ),
    reg("taken name", Case::Network(NetworkCase { name: FUZZNET, subnet: "10.99.0.0/24", ..NETWORK }), Refused(Code::AlreadyExists)),
    reg("predefined name", Case::Network(NetworkCase { name: "bridge", ..NETWORK }), Refused(Code::AlreadyExists)),
    reg("unknown driver", Case::Network(NetworkCase { driver: "overlay", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("driver host", Case::Network(NetworkCase { driver: "host", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("overlapping subnet", Case::Network(NetworkCase { subnet: "10.77.0.0/16", ..NETWORK }), Refused(Code::AlreadyExists)),
    reg("same subnet", Case::Network(NetworkCase { subnet: FUZZNET_SUBNET, ..NETWORK }), Refused(Code::AlreadyExists)),
    reg("default bridge's subnet", Case::Network(NetworkCase { subnet: "172.17.0.0/16", ..NETWORK }), Refused(Code::AlreadyExists)),
    reg("prefix 33", Case::Network(NetworkCase { subnet: "10.98.0.0/33", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("octet 300", Case::Network(NetworkCase { subnet: "10.300.0.0/16", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("no prefix", Case::Network(NetworkCase { subnet: "10.98.0.0", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("IPv6 subnet", Case::Network(NetworkCase { subnet: "fd00::/64", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("whole address space", Case::Network(NetworkCase { subnet: "0.0.0.0/0", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("loopback subnet", Case::Network(NetworkCase { subnet: "127.0.0.0/8", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("link-local subnet", Case::Network(NetworkCase { subnet: "169.254.0.0/16", ..NETWORK }), Any),
    reg("class E subnet", Case::Network(NetworkCase { subnet: "240.0.0.0/24", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg(
        "fixed: a multicast subnet; the kernel refused the bridge address and the caller got INTERNAL",
        Case::Network(NetworkCase { subnet: "224.0.0.0/24", ..NETWORK }),
        Refused(Code::InvalidArgument),
    ),
    reg("/32 subnet", Case::Network(NetworkCase { subnet: "10.98.0.1/32", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("/31 subnet", Case::Network(NetworkCase { subnet: "10.98.0.0/31", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("/30 subnet", Case::Network(NetworkCase { subnet: "10.98.0.0/30", ..NETWORK }), Accepted),
    reg("range outside the subnet", Case::Network(NetworkCase { subnet: "10.98.0.0/24", ip_range: "10.98.1.0/24", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("range larger than the subnet", Case::Network(NetworkCase { subnet: "10.98.0.0/24", ip_range: "10.98.0.0/23", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("gateway outside the subnet", Case::Network(NetworkCase { subnet: "10.98.0.0/24", gateway: "10.98.1.1", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("gateway is the network address", Case::Network(NetworkCase { subnet: "10.98.0.0/24", gateway: "10.98.0.0", ..NETWORK }), Refused(Code::AlreadyExists)),
    reg("gateway is the broadcast address", Case::Network(NetworkCase { subnet: "10.98.0.0/24", gateway: "10.98.0.255", ..NETWORK }), Refused(Code::AlreadyExists)),
    reg("IPv6 gateway", Case::Network(NetworkCase { subnet: "10.98.0.0/24", gateway: "fd00::1", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("range without subnet", Case::Network(NetworkCase { ip_range: "10.98.0.0/24", ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("bridge name taken by a network", Case::Network(NetworkCase { options: &[("com.docker.network.bridge.name", "br-fuzz")], ..NETWORK }), Refused(Code::AlreadyExists)),
    reg("bridge name of the default bridge", Case::Network(NetworkCase { options: &[("bridge_name", "cnet0")], ..NETWORK }), Refused(Code::AlreadyExists)),
    reg("bridge name of the loopback device", Case::Network(NetworkCase { options: &[("bridge_name", "lo")], ..NETWORK }), Refused(Code::AlreadyExists)),
    reg("16-character bridge name", Case::Network(NetworkCase { options: &[("bridge_name", "fzfzfzfzfzfzfzfz")], ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("bridge name with a slash", Case::Network(NetworkCase { options: &[("bridge_name", "a/b")], ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("mtu too small", Case::Network(NetworkCase { options: &[("mtu", "67")], ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("mtu not a number", Case::Network(NetworkCase { options: &[("com.docker.network.driver.mtu", "abc")], ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("mtu 65536", Case::Network(NetworkCase { options: &[("mtu", "65536")], ..NETWORK }), Refused(Code::InvalidArgument)),
    reg("odd labels are data", Case::Network(NetworkCase { labels: &[("", ""), ("a\nb", "\0"), ("\u{1f600}", "x")], ..NETWORK }), Accepted),
    reg("internal network", Case::Network(NetworkCase { internal: true, subnet: "10.98.0.0/24", ..NETWORK }), Accepted),
    // --- containers
    reg("one-character name", Case::Container(ContainerCase { name: "x", ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("taken name", Case::Container(ContainerCase { name: "web", ..CONTAINER }), Refused(Code::AlreadyExists)),
    reg("name with a leading slash", Case::Container(ContainerCase { name: "/web2", ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("hostname with an underscore", Case::Container(ContainerCase { hostname: "a_b", ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("hostname with a newline", Case::Container(ContainerCase { hostname: "a\nb", ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("64-character hostname label", Case::Container(ContainerCase { hostname: LONG_LABEL_64, ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("missing network", Case::Container(ContainerCase { network: "nosuchnet", ..CONTAINER }), Refused(Code::NotFound)),
    reg("network by short id", Case::Container(ContainerCase { network: "<id12:fuzznet>", ..CONTAINER }), Accepted),
    reg("upper-case id is not an id", Case::Container(ContainerCase { network: "<ID:fuzznet>", ..CONTAINER }), Refused(Code::NotFound)),
    reg("host mode", Case::Container(ContainerCase { network: "host", ..CONTAINER }), Accepted),
    reg("none mode", Case::Container(ContainerCase { network: "none", ..CONTAINER }), Accepted),
    reg("container mode", Case::Container(ContainerCase { network: "container:web", ..CONTAINER }), Accepted),
    reg("container mode on a created container", Case::Container(ContainerCase { network: "container:idle", ..CONTAINER }), Refused(Code::FailedPrecondition)),
    reg("container mode, missing target", Case::Container(ContainerCase { network: "container:nosuch", ..CONTAINER }), Refused(Code::NotFound)),
    reg("container mode, empty target", Case::Container(ContainerCase { network: "container:", ..CONTAINER }), Refused(Code::NotFound)),
    reg("container mode with ports", Case::Container(ContainerCase { network: "container:web", ports: &[("", 0, 0, 80, "")], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("container mode with a hostname", Case::Container(ContainerCase { network: "container:web", hostname: "h", ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("ip on the default bridge", Case::Container(ContainerCase { ip: "172.17.0.9", ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("ip outside the subnet", Case::Container(ContainerCase { network: FUZZNET, ip: "10.78.0.9", ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("ip of the gateway", Case::Container(ContainerCase { network: FUZZNET, ip: "10.77.0.1", ..CONTAINER }), Refused(Code::AlreadyExists)),
    reg("ip in use", Case::Container(ContainerCase { network: FUZZNET, ip: "10.77.0.128", ..CONTAINER }), Refused(Code::AlreadyExists)),
    reg("network address", Case::Container(ContainerCase { network: FUZZNET, ip: "10.77.0.0", ..CONTAINER }), Refused(Code::AlreadyExists)),
    reg("broadcast address", Case::Container(ContainerCase { network: FUZZNET, ip: "10.77.0.255", ..CONTAINER }), Refused(Code::AlreadyExists)),
    reg("ip outside the range, inside the subnet", Case::Container(ContainerCase { network: FUZZNET, ip: "10.77.0.9", ..CONTAINER }), Accepted),
    reg("malformed ip", Case::Container(ContainerCase { network: FUZZNET, ip: "10.77.0.300", ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("ip with a prefix", Case::Container(ContainerCase { network: FUZZNET, ip: "10.77.0.9/24", ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("ip in host mode", Case::Container(ContainerCase { network: "host", ip: "10.77.0.9", ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("empty program", Case::Container(ContainerCase { command: &[""], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("NUL in an argument", Case::Container(ContainerCase { command: &["sleep", "1\0"], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("missing program", Case::Container(ContainerCase { command: &["/nonexistent/cnet-fuzz"], ..CONTAINER }), Refused(Code::FailedPrecondition)),
    reg("program is a directory", Case::Container(ContainerCase { command: &["/"], ..CONTAINER }), Refused(Code::FailedPrecondition)),
    reg("program is not executable", Case::Container(ContainerCase { command: &["/etc/hostname"], ..CONTAINER }), Refused(Code::FailedPrecondition)),
    reg("program exits at once", Case::Container(ContainerCase { command: &["true"], ..CONTAINER }), Accepted),
    reg("env without a key", Case::Container(ContainerCase { env: &["=x"], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("env without '='", Case::Container(ContainerCase { env: &["JUSTKEY"], ..CONTAINER }), Accepted),
    reg("NUL in env", Case::Container(ContainerCase { env: &["A=\0"], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("env larger than exec allows", Case::Container(ContainerCase { env: &[BIG_ENV], ..CONTAINER }), Refused(Code::FailedPrecondition)),
    reg("link to a missing container", Case::Container(ContainerCase { links: &["nosuch"], ..CONTAINER }), Refused(Code::NotFound)),
    reg("link with an empty alias", Case::Container(ContainerCase { links: &["base:"], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("link with a bad alias", Case::Container(ContainerCase { links: &["base:a b"], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("link with two colons", Case::Container(ContainerCase { links: &["base:a:b"], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("link to a created container", Case::Container(ContainerCase { links: &["idle"], ..CONTAINER }), Refused(Code::FailedPrecondition)),
    reg("link to a running container", Case::Container(ContainerCase { links: &["base:db"], ..CONTAINER }), Accepted),
    reg("add-host without ip", Case::Container(ContainerCase { add_hosts: &["h"], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("add-host with newline", Case::Container(ContainerCase { add_hosts: &["h:1.2.3.4\n"], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("add-host with bad name", Case::Container(ContainerCase { add_hosts: &["a b:1.2.3.4"], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("dns with a newline", Case::Container(ContainerCase { dns: &["127.0.0.1\nsearch evil"], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("dns-search with a newline", Case::Container(ContainerCase { dns_search: &["a\nnameserver 1.2.3.4"], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("dns-option with a space", Case::Container(ContainerCase { dns_options: &["ndots:1 rotate"], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("container port 0", Case::Container(ContainerCase { ports: &[("", 0, 0, 0, "")], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("host port 65536", Case::Container(ContainerCase { ports: &[("", 65_536, 0, 80, "")], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("reversed range", Case::Container(ContainerCase { ports: &[("", 20_010, 20_000, 80, "")], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("range end without start", Case::Container(ContainerCase { ports: &[("", 0, 20_000, 80, "")], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("protocol sctp", Case::Container(ContainerCase { ports: &[("", 0, 0, 80, "sctp")], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("IPv6 host ip", Case::Container(ContainerCase { ports: &[("::", 0, 0, 80, "")], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg("host port in use", Case::Container(ContainerCase { ports: &[("", WEB_PORT, 0, 80, "")], ..CONTAINER }), Refused(Code::FailedPrecondition)),
    reg("same host port twice", Case::Container(ContainerCase { ports: &[("", 20_050, 0, 80, ""), ("", 20_050, 0, 81, "")], ..CONTAINER }), Refused(Code::FailedPrecondition)),
    reg("host ip not on this host", Case::Container(ContainerCase { ports: &[("192.0.2.1", 0, 0, 80, "")], ..CONTAINER }), Any),
    reg("range with one free port", Case::Container(ContainerCase { ports: &[("", WEB_PORT, WEB_PORT + 1, 80, "")], ..CONTAINER }), Accepted),
    reg("udp on the same host port as web's tcp", Case::Container(ContainerCase { ports: &[("", WEB_PORT, 0, 80, "udp")], ..CONTAINER }), Accepted),
    reg("create only, with everything valid", Case::Container(ContainerCase { run: false, name: "fzcreated", hostname: "h1", network: FUZZNET, ip: "10.77.0.9", env: &["A=b"], aliases: &["al"], links: &["web:w"], add_hosts: &["h:1.2.3.4"], dns: &["127.0.0.1"], dns_search: &["lab.test"], dns_options: &["ndots:2"], ports: &[("127.0.0.1", 0, 0, 80, "udp")], ..CONTAINER }), Accepted),
    reg("run with a bad network alias", Case::Container(ContainerCase { network: FUZZNET, aliases: &["a b"], ..CONTAINER }), Refused(Code::InvalidArgument)),
    reg(
        "fixed: create with a network alias the DNS service refuses; it was stored, and every \
         start of the container then failed",
        Case::Container(ContainerCase { run: false, network: FUZZNET, aliases: &["a b"], ..CONTAINER }),
        Refused(Code::InvalidArgument),
    ),
    // --- connect, disconnect, lifecycle, lookups
    reg("connect twice", Case::Connect { network: FUZZNET, container: "web", ip: "", aliases: &[] }, Refused(Code::AlreadyExists)),
    reg("connect to host", Case::Connect { network: "host", container: "base", ip: "", aliases: &[] }, Refused(Code::InvalidArgument)),
    reg("connect to none", Case::Connect { network: "none", container: "base", ip: "", aliases: &[] }, Refused(Code::InvalidArgument)),
    reg("connect a missing container", Case::Connect { network: FUZZNET, container: "nosuch", ip: "", aliases: &[] }, Refused(Code::NotFound)),
    reg("connect to a missing network", Case::Connect { network: "nosuch", container: "base", ip: "", aliases: &[] }, Refused(Code::NotFound)),
    reg("connect with an ip in use", Case::Connect { network: FUZZNET, container: "base", ip: "10.77.0.128", aliases: &[] }, Refused(Code::AlreadyExists)),
    reg("connect with a malformed ip", Case::Connect { network: FUZZNET, container: "base", ip: "10.77.0", aliases: &[] }, Refused(Code::InvalidArgument)),
    reg("connect with an ip outside the subnet", Case::Connect { network: FUZZNET, container: "base", ip: "10.78.0.1", aliases: &[] }, Refused(Code::InvalidArgument)),
    reg("connect a running container", Case::Connect { network: FUZZNET, container: "base", ip: "10.77.0.20", aliases: &[] }, Accepted),
    reg("connect a created container", Case::Connect { network: "bridge", container: "idle", ip: "", aliases: &[] }, Accepted),
    reg("connect by ids", Case::Connect { network: "<id:bridge>", container: "<id12:web>", ip: "", aliases: &[] }, Accepted),
    reg("connect a running container with a bad alias", Case::Connect { network: FUZZNET, container: "base", ip: "", aliases: &["a b"] }, Refused(Code::InvalidArgument)),
    reg(
        "fixed: connect a created container with a network alias the DNS service refuses; it was \
         stored, and every start of the container then failed",
        Case::Connect { network: OTHERNET, container: "idle", ip: "", aliases: &["a\nb"] },
        Refused(Code::InvalidArgument),
    ),
    reg("disconnect what is not connected", Case::Disconnect { network: "bridge", container: "web" }, Refused(Code::FailedPrecondition)),
    reg("disconnect from host", Case::Disconnect { network: "host", container: "web" }, Refused(Code::InvalidArgument)),
    reg("disconnect a missing container", Case::Disconnect { network: FUZZNET, container: "nosuch" }, Refused(Code::NotFound)),
    reg("start a missing container", Case::Start("nosuch"), Refused(Code::NotFound)),
    reg("start an empty reference", Case::Start(""), Refused(Code::InvalidArgument)),
    reg("start a running container", Case::Start("web"), Accepted),
    reg("stop a created container", Case::Stop("idle", Some(u32::MAX)), Accepted),
    reg("stop a missing container", Case::Stop("nosuch", Some(0)), Refused(Code::NotFound)),
    reg("remove a running container", Case::Remove("web", false), Refused(Code::FailedPrecondition)),
    reg("remove a missing container", Case::Remove("nosuch", true), Refused(Code::NotFound)),
    reg("remove a network in use", Case::RemoveNetwork(FUZZNET), Refused(Code::FailedPrecondition)),
    reg("remove the default bridge", Case::RemoveNetwork("bridge"), Refused(Code::FailedPrecondition)),
    reg("remove host", Case::RemoveNetwork("host"), Refused(Code::FailedPrecondition)),
    reg("remove a missing network", Case::RemoveNetwork("nosuch"), Refused(Code::NotFound)),
    reg("prune with nothing to prune", Case::Prune, Accepted),
    reg("inspect an empty reference", Case::InspectContainer(""), Refused(Code::InvalidArgument)),
    reg(
        "fixed: a reference of 6 000 newlines; the error echoed it (percent-encoded, 18 KB) and \
         the client got INTERNAL \"h2 protocol error\"",
        Case::InspectNetwork(NEWLINES_6K),
        Refused(Code::NotFound),
    ),
];

const LONG_NAME_128: &str = "fz<repeat:126:a>";
const LONG_NAME_129: &str = "fz<repeat:127:a>";
const NAME_20K: &str = "fz<repeat:19998:n>";
const NEWLINES_6K: &str = "<repeat:6000:\n>";
const LONG_LABEL_64: &str = "<repeat:64:a>";
/// One variable larger than a single exec string may be (128 KiB).
const BIG_ENV: &str = "B=<repeat:140000:x>";

/// Expands `<repeat:N:C>` (N times the character C) in a regression case's string.
fn text(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find("<repeat:") {
        out.push_str(&rest[..at]);
        let spec = &rest[at + "<repeat:".len()..];
        let (count, tail) = spec.split_once(':').expect("<repeat:N:C>");
        let mut chars = tail.chars();
        let c = chars.next().expect("<repeat:N:C>");
        assert_eq!(chars.next(), Some('>'), "<repeat:N:C> in {template:?}");
        out.extend(std::iter::repeat_n(c, count.parse().expect("<repeat:N:C>")));
        rest = chars.as_str();
    }
    out.push_str(rest);
    out
}

impl Case {
    fn op(&self) -> Op {
        let net = |s: &str| NetRef::Raw(text(s));
        let ctr = |s: &str| CtrRef::Raw(text(s));
        let strings = |list: &[&str]| list.iter().map(|s| text(s)).collect::<Vec<_>>();
        let pairs = |list: &[(&str, &str)]| {
            list.iter().map(|(k, v)| (text(k), text(v))).collect::<Vec<_>>()
        };
        match *self {
            Case::Network(n) => Op::CreateNetwork(NetworkSpec {
                name: text(n.name),
                driver: text(n.driver),
                subnet: text(n.subnet),
                ip_range: text(n.ip_range),
                gateway: text(n.gateway),
                internal: n.internal,
                labels: pairs(n.labels),
                options: pairs(n.options),
            }),
            Case::Container(c) => {
                let network = match c.network {
                    "" => Mode::Default,
                    other => Mode::Net(net(other)),
                };
                let spec = ContainerSpec {
                    name: text(c.name),
                    hostname: text(c.hostname),
                    network,
                    ip: text(c.ip),
                    command: strings(c.command),
                    env: strings(c.env),
                    aliases: strings(c.aliases),
                    links: c.links.iter().map(|l| (ctr(l), None)).collect(),
                    add_hosts: strings(c.add_hosts),
                    dns: strings(c.dns),
                    dns_search: strings(c.dns_search),
                    dns_options: strings(c.dns_options),
                    ports: c
                        .ports
                        .iter()
                        .map(|&(host_ip, host_port, host_port_end, container_port, protocol)| {
                            api::PortMapping {
                                host_ip: text(host_ip),
                                host_port,
                                host_port_end,
                                container_port,
                                protocol: text(protocol),
                            }
                        })
                        .collect(),
                };
                if c.run { Op::RunContainer(spec) } else { Op::CreateContainer(spec) }
            }
            Case::Connect { network, container, ip, aliases } => Op::Connect {
                network: net(network),
                container: ctr(container),
                ip: text(ip),
                aliases: strings(aliases),
            },
            Case::Disconnect { network, container } => {
                Op::Disconnect { network: net(network), container: ctr(container) }
            }
            Case::Start(c) => Op::Start(ctr(c)),
            Case::Stop(c, timeout) => Op::Stop(ctr(c), timeout),
            Case::Remove(c, force) => Op::Remove(ctr(c), force),
            Case::RemoveNetwork(n) => Op::RemoveNetwork(net(n)),
            Case::Prune => Op::Prune,
            Case::InspectNetwork(n) => Op::InspectNetwork(net(n)),
            Case::InspectContainer(c) => Op::InspectContainer(ctr(c)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------

/// Clients of every service of one cluster.
struct Clients {
    system: SystemServiceClient<Channel>,
    health: HealthClient<Channel>,
    ipam: IpamClient<Channel>,
    bridge: BridgeAgentClient<Channel>,
    dns: DnsClient<Channel>,
    hosts: HostsClient<Channel>,
    nat: NatClient<Channel>,
}

struct Fuzz {
    cluster: Cluster,
    api: Api,
    clients: Clients,
    /// (symbol, id) of the baseline's networks and containers.
    networks: Vec<(Net, String)>,
    containers: Vec<(Ctr, String)>,
    baseline: Snapshot,
    /// The state after the last case, which the next one is compared with.
    last: RefCell<Snapshot>,
    stats: RefCell<Stats>,
    cases: Cell<u32>,
}

#[derive(Default, Debug)]
struct Stats {
    refused: BTreeMap<String, u32>,
    accepted: BTreeMap<&'static str, u32>,
    skipped: u32,
    known_bugs: BTreeMap<String, u32>,
    longest_message: usize,
}

/// Fails the current case (or the test) with `message`.
type Checked<T = ()> = Result<T, String>;

impl Fuzz {
    fn start() -> Self {
        let cluster = Cluster::start();
        let api = cluster.api();
        let channel = |target: String| {
            let _entered = api.enter();
            cnet_common::client::channel(&target).expect("service address")
        };
        let gateway = channel(cluster.gateway_target());
        let clients = Clients {
            system: SystemServiceClient::new(gateway.clone()),
            health: HealthClient::new(gateway),
            ipam: IpamClient::new(channel(cluster.service_target("ipam"))),
            bridge: BridgeAgentClient::new(channel(cluster.service_target("bridge"))),
            dns: DnsClient::new(channel(cluster.service_target("dns"))),
            hosts: HostsClient::new(channel(cluster.service_target("hosts"))),
            nat: NatClient::new(channel(cluster.service_target("nat"))),
        };
        let mut fuzz = Fuzz {
            cluster,
            api,
            clients,
            networks: Vec::new(),
            containers: Vec::new(),
            baseline: Snapshot::default(),
            last: RefCell::default(),
            stats: RefCell::default(),
            cases: Cell::new(0),
        };
        fuzz.build_baseline();
        fuzz
    }

    fn build_baseline(&mut self) {
        let mut networks = self.api.networks.clone();
        let fuzznet = api::CreateNetworkRequest {
            name: FUZZNET.into(),
            subnet: FUZZNET_SUBNET.into(),
            ip_range: "10.77.0.128/25".into(),
            gateway: "10.77.0.1".into(),
            labels: [("purpose".to_owned(), "fuzz".to_owned())].into(),
            options: [("com.docker.network.bridge.name".to_owned(), "br-fuzz".to_owned())].into(),
            ..Default::default()
        };
        self.call(networks.create_network(fuzznet)).expect("create fuzznet");
        let mut containers = self.api.containers.clone();
        let web = api::CreateContainerRequest {
            name: "web".into(),
            network: FUZZNET.into(),
            ports: vec![api::PortMapping {
                host_port: WEB_PORT,
                container_port: 80,
                ..Default::default()
            }],
            ..Default::default()
        };
        self.call(containers.run_container(web)).expect("run web");
        let base = api::CreateContainerRequest { name: "base".into(), ..Default::default() };
        self.call(containers.run_container(base)).expect("run base");
        let othernet = api::CreateNetworkRequest {
            name: OTHERNET.into(),
            subnet: "10.66.0.0/24".into(),
            ..Default::default()
        };
        self.call(networks.create_network(othernet)).expect("create othernet");
        let connect = api::ConnectNetworkRequest {
            network: OTHERNET.into(),
            container: "base".into(),
            aliases: vec!["base-alias".into()],
            ..Default::default()
        };
        self.call(networks.connect_network(connect)).expect("connect base to othernet");
        let idle = api::CreateContainerRequest {
            name: "idle".into(),
            network: FUZZNET.into(),
            ..Default::default()
        };
        self.call(containers.create_container(idle)).expect("create idle");
        self.networks = Net::ALL.iter().map(|&n| (n, self.api.network(n.name()).id)).collect();
        self.containers = Ctr::ALL.iter().map(|&c| (c, self.api.container(c.name()).id)).collect();
        assert_eq!(
            self.api.ip("web", FUZZNET),
            "10.77.0.128",
            "web takes the range's first address"
        );
        self.baseline = self.snapshot().expect("baseline snapshot");
        *self.last.borrow_mut() = self.baseline.clone();
        let drift = self.drift().expect("system check");
        assert!(drift.is_empty(), "the baseline has drift: {drift:#?}");
    }

    /// Runs `future` on the fixture's runtime, giving up after [`CALL_TIMEOUT`].
    fn call<T>(
        &self,
        future: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, Status> {
        self.api.block(async {
            match tokio::time::timeout(CALL_TIMEOUT, future).await {
                Ok(answer) => answer.map(tonic::Response::into_inner),
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "no answer within {CALL_TIMEOUT:?} (the test's own limit)"
                ))),
            }
        })
    }

    fn net_id(&self, net: Net) -> &str {
        &self.networks.iter().find(|(n, _)| *n == net).expect("baseline network").1
    }

    fn ctr_id(&self, ctr: Ctr) -> &str {
        &self.containers.iter().find(|(c, _)| *c == ctr).expect("baseline container").1
    }

    fn spell(name: &str, id: &str, form: Form) -> String {
        match form {
            Form::Name => name.to_owned(),
            Form::Id => id.to_owned(),
            Form::ShortId => id[..12].to_owned(),
            Form::Upper => id.to_uppercase(),
            Form::Longer => format!("{id}0"),
            Form::Padded => format!(" {name}"),
        }
    }

    fn net_ref(&self, reference: &NetRef) -> String {
        match reference {
            NetRef::Known(net, form) => Self::spell(net.name(), self.net_id(*net), *form),
            NetRef::Raw(raw) => self.expand(raw),
        }
    }

    fn ctr_ref(&self, reference: &CtrRef) -> String {
        match reference {
            CtrRef::Known(ctr, form) => Self::spell(ctr.name(), self.ctr_id(*ctr), *form),
            CtrRef::Raw(raw) => self.expand(raw),
        }
    }

    /// `<id:NAME>`, `<ID:NAME>` (upper case) and `<id12:NAME>` in regression cases.
    fn expand(&self, raw: &str) -> String {
        if !raw.contains('<') {
            return raw.to_owned();
        }
        let mut text = raw.to_owned();
        let named = self
            .networks
            .iter()
            .map(|(n, id)| (n.name(), id.as_str()))
            .chain(self.containers.iter().map(|(c, id)| (c.name(), id.as_str())));
        for (name, id) in named {
            text = text
                .replace(&format!("<id:{name}>"), id)
                .replace(&format!("<ID:{name}>"), &id.to_uppercase())
                .replace(&format!("<id12:{name}>"), &id[..12]);
        }
        text
    }

    /// The baseline container a reference resolves to, by the gateway's rule: an exact
    /// name or id, else a unique id prefix.
    fn resolve_ctr(&self, reference: &str) -> Option<Ctr> {
        let items: Vec<(Ctr, &str, &str)> =
            self.containers.iter().map(|(c, id)| (*c, id.as_str(), c.name())).collect();
        resolve(&items, reference)
    }

    fn resolve_net(&self, reference: &str) -> Option<Net> {
        let items: Vec<(Net, &str, &str)> =
            self.networks.iter().map(|(n, id)| (*n, id.as_str(), n.name())).collect();
        resolve(&items, reference)
    }

    fn concrete(&self, op: &Op) -> Request {
        match op {
            Op::CreateNetwork(spec) => Request::CreateNetwork(api::CreateNetworkRequest {
                name: spec.name.clone(),
                driver: spec.driver.clone(),
                subnet: spec.subnet.clone(),
                ip_range: spec.ip_range.clone(),
                gateway: spec.gateway.clone(),
                internal: spec.internal,
                labels: spec.labels.iter().cloned().collect(),
                options: spec.options.iter().cloned().collect(),
            }),
            Op::CreateContainer(spec) => Request::CreateContainer(self.container_request(spec)),
            Op::RunContainer(spec) => Request::RunContainer(self.container_request(spec)),
            Op::Connect { network, container, ip, aliases } => {
                Request::Connect(api::ConnectNetworkRequest {
                    network: self.net_ref(network),
                    container: self.ctr_ref(container),
                    ip: ip.clone(),
                    aliases: aliases.clone(),
                })
            }
            Op::Disconnect { network, container } => {
                Request::Disconnect(api::DisconnectNetworkRequest {
                    network: self.net_ref(network),
                    container: self.ctr_ref(container),
                })
            }
            Op::Start(c) => {
                Request::Start(api::StartContainerRequest { container: self.ctr_ref(c) })
            }
            Op::Stop(c, timeout_seconds) => Request::Stop(api::StopContainerRequest {
                container: self.ctr_ref(c),
                timeout_seconds: *timeout_seconds,
            }),
            Op::Remove(c, force) => Request::Remove(api::RemoveContainerRequest {
                container: self.ctr_ref(c),
                force: *force,
            }),
            Op::RemoveNetwork(n) => {
                Request::RemoveNetwork(api::RemoveNetworkRequest { network: self.net_ref(n) })
            }
            Op::Prune => Request::Prune,
            Op::InspectNetwork(n) => {
                Request::InspectNetwork(api::InspectNetworkRequest { network: self.net_ref(n) })
            }
            Op::InspectContainer(c) => Request::InspectContainer(api::InspectContainerRequest {
                container: self.ctr_ref(c),
            }),
        }
    }

    fn container_request(&self, spec: &ContainerSpec) -> api::CreateContainerRequest {
        let network = match &spec.network {
            Mode::Default => String::new(),
            Mode::Net(n) => self.net_ref(n),
            Mode::Container(c) => format!("container:{}", self.ctr_ref(c)),
        };
        let links = spec
            .links
            .iter()
            .map(|(target, alias)| match alias {
                Some(alias) => format!("{}:{alias}", self.ctr_ref(target)),
                None => self.ctr_ref(target),
            })
            .collect();
        api::CreateContainerRequest {
            name: spec.name.clone(),
            hostname: spec.hostname.clone(),
            network,
            ip: spec.ip.clone(),
            command: spec.command.clone(),
            env: spec.env.clone(),
            aliases: spec.aliases.clone(),
            links,
            add_hosts: spec.add_hosts.clone(),
            dns: spec.dns.clone(),
            dns_search: spec.dns_search.clone(),
            dns_options: spec.dns_options.clone(),
            ports: spec.ports.clone(),
        }
    }

    /// Whether a request would change the baseline in a way that cannot be undone
    /// exactly (stop a running container, start or remove the created one, detach a
    /// baseline container from its network): such a request is skipped.
    fn would_break_baseline(&self, request: &Request) -> bool {
        match request {
            Request::Stop(r) => self.resolve_ctr(&r.container).is_some_and(Ctr::running),
            Request::Start(r) => self.resolve_ctr(&r.container) == Some(Ctr::Idle),
            Request::Remove(r) => {
                self.resolve_ctr(&r.container).is_some_and(|c| c == Ctr::Idle || r.force)
            }
            Request::Disconnect(r) => {
                let container = self.resolve_ctr(&r.container);
                let network = self.resolve_net(&r.network);
                container.is_some_and(|c| network.is_some_and(|n| c.networks().contains(&n)))
            }
            _ => false,
        }
    }

    /// Sends one request and answers what undoes it.
    fn send(&self, request: &Request) -> Result<(&'static str, Undo), Status> {
        let mut networks = self.api.networks.clone();
        let mut containers = self.api.containers.clone();
        Ok(match request.clone() {
            Request::CreateNetwork(r) => {
                let name = r.name.clone();
                let created = self.call(networks.create_network(r))?;
                if created.name != name {
                    return Err(Status::internal(format!(
                        "TEST: asked for network {name:?}, got {:?}",
                        created.name
                    )));
                }
                ("create network", Undo::RemoveNetwork(created.id))
            }
            Request::CreateContainer(r) => {
                let created = self.call(containers.create_container(r))?;
                ("create container", Undo::RemoveContainer(created.id))
            }
            Request::RunContainer(r) => {
                let created = self.call(containers.run_container(r))?;
                ("run container", Undo::RemoveContainer(created.id))
            }
            Request::Connect(r) => {
                let network = r.network.clone();
                let connected = self.call(networks.connect_network(r))?;
                let network =
                    self.call(networks.inspect_network(api::InspectNetworkRequest { network }))?;
                let undo = Undo::Disconnect { network: network.id, container: connected.id };
                ("connect", undo)
            }
            Request::Disconnect(r) => {
                self.call(networks.disconnect_network(r))?;
                ("disconnect", Undo::Nothing)
            }
            Request::Start(r) => {
                self.call(containers.start_container(r))?;
                ("start", Undo::Nothing)
            }
            Request::Stop(r) => {
                self.call(containers.stop_container(r))?;
                ("stop", Undo::Nothing)
            }
            Request::Remove(r) => {
                self.call(containers.remove_container(r))?;
                ("remove container", Undo::Nothing)
            }
            Request::RemoveNetwork(r) => {
                self.call(networks.remove_network(r))?;
                ("remove network", Undo::Nothing)
            }
            Request::Prune => {
                let pruned = self.call(networks.prune_networks(api::PruneNetworksRequest {}))?;
                if !pruned.removed.is_empty() {
                    return Err(Status::internal(format!(
                        "TEST: prune removed baseline networks {:?}",
                        pruned.removed
                    )));
                }
                ("prune", Undo::Nothing)
            }
            Request::InspectNetwork(r) => {
                self.call(networks.inspect_network(r))?;
                ("inspect network", Undo::Nothing)
            }
            Request::InspectContainer(r) => {
                self.call(containers.inspect_container(r))?;
                ("inspect container", Undo::Nothing)
            }
        })
    }

    fn undo(&self, undo: Undo) -> Checked {
        let mut networks = self.api.networks.clone();
        let mut containers = self.api.containers.clone();
        let result = match &undo {
            Undo::Nothing => Ok(()),
            Undo::RemoveNetwork(id) => self
                .call(networks.remove_network(api::RemoveNetworkRequest { network: id.clone() }))
                .map(drop),
            Undo::RemoveContainer(id) => self
                .call(containers.remove_container(api::RemoveContainerRequest {
                    container: id.clone(),
                    force: true,
                }))
                .map(drop),
            Undo::Disconnect { network, container } => self
                .call(networks.disconnect_network(api::DisconnectNetworkRequest {
                    network: network.clone(),
                    container: container.clone(),
                }))
                .map(drop),
        };
        result.map_err(|status| format!("undoing it ({undo:?}) failed: {}", show_status(&status)))
    }

    /// One request with every check; `Err` says what went wrong.
    fn case(&self, op: &Op, expect: Expect) -> Checked {
        let request = self.concrete(op);
        if self.would_break_baseline(&request) {
            self.stats.borrow_mut().skipped += 1;
            return Ok(());
        }
        let shown = show(&request);
        let outcome = self.send(&request);
        let mut problems = Vec::new();
        match &outcome {
            Err(status) => {
                let mut stats = self.stats.borrow_mut();
                *stats.refused.entry(format!("{:?}", status.code())).or_default() += 1;
                stats.longest_message = stats.longest_message.max(status.message().len());
                drop(stats);
                if let Some(problem) = refusal_problem(status, &shown, false) {
                    match known_bug(status) {
                        Some(bug) if expect == Expect::AnyButKnown => {
                            let seen = format!("{bug} ({:?})", status.code());
                            *self.stats.borrow_mut().known_bugs.entry(seen).or_default() += 1;
                        }
                        _ => problems.push(problem),
                    }
                }
                match expect {
                    Expect::Refused(code) if code != status.code() => {
                        problems.push(format!("expected {code:?}"));
                    }
                    Expect::Accepted => problems.push("expected it to succeed".into()),
                    _ => {}
                }
            }
            Ok((what, _)) => {
                *self.stats.borrow_mut().accepted.entry(what).or_default() += 1;
                if let Expect::Refused(code) = expect {
                    problems.push(format!("succeeded; expected a refusal with {code:?}"));
                }
            }
        }
        let status_text = match &outcome {
            Err(status) => format!("refused: {}", show_status(status)),
            Ok((what, _)) => format!("succeeded ({what})"),
        };
        // What create accepts must be startable: start takes no input, so an
        // INVALID_ARGUMENT from it means create stored something it should have refused.
        if let (Request::CreateContainer(_), Ok((_, Undo::RemoveContainer(id)))) =
            (&request, &outcome)
        {
            let start = api::StartContainerRequest { container: id.clone() };
            if let Err(status) = self.call(self.api.containers.clone().start_container(start)) {
                let by_design = LATE_BY_DESIGN.iter().any(|m| status.message().contains(m));
                let problem = if status.code() == Code::InvalidArgument && !by_design {
                    Some("the input was accepted, but starting the container refuses it".into())
                } else {
                    refusal_problem(&status, &shown, false)
                };
                if let Some(problem) = problem {
                    match known_bug(&status) {
                        Some(bug) if expect == Expect::AnyButKnown => {
                            let seen = format!("{bug} (at start)");
                            *self.stats.borrow_mut().known_bugs.entry(seen).or_default() += 1;
                        }
                        _ => problems.push(format!(
                            "starting the created container: {}: {problem}",
                            show_status(&status)
                        )),
                    }
                }
            }
        }
        if let Ok((_, undo)) = outcome
            && let Err(problem) = self.undo(undo)
        {
            problems.push(problem);
        }
        let after = self.snapshot().map_err(|e| format!("{shown}: {e}"))?;
        let before = self.last.replace(after.clone());
        if let Some(diff) = before.diff(&after) {
            problems.push(format!("the state changed:\n{diff}"));
        }
        let count = self.cases.get() + 1;
        self.cases.set(count);
        if count.is_multiple_of(CHECK_EVERY) {
            let drift = self.drift().map_err(|e| format!("system check: {e}"))?;
            if !drift.is_empty() {
                problems.push(format!("`cnet system check` finds drift: {drift:#?}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{shown}\n  {status_text}\n  PROBLEM: {}", problems.join("\n  PROBLEM: ")))
        }
    }

    fn drift(&self) -> Checked<Vec<api::Drift>> {
        let mut system = self.clients.system.clone();
        self.call(system.check(api::CheckRequest { repair: false }))
            .map(|r| r.drifts)
            .map_err(|s| show_status(&s))
    }

    fn healthy(&self) -> Checked {
        let mut health = self.clients.health.clone();
        let answer = self.call(health.check(HealthCheckRequest { service: String::new() }));
        match answer {
            Ok(r) if r.status == ServingStatus::Serving as i32 => Ok(()),
            Ok(r) => Err(format!("gateway health is {:?}", r.status)),
            Err(status) => Err(format!("gateway health check failed: {}", show_status(&status))),
        }
    }

    /// Everything a request could have changed, each section a sorted list of lines.
    fn snapshot(&self) -> Checked<Snapshot> {
        let mut snapshot = Snapshot::default();
        let fail = |what: &str| {
            let what = what.to_owned();
            move |status: Status| format!("snapshot: {what}: {}", show_status(&status))
        };
        let mut networks = self.api.networks.clone();
        let mut containers = self.api.containers.clone();
        let list = self
            .call(networks.list_networks(api::ListNetworksRequest {}))
            .map_err(fail("list networks"))?;
        snapshot.add("gateway networks", list.networks.iter().map(canonical_network));
        let list = self
            .call(containers.list_containers(api::ListContainersRequest { all: true }))
            .map_err(fail("list containers"))?;
        snapshot.add("gateway containers", list.containers.iter().map(canonical_container));

        let c = &self.clients;
        let pools = self
            .call(c.ipam.clone().list_pools(ipam::ListPoolsRequest {}))
            .map_err(fail("ipam pools"))?;
        snapshot.add("ipam pools", pools.pools.iter().map(|p| format!("{p:?}")));
        let allocations = self
            .call(c.ipam.clone().list_allocations(ipam::ListAllocationsRequest::default()))
            .map_err(fail("ipam allocations"))?;
        snapshot.add("ipam allocations", allocations.allocations.iter().map(|a| format!("{a:?}")));
        let bridges = self
            .call(c.bridge.clone().list_bridges(bridge::ListBridgesRequest {}))
            .map_err(fail("bridges"))?;
        snapshot.add("bridge bridges", bridges.bridges.iter().map(|b| format!("{b:?}")));
        let sandboxes = self
            .call(c.bridge.clone().list_sandboxes(bridge::ListSandboxesRequest {}))
            .map_err(fail("sandboxes"))?;
        snapshot.add("bridge sandboxes", sandboxes.sandboxes.iter().map(|s| format!("{s:?}")));
        let endpoints = self
            .call(c.bridge.clone().list_endpoints(bridge::ListEndpointsRequest {}))
            .map_err(fail("endpoints"))?;
        snapshot.add("bridge endpoints", endpoints.endpoints.iter().map(|e| format!("{e:?}")));
        let registered = self
            .call(c.dns.clone().list_containers(dns::ListContainersRequest {}))
            .map_err(fail("dns containers"))?;
        snapshot.add("dns containers", registered.containers.iter().map(|c| format!("{c:?}")));
        let records = self
            .call(c.dns.clone().list_records(dns::ListRecordsRequest::default()))
            .map_err(fail("dns records"))?;
        snapshot.add("dns records", records.records.iter().map(|r| format!("{r:?}")));
        let described = self
            .call(c.hosts.clone().list_containers(hosts::ListContainersRequest {}))
            .map_err(fail("hosts containers"))?;
        snapshot.add("hosts containers", described.containers.iter().map(canonical_hosts));
        let filtered = self
            .call(c.nat.clone().list_networks(nat::ListNetworksRequest {}))
            .map_err(fail("nat networks"))?;
        snapshot.add("nat networks", filtered.networks.iter().map(|n| format!("{n:?}")));
        let mappings = self
            .call(c.nat.clone().list_mappings(nat::ListMappingsRequest::default()))
            .map_err(fail("nat mappings"))?;
        snapshot.add("nat mappings", mappings.bindings.iter().map(|b| format!("{b:?}")));

        self.kernel(&mut snapshot)?;
        let mut dirs = Vec::new();
        container_dirs(&self.cluster.state_dir(), &self.cluster.state_dir(), 0, &mut dirs);
        snapshot.add("per-container directories", dirs);
        Ok(snapshot)
    }

    /// The cluster's "host" namespace as the kernel sees it, in one shell.
    fn kernel(&self, snapshot: &mut Snapshot) -> Checked {
        let script = format!(
            "echo '## links'; ip -o link show | sed -E 's/^[0-9]+: //'
             echo '## addresses'; ip -o -4 addr show | awk '{{print $2, $4}}'
             echo '## routes'; ip -4 route show table all
             echo '## firewall rules'; iptables-save 2>/dev/null | grep CNET | sed -E 's/ \\[[0-9]+:[0-9]+\\]$//'
             echo '## listening sockets'; ss -Htuln | awk '{{print $1, $5}}'
             echo '## network namespaces'; ls {netns} 2>/dev/null
             echo '## processes'; ps -e -o comm= | grep -E '^(sleep|true|false|cnet.*)$'",
            netns = self.cluster.runtime_dir().join("netns").display(),
        );
        let run = self.cluster.sh(&script);
        if run.code != 0 {
            return Err(format!("snapshot of the kernel failed: {run:#?}"));
        }
        let mut section = String::new();
        let mut lines = Vec::new();
        for line in run.stdout.lines() {
            if let Some(name) = line.strip_prefix("## ") {
                if !section.is_empty() {
                    snapshot.add_owned(format!("kernel {section}"), std::mem::take(&mut lines));
                }
                section = name.to_owned();
            } else {
                lines.push(line.trim().to_owned());
            }
        }
        snapshot.add_owned(format!("kernel {section}"), lines);
        Ok(())
    }
}

/// The gateway's lookup rule (exact name or id, else a unique id prefix).
fn resolve<T: Copy>(items: &[(T, &str, &str)], reference: &str) -> Option<T> {
    if let Some((item, _, _)) =
        items.iter().find(|(_, id, name)| *id == reference || *name == reference)
    {
        return Some(*item);
    }
    if reference.is_empty() {
        return None;
    }
    let mut prefixed = items.iter().filter(|(_, id, _)| id.starts_with(reference));
    match (prefixed.next(), prefixed.next()) {
        (Some((item, _, _)), None) => Some(*item),
        _ => None,
    }
}

/// Directories named by a container id (64 hex digits) under `root`.
fn container_dirs(root: &Path, dir: &Path, depth: usize, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()) {
            found.push(path.strip_prefix(root).unwrap_or(&path).display().to_string());
        } else if depth < 3 {
            container_dirs(root, &path, depth + 1, found);
        }
    }
}

fn sorted<K: Ord + Debug, V: Debug>(map: impl IntoIterator<Item = (K, V)>) -> String {
    format!("{:?}", map.into_iter().collect::<BTreeMap<K, V>>())
}

/// A network as one line, maps in key order (prost maps are `HashMap`s).
fn canonical_network(network: &api::Network) -> String {
    let mut plain = network.clone();
    let labels = sorted(std::mem::take(&mut plain.labels));
    let options = sorted(std::mem::take(&mut plain.options));
    format!("{plain:?} labels={labels} options={options}")
}

fn canonical_container(container: &api::Container) -> String {
    let mut plain = container.clone();
    let networks = sorted(std::mem::take(&mut plain.networks));
    format!("{plain:?} networks={networks}")
}

/// A hosts record without its files' paths (a rewrite makes a new file, by design) but
/// with their contents.
fn canonical_hosts(container: &hosts::Container) -> String {
    let mut plain = container.clone();
    if let Some(files) = plain.files.as_mut() {
        files.hosts_path.clear();
        files.resolv_conf_path.clear();
        files.hostname_path.clear();
    }
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let files = plain.files.take().unwrap_or_default();
    format!(
        "{plain:?} hosts={:?} resolv.conf={:?} hostname={:?}",
        text(&files.hosts),
        text(&files.resolv_conf),
        text(&files.hostname)
    )
}

/// The observable state, by section.
#[derive(Debug, Clone, Default, PartialEq)]
struct Snapshot {
    sections: BTreeMap<String, Vec<String>>,
}

impl Snapshot {
    fn add(&mut self, section: &str, lines: impl IntoIterator<Item = String>) {
        self.add_owned(section.to_owned(), lines.into_iter().collect());
    }

    fn add_owned(&mut self, section: String, mut lines: Vec<String>) {
        lines.sort();
        self.sections.insert(section, lines);
    }

    /// The lines only one side has, per section; `None` when equal.
    fn diff(&self, after: &Snapshot) -> Option<String> {
        let mut text = String::new();
        let empty = Vec::new();
        let names: std::collections::BTreeSet<&String> =
            self.sections.keys().chain(after.sections.keys()).collect();
        for name in names {
            let old = self.sections.get(name).unwrap_or(&empty);
            let new = after.sections.get(name).unwrap_or(&empty);
            if old == new {
                continue;
            }
            text.push_str(&format!("  [{name}]\n"));
            for line in old.iter().filter(|l| !new.contains(l)) {
                text.push_str(&format!("    - {}\n", clip(line, 600)));
            }
            for line in new.iter().filter(|l| !old.contains(l)) {
                text.push_str(&format!("    + {}\n", clip(line, 600)));
            }
        }
        (!text.is_empty()).then_some(text)
    }
}

// ---------------------------------------------------------------------------------------
// Judging answers
// ---------------------------------------------------------------------------------------

/// What is wrong with a refusal, if anything: the code, or a message that is not human
/// text. `request` is the request as shown, so that markers it contains itself (echoed
/// back) do not count against the message.
fn refusal_problem(status: &Status, request: &str, size_limit: bool) -> Option<String> {
    let code = status.code();
    let refusal = matches!(
        code,
        Code::InvalidArgument | Code::NotFound | Code::AlreadyExists | Code::FailedPrecondition
    ) || (size_limit && matches!(code, Code::OutOfRange | Code::ResourceExhausted));
    if !refusal {
        return Some(format!("code {code:?} is not a refusal of bad input"));
    }
    let message = status.message();
    if message.trim().is_empty() {
        return Some("the message is empty".into());
    }
    const DUMP_MARKERS: &[&str] = &[
        "panicked",
        "thread '",
        "RUST_BACKTRACE",
        "called `",
        "Status {",
        "code: ",
        "message: \"",
        "Error {",
        "Os {",
        "kind: ",
        "source: ",
        "Some(",
        "None)",
    ];
    DUMP_MARKERS
        .iter()
        .find(|marker| message.contains(*marker) && !request.contains(*marker))
        .map(|marker| format!("the message looks like a debug dump ({marker:?})"))
}

fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} more bytes)", &text[..end], text.len() - end)
}

fn show(request: &Request) -> String {
    clip(&collapse_runs(&format!("{request:?}")), 3000)
}

/// `"nnnnnnnn…"` as `⟨n×20000⟩`, and the same for a repeated escape such as `\n`, so
/// that a long input stays readable in a failure message.
fn collapse_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    'outer: while i < chars.len() {
        for unit in [1, 2] {
            let piece = &chars[i..(i + unit).min(chars.len())];
            let mut count = 1;
            while chars.get(i + count * unit..i + (count + 1) * unit) == Some(piece) {
                count += 1;
            }
            if count * unit > 24 {
                let piece: String = piece.iter().collect();
                out.push_str(&format!("\u{27e8}{piece}\u{d7}{count}\u{27e9}"));
                i += count * unit;
                continue 'outer;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// What Docker 20.10, and so cnet, checks only when a created container starts: a static
/// address outside the network's subnets (DOCKER_SEMANTICS NET-9).
const LATE_BY_DESIGN: &[&str] = &["It does not belong to any of this network's subnets"];

/// Bugs this test found that are not fixed yet, by a piece of their refusal's message:
/// the random cases count them instead of failing again and again on them, while the
/// FOUND entries of [`REGRESSIONS`] keep failing until they are fixed. Remove an entry
/// once its bug is fixed.
const KNOWN_BUGS: &[(&str, &str)] = &[];

fn known_bug(status: &Status) -> Option<&'static str> {
    KNOWN_BUGS.iter().find(|(piece, _)| status.message().contains(piece)).map(|(_, why)| *why)
}

fn show_status(status: &Status) -> String {
    format!("{:?}: {:?}", status.code(), clip(status.message(), 1000))
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value.parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

fn seed() -> u64 {
    match std::env::var("CNET_FUZZ_SEED").as_deref() {
        Err(_) => DEFAULT_SEED,
        Ok("random") => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            nanos ^ u64::from(std::process::id()).rotate_left(32)
        }
        Ok(number) => number.parse().expect("CNET_FUZZ_SEED is a number or \"random\""),
    }
}

#[test]
fn random_and_malformed_requests_are_refused_cleanly_or_undone_without_a_trace() {
    let started = Instant::now();
    let fuzz = Fuzz::start();
    eprintln!("baseline ready in {:.1?}", started.elapsed());

    // 1. The hand-written corpus, all of it, before anything random.
    let corpus_started = Instant::now();
    let mut failures = Vec::new();
    for regression in REGRESSIONS {
        if let Err(problem) = fuzz.case(&regression.case.op(), regression.expect) {
            failures.push(format!("regression case {:?}: {problem}", regression.why));
        }
    }
    eprintln!(
        "{} regression cases in {:.1?}, {} failed",
        REGRESSIONS.len(),
        corpus_started.elapsed(),
        failures.len()
    );

    // 2. Random cases, bounded in number and time, replaying persisted failures first.
    let cases = env_number("CNET_FUZZ_CASES", u64::from(DEFAULT_CASES)) as u32;
    let budget = Duration::from_secs(env_number("CNET_FUZZ_SECS", DEFAULT_SECONDS));
    let seed = seed();
    eprintln!("random cases: up to {cases} in {budget:?}, seed {seed} (CNET_FUZZ_SEED={seed})");
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(PERSISTED))),
        // Each shrinking step is a real request; keep shrinking within the budget too.
        max_shrink_iters: 200,
        max_shrink_time: 60_000,
        max_local_rejects: 10_000,
        ..Config::default()
    };
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let random_started = Instant::now();
    let ran = Cell::new(0u32);
    let result = runner.run(&op(), |op| {
        if random_started.elapsed() > budget {
            return Ok(());
        }
        ran.set(ran.get() + 1);
        fuzz.case(&op, Expect::AnyButKnown).map_err(TestCaseError::fail)
    });
    eprintln!(
        "{} random cases in {:.1?}; stats: {:#?}",
        ran.get(),
        random_started.elapsed(),
        fuzz.stats.borrow()
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, op)) => failures.push(format!(
            "random case (shrunk to {op:#?}, its seed saved in {PERSISTED}): {reason}"
        )),
        Err(TestError::Abort(reason)) => failures.push(format!("proptest aborted: {reason}")),
    }

    // 3. Nothing leaked overall.
    match fuzz.snapshot() {
        Ok(end) => {
            if let Some(diff) = fuzz.baseline.diff(&end) {
                failures.push(format!("the state at the end differs from the baseline:\n{diff}"));
            }
        }
        Err(problem) => failures.push(problem),
    }
    match fuzz.drift() {
        Ok(drift) if drift.is_empty() => {}
        Ok(drift) => failures.push(format!("drift at the end: {drift:#?}")),
        Err(problem) => failures.push(format!("system check at the end: {problem}")),
    }
    if let Err(problem) = fuzz.healthy() {
        failures.push(problem);
    }
    eprintln!("total {:.1?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}\n\ngateway log:\n{}",
        failures.len(),
        failures.join("\n\n"),
        fuzz.cluster.log_tail("gateway")
    );
}

/// A message of about `bytes` in one field.
fn huge(bytes: usize) -> String {
    "n".repeat(bytes)
}

#[test]
fn oversized_requests_and_floods_get_answers_and_leave_the_gateway_serving() {
    let started = Instant::now();
    let fuzz = Fuzz::start();
    let mut failures = Vec::new();
    let mut expect_refusal = |what: &str, answer: Result<(), Status>, size_limit: bool| match answer
    {
        Ok(()) => failures.push(format!("{what}: succeeded")),
        Err(status) => {
            if let Some(problem) = refusal_problem(&status, "", size_limit) {
                failures.push(format!("{what}: {}: {problem}", show_status(&status)));
            }
        }
    };
    let mut networks = fuzz.api.networks.clone();
    let mut containers = fuzz.api.containers.clone();

    // Over tonic's 4 MiB limit: refused before any handler runs.
    let over = MAX_MESSAGE + 1024;
    let big_name = api::CreateNetworkRequest { name: huge(over), ..Default::default() };
    expect_refusal(
        "a 4 MiB network name",
        fuzz.call(networks.create_network(big_name)).map(drop),
        true,
    );
    let labels: HashMap<String, String> =
        (0..1100).map(|i| (format!("l{i}"), huge(4096))).collect();
    let big_labels =
        api::CreateNetworkRequest { name: "fzbig".into(), labels, ..Default::default() };
    expect_refusal(
        "4.4 MiB of labels",
        fuzz.call(networks.create_network(big_labels)).map(drop),
        true,
    );
    let big_env = api::CreateContainerRequest {
        env: vec![format!("A={}", huge(over))],
        ..Default::default()
    };
    expect_refusal(
        "a 4 MiB variable",
        fuzz.call(containers.run_container(big_env)).map(drop),
        true,
    );
    let many_ports = api::CreateContainerRequest {
        ports: vec![api::PortMapping { container_port: 80, ..Default::default() }; over / 4],
        ..Default::default()
    };
    expect_refusal(
        "a million port mappings",
        fuzz.call(containers.run_container(many_ports)).map(drop),
        true,
    );
    // Under the limit but far beyond any sane value: refused by the rules (fixed: the
    // refusal echoed the input whole, so the client got "h2 protocol error" instead; see
    // the 20 000-character entry of REGRESSIONS).
    let long_name =
        api::CreateContainerRequest { name: huge(3 * 1024 * 1024), ..Default::default() };
    let answer = fuzz.call(containers.create_container(long_name)).map(drop);
    expect_refusal("a 3 MiB container name", answer, false);
    let long_ref = api::InspectNetworkRequest { network: huge(3 * 1024 * 1024) };
    expect_refusal(
        "a 3 MiB network reference",
        fuzz.call(networks.inspect_network(long_ref)).map(drop),
        false,
    );
    // Each under the limit, together more than a client can read back: networks (and
    // containers) of 2.4 MiB each are refused, or listing two of them still works.
    let bulky = || (0..600).map(|i| (format!("K{i}"), huge(4096)));
    let mut bulky_networks = Vec::new();
    let mut bulky_containers = Vec::new();
    for n in 0..2 {
        let labels = bulky().collect();
        let request =
            api::CreateNetworkRequest { name: format!("fzbulky{n}"), labels, ..Default::default() };
        match fuzz.call(networks.create_network(request)) {
            Ok(network) => bulky_networks.push(network.id),
            Err(status) => {
                if let Some(problem) = refusal_problem(&status, "", true) {
                    failures
                        .push(format!("2.4 MiB of labels: {}: {problem}", show_status(&status)));
                }
            }
        }
        let env = bulky().map(|(k, v)| format!("{k}={v}")).collect();
        let request =
            api::CreateContainerRequest { name: format!("fzbulky{n}"), env, ..Default::default() };
        match fuzz.call(containers.create_container(request)) {
            Ok(container) => bulky_containers.push(container.id),
            Err(status) => {
                if let Some(problem) = refusal_problem(&status, "", true) {
                    failures.push(format!("2.4 MiB of env: {}: {problem}", show_status(&status)));
                }
            }
        }
    }
    if bulky_networks.len() == 2
        && let Err(status) = fuzz.call(networks.list_networks(api::ListNetworksRequest {}))
    {
        failures.push(format!(
            "two networks with 2.4 MiB of labels each were accepted, and since then \
             ListNetworks answers {}",
            show_status(&status)
        ));
    }
    if bulky_containers.len() == 2
        && let Err(status) =
            fuzz.call(containers.list_containers(api::ListContainersRequest { all: true }))
    {
        failures.push(format!(
            "two containers with 2.4 MiB of environment each were accepted, and since \
             then ListContainers answers {}",
            show_status(&status)
        ));
    }
    for network in bulky_networks {
        if let Err(status) =
            fuzz.call(networks.remove_network(api::RemoveNetworkRequest { network }))
        {
            failures.push(format!("removing a bulky network: {}", show_status(&status)));
        }
    }
    for container in bulky_containers {
        let request = api::RemoveContainerRequest { container, force: true };
        if let Err(status) = fuzz.call(containers.remove_container(request)) {
            failures.push(format!("removing a bulky container: {}", show_status(&status)));
        }
    }
    if let Err(problem) = fuzz.healthy() {
        failures.push(format!("after the oversized requests: {problem}"));
    }
    let snapshot = |fuzz: &Fuzz, what: &str, failures: &mut Vec<String>| match fuzz.snapshot() {
        Ok(now) => {
            if let Some(diff) = fuzz.baseline.diff(&now) {
                failures.push(format!("{what} changed the state:\n{diff}"));
            }
        }
        Err(problem) => failures.push(format!("{what}: {problem}")),
    };
    snapshot(&fuzz, "the oversized requests", &mut failures);
    eprintln!("oversized requests done at {:.1?}", started.elapsed());

    // A burst of 500 concurrent bad requests over a few connections: every one answered
    // with a refusal, in bounded time.
    let flood_started = Instant::now();
    let channels: Vec<Channel> = (0..4)
        .map(|_| {
            let _entered = fuzz.api.enter();
            cnet_common::client::channel(&fuzz.cluster.gateway_target()).expect("gateway address")
        })
        .collect();
    let answers: Vec<(usize, Result<(), Status>)> = fuzz.api.block(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..500usize {
            let channel = channels[i % channels.len()].clone();
            tasks.spawn(async move {
                let mut networks =
                    api::network_service_client::NetworkServiceClient::new(channel.clone());
                let mut containers =
                    api::container_service_client::ContainerServiceClient::new(channel);
                let answer = match i % 10 {
                    0 => networks
                        .create_network(api::CreateNetworkRequest {
                            name: format!("bad/{i}"),
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    1 => networks
                        .create_network(api::CreateNetworkRequest {
                            name: format!("fzflood{i}"),
                            subnet: FUZZNET_SUBNET.into(),
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    2 => containers
                        .run_container(api::CreateContainerRequest {
                            network: "nosuchnet".into(),
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    3 => containers
                        .run_container(api::CreateContainerRequest {
                            network: FUZZNET.into(),
                            ip: "10.77.0.128".into(),
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    4 => containers
                        .create_container(api::CreateContainerRequest {
                            name: "web".into(),
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    5 => networks
                        .connect_network(api::ConnectNetworkRequest {
                            network: FUZZNET.into(),
                            container: "web".into(),
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    6 => networks
                        .disconnect_network(api::DisconnectNetworkRequest {
                            network: "bridge".into(),
                            container: "web".into(),
                        })
                        .await
                        .map(drop),
                    7 => containers
                        .remove_container(api::RemoveContainerRequest {
                            container: "web".into(),
                            force: false,
                        })
                        .await
                        .map(drop),
                    8 => networks
                        .remove_network(api::RemoveNetworkRequest { network: FUZZNET.into() })
                        .await
                        .map(drop),
                    _ => containers
                        .run_container(api::CreateContainerRequest {
                            ports: vec![api::PortMapping {
                                host_port: WEB_PORT,
                                container_port: 80,
                                ..Default::default()
                            }],
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                };
                (i, answer)
            });
        }
        let mut answers = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
            answers.push(joined.expect("flood task"));
        }
        answers
    });
    let flood_time = flood_started.elapsed();
    eprintln!("500 concurrent bad requests answered in {flood_time:.1?}");
    if answers.len() != 500 {
        failures.push(format!(
            "only {} of 500 concurrent requests were answered within 90 s",
            answers.len()
        ));
    }
    let mut codes = BTreeMap::<String, u32>::new();
    for (i, answer) in &answers {
        match answer {
            Ok(()) => failures.push(format!("flood request {i} (kind {}) succeeded", i % 10)),
            Err(status) => {
                *codes.entry(format!("{:?}", status.code())).or_default() += 1;
                if let Some(problem) = refusal_problem(status, "", false) {
                    failures.push(format!(
                        "flood request {i} (kind {}): {}: {problem}",
                        i % 10,
                        show_status(status)
                    ));
                }
            }
        }
    }
    eprintln!("flood answers by code: {codes:?}");
    if let Err(problem) = fuzz.healthy() {
        failures.push(format!("after the flood: {problem}"));
    }
    snapshot(&fuzz, "the flood", &mut failures);

    // Racing creates of one name: exactly one wins, the others are refused, and removing
    // the winner leaves nothing.
    let race = |what: &str,
                failures: &mut Vec<String>,
                make: &dyn Fn(Channel) -> Call<Result<String, Status>>| {
        let answers: Vec<Result<String, Status>> = fuzz.api.block(async {
            let calls = (0..12).map(|i| make(channels[i % channels.len()].clone())).collect();
            let joined = tokio::time::timeout(Duration::from_secs(60), join_all(calls)).await;
            joined.unwrap_or_default()
        });
        if answers.is_empty() {
            failures.push(format!("{what}: the racing creates were not all answered in 60 s"));
            return Vec::new();
        }
        let won: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
        if won.len() != 1 {
            failures.push(format!(
                "{what}: {} of {} racing creates succeeded: {answers:?}",
                won.len(),
                answers.len()
            ));
        }
        for answer in &answers {
            if let Err(status) = answer
                && (status.code() != Code::AlreadyExists
                    || refusal_problem(status, "", false).is_some())
            {
                failures.push(format!("{what}: a loser got {}", show_status(status)));
            }
        }
        won.into_iter().cloned().collect::<Vec<_>>()
    };
    let won = race("network", &mut failures, &|channel| {
        Box::pin(async move {
            let mut networks = api::network_service_client::NetworkServiceClient::new(channel);
            let request = api::CreateNetworkRequest {
                name: "fzrace".into(),
                subnet: "10.88.0.0/24".into(),
                ..Default::default()
            };
            networks.create_network(request).await.map(|r| r.into_inner().id)
        })
    });
    for id in won {
        if let Err(status) =
            fuzz.call(networks.remove_network(api::RemoveNetworkRequest { network: id }))
        {
            failures.push(format!("removing the raced network: {}", show_status(&status)));
        }
    }
    let won = race("container", &mut failures, &|channel| {
        Box::pin(async move {
            let mut containers =
                api::container_service_client::ContainerServiceClient::new(channel);
            let request = api::CreateContainerRequest {
                name: "fzrace".into(),
                network: FUZZNET.into(),
                ..Default::default()
            };
            containers.run_container(request).await.map(|r| r.into_inner().id)
        })
    });
    for id in won {
        let request = api::RemoveContainerRequest { container: id, force: true };
        if let Err(status) = fuzz.call(containers.remove_container(request)) {
            failures.push(format!("removing the raced container: {}", show_status(&status)));
        }
    }
    if let Err(problem) = fuzz.healthy() {
        failures.push(format!("after the races: {problem}"));
    }
    snapshot(&fuzz, "the races", &mut failures);
    match fuzz.drift() {
        Ok(drift) if drift.is_empty() => {}
        Ok(drift) => failures.push(format!("drift at the end: {drift:#?}")),
        Err(problem) => failures.push(format!("system check at the end: {problem}")),
    }
    eprintln!("total {:.1?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}\n\ngateway log:\n{}",
        failures.len(),
        failures.join("\n\n"),
        fuzz.cluster.log_tail("gateway")
    );
}

/// A call in flight, boxed so that different calls fit in one list.
type Call<T> = std::pin::Pin<Box<dyn Future<Output = T>>>;

/// Awaits every future concurrently (on the current task), in order.
async fn join_all<T>(futures: Vec<Call<T>>) -> Vec<T> {
    let mut slots: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    let mut pending: Vec<(usize, Call<T>)> = futures.into_iter().enumerate().collect();
    std::future::poll_fn(|cx| {
        pending.retain_mut(|(index, future)| match future.as_mut().poll(cx) {
            std::task::Poll::Ready(value) => {
                slots[*index] = Some(value);
                false
            }
            std::task::Poll::Pending => true,
        });
        if pending.is_empty() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    slots.into_iter().map(|slot| slot.expect("every future finished")).collect()
}
