//! The binary against a fake gateway on a Unix socket: what each command prints on
//! stdout and stderr, and its exit code, including `run` following a container's log
//! until it exits. The fake keeps just enough state to answer like the real one.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{Arc, Mutex},
    time::Duration,
};

use cnet_proto::gateway::v1::{
    Container, ContainerState, CreateContainerRequest, CreateNetworkRequest,
    InspectContainerRequest, InspectNetworkRequest, IpamConfig, ListContainersRequest,
    ListContainersResponse, ListNetworksRequest, ListNetworksResponse, Network,
    RemoveContainerRequest, RemoveContainerResponse, RemoveNetworkRequest, RemoveNetworkResponse,
    StartContainerRequest, StopContainerRequest,
    container_service_server::{ContainerService, ContainerServiceServer},
    network_service_server::{NetworkService, NetworkServiceServer},
};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
struct Fake {
    networks: Arc<Mutex<Vec<Network>>>,
    containers: Arc<Mutex<Vec<Container>>>,
    logs: PathBuf,
}

impl Fake {
    fn network(&self, name: &str) -> Result<Network, Status> {
        let networks = self.networks.lock().unwrap();
        let found = networks.iter().find(|n| n.name == name || n.id.starts_with(name));
        found.cloned().ok_or_else(|| Status::not_found(format!("network {name} not found")))
    }

    fn container(&self, name: &str) -> Result<Container, Status> {
        let containers = self.containers.lock().unwrap();
        let found = containers.iter().find(|c| c.name == name || c.id.starts_with(name));
        found.cloned().ok_or_else(|| Status::not_found(format!("No such container: {name}")))
    }
}

#[tonic::async_trait]
impl NetworkService for Fake {
    async fn create_network(
        &self,
        request: Request<CreateNetworkRequest>,
    ) -> Result<Response<Network>, Status> {
        let request = request.into_inner();
        if self.network(&request.name).is_ok() {
            let message = format!("network with name {} already exists", request.name);
            return Err(Status::already_exists(message));
        }
        let network = Network {
            id: format!("{:064x}", self.networks.lock().unwrap().len() + 0xabc),
            name: request.name,
            driver: "bridge".into(),
            ipam: Some(IpamConfig {
                subnet: request.subnet,
                ip_range: request.ip_range,
                gateway: request.gateway,
            }),
            ..Default::default()
        };
        self.networks.lock().unwrap().push(network.clone());
        Ok(Response::new(network))
    }

    async fn list_networks(
        &self,
        _: Request<ListNetworksRequest>,
    ) -> Result<Response<ListNetworksResponse>, Status> {
        let networks = self.networks.lock().unwrap().clone();
        Ok(Response::new(ListNetworksResponse { networks }))
    }

    async fn inspect_network(
        &self,
        request: Request<InspectNetworkRequest>,
    ) -> Result<Response<Network>, Status> {
        self.network(&request.into_inner().network).map(Response::new)
    }

    async fn remove_network(
        &self,
        request: Request<RemoveNetworkRequest>,
    ) -> Result<Response<RemoveNetworkResponse>, Status> {
        let network = self.network(&request.into_inner().network)?;
        self.networks.lock().unwrap().retain(|n| n.id != network.id);
        Ok(Response::new(RemoveNetworkResponse { id: network.id }))
    }

    async fn prune_networks(
        &self,
        _: Request<cnet_proto::gateway::v1::PruneNetworksRequest>,
    ) -> Result<Response<cnet_proto::gateway::v1::PruneNetworksResponse>, Status> {
        Err(Status::unimplemented("prune is not faked"))
    }

    async fn connect_network(
        &self,
        _: Request<cnet_proto::gateway::v1::ConnectNetworkRequest>,
    ) -> Result<Response<Container>, Status> {
        Err(Status::unimplemented("connect is not faked"))
    }

    async fn disconnect_network(
        &self,
        _: Request<cnet_proto::gateway::v1::DisconnectNetworkRequest>,
    ) -> Result<Response<Container>, Status> {
        Err(Status::unimplemented("disconnect is not faked"))
    }
}

#[tonic::async_trait]
impl ContainerService for Fake {
    async fn create_container(
        &self,
        request: Request<CreateContainerRequest>,
    ) -> Result<Response<Container>, Status> {
        let request = request.into_inner();
        let id = format!("{:064x}", self.containers.lock().unwrap().len() + 0xc0ffee);
        let container = Container {
            log_path: self.logs.join(format!("{id}.log")).display().to_string(),
            id,
            name: request.name,
            command: request.command,
            state: ContainerState::Created as i32,
            created: "2024-05-01T12:00:00Z".into(),
            network_mode: "bridge".into(),
            ..Default::default()
        };
        self.containers.lock().unwrap().push(container.clone());
        Ok(Response::new(container))
    }

    /// Runs the "container" as a task: it writes its command line to its log, a line
    /// at a time, then exits with the code given as the last word of the command.
    async fn run_container(
        &self,
        request: Request<CreateContainerRequest>,
    ) -> Result<Response<Container>, Status> {
        let mut container = self.create_container(request).await?.into_inner();
        container.state = ContainerState::Running as i32;
        container.pid = 1;
        self.update(&container);
        let fake = self.clone();
        let running = container.clone();
        tokio::spawn(async move {
            for word in &running.command {
                let mut log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&running.log_path)
                    .unwrap();
                log.write_all(format!("{word}\n").as_bytes()).unwrap();
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            let mut exited = running.clone();
            exited.state = ContainerState::Exited as i32;
            exited.pid = 0;
            exited.exit_code = running.command.last().and_then(|w| w.parse().ok()).unwrap_or(-1);
            fake.update(&exited);
        });
        Ok(Response::new(container))
    }

    async fn start_container(
        &self,
        request: Request<StartContainerRequest>,
    ) -> Result<Response<Container>, Status> {
        let mut container = self.container(&request.into_inner().container)?;
        container.state = ContainerState::Running as i32;
        self.update(&container);
        Ok(Response::new(container))
    }

    async fn stop_container(
        &self,
        request: Request<StopContainerRequest>,
    ) -> Result<Response<Container>, Status> {
        let request = request.into_inner();
        let mut container = self.container(&request.container)?;
        if request.timeout_seconds != Some(3) {
            return Err(Status::invalid_argument("the test always passes -t 3"));
        }
        container.state = ContainerState::Exited as i32;
        self.update(&container);
        Ok(Response::new(container))
    }

    async fn remove_container(
        &self,
        request: Request<RemoveContainerRequest>,
    ) -> Result<Response<RemoveContainerResponse>, Status> {
        let request = request.into_inner();
        let container = self.container(&request.container)?;
        if container.state() == ContainerState::Running && !request.force {
            let message = format!("cannot remove running container {}", container.id);
            return Err(Status::failed_precondition(message));
        }
        self.containers.lock().unwrap().retain(|c| c.id != container.id);
        Ok(Response::new(RemoveContainerResponse { id: container.id }))
    }

    async fn inspect_container(
        &self,
        request: Request<InspectContainerRequest>,
    ) -> Result<Response<Container>, Status> {
        self.container(&request.into_inner().container).map(Response::new)
    }

    async fn list_containers(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        let all = request.into_inner().all;
        let containers = self.containers.lock().unwrap().clone();
        let containers = containers
            .into_iter()
            .filter(|c| all || c.state() == ContainerState::Running)
            .collect();
        Ok(Response::new(ListContainersResponse { containers }))
    }
}

impl Fake {
    fn update(&self, container: &Container) {
        let mut containers = self.containers.lock().unwrap();
        if let Some(slot) = containers.iter_mut().find(|c| c.id == container.id) {
            *slot = container.clone();
        }
    }
}

struct Harness {
    _runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

impl Harness {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake { logs: dir.path().to_owned(), ..Default::default() };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let socket = dir.path().join("gateway.sock");
        let listener = runtime.block_on(async { UnixListener::bind(&socket) }).unwrap();
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(NetworkServiceServer::new(fake.clone()))
                .add_service(ContainerServiceServer::new(fake))
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        Self { _runtime: runtime, dir }
    }

    fn cnet(&self, line: &str) -> Output {
        cnet_in(self.dir.path(), line)
    }
}

fn cnet_in(runtime_dir: &Path, line: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnet"))
        .env_remove("CNET_HOST")
        .arg("--runtime-dir")
        .arg(runtime_dir)
        .args(line.split_whitespace())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn network_commands() {
    let harness = Harness::start();
    let created = harness.cnet(
        "network create --driver bridge --subnet 172.16.1.0/16 --ip-range 172.16.1.0/24 \
         --gateway 172.16.1.1 vswitch01",
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let id = stdout(&created).trim().to_owned();
    assert_eq!(id.len(), 64, "the full id: {id:?}");

    let again = harness.cnet("network create vswitch01");
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(stderr(&again), "Error: network with name vswitch01 already exists\n");

    let table = stdout(&harness.cnet("network ls"));
    assert_eq!(
        table,
        format!(
            "NETWORK ID     NAME        DRIVER    SCOPE\n{}   vswitch01   bridge    local\n",
            &id[..12]
        )
    );

    let inspect = harness.cnet("network inspect vswitch01 nosuchnet");
    assert_eq!(inspect.status.code(), Some(1));
    assert_eq!(stderr(&inspect), "Error: network nosuchnet not found\n");
    let json: serde_json::Value = serde_json::from_str(&stdout(&inspect)).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(
        json[0]["IPAM"]["Config"],
        serde_json::json!([{"Subnet": "172.16.1.0/16", "IPRange": "172.16.1.0/24", "Gateway": "172.16.1.1"}])
    );

    let removed = harness.cnet("network rm vswitch01 vswitch01");
    assert_eq!(removed.status.code(), Some(1), "the second one is gone already");
    assert_eq!(stdout(&removed), "vswitch01\n");
    assert_eq!(stderr(&removed), "Error: network vswitch01 not found\n");
}

#[test]
fn run_follows_the_output_and_returns_the_exit_code() {
    let harness = Harness::start();
    let run = harness.cnet("run --name echo -- hello world 3");
    assert_eq!(stdout(&run), "hello\nworld\n3\n");
    assert_eq!(run.status.code(), Some(3), "{}", stderr(&run));

    let logs = harness.cnet("logs echo");
    assert_eq!(stdout(&logs), "hello\nworld\n3\n");

    // No exit code known (-1): Docker's 125.
    let run = harness.cnet("run --name unknown -- a b");
    assert_eq!(run.status.code(), Some(125));
}

#[test]
fn container_lifecycle() {
    let harness = Harness::start();
    let run = harness
        .cnet("run -d --name centos1 --hostname centos1 --network vswitch01 -- a b c d e f g h 0");
    assert!(run.status.success(), "{}", stderr(&run));
    let id = stdout(&run).trim().to_owned();
    assert_eq!(id.len(), 64);

    let ps = stdout(&harness.cnet("ps"));
    let cells = |line: &str| -> Vec<String> {
        line.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(String::from).collect()
    };
    let lines: Vec<_> = ps.lines().collect();
    assert_eq!(lines.len(), 2, "{ps}");
    assert_eq!(
        cells(lines[0]),
        ["CONTAINER ID", "COMMAND", "CREATED", "STATUS", "NETWORKS", "NAMES"]
    );
    let row = cells(lines[1]);
    assert_eq!(row[..2], [id[..12].to_owned(), "\"a b c d e f g h 0\"".to_owned()]);
    assert!(row[2].ends_with(" ago"), "{row:?}");
    assert_eq!(row[3..], ["Up", "bridge", "centos1"], "the fake sets no start time");

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&harness.cnet("ps --format json"))).unwrap();
    assert_eq!(json[0]["Id"], id);

    let rm = harness.cnet("rm centos1");
    assert_eq!(rm.status.code(), Some(1));
    assert_eq!(stderr(&rm), format!("Error: cannot remove running container {id}\n"));

    let stop = harness.cnet("stop -t 3 centos1");
    assert_eq!(stdout(&stop), "centos1\n", "{}", stderr(&stop));
    assert!(stdout(&harness.cnet("ps -q")).is_empty(), "stopped containers are hidden");
    assert_eq!(stdout(&harness.cnet("ps -a -q")), format!("{}\n", &id[..12]));

    let start = harness.cnet("start centos1");
    assert_eq!(stdout(&start), "centos1\n");
    let rm = harness.cnet("rm -f centos1 ghost");
    assert_eq!(stdout(&rm), "centos1\n");
    assert_eq!(stderr(&rm), "Error: No such container: ghost\n");
    assert_eq!(rm.status.code(), Some(1));

    let inspect = harness.cnet("inspect centos1");
    assert_eq!(stdout(&inspect), "[]\n");
    assert_eq!(inspect.status.code(), Some(1));

    let created = harness.cnet("create --name later");
    assert!(created.status.success());
    let exec = harness.cnet("exec later -- true");
    assert_eq!(exec.status.code(), Some(1));
    let created_id = stdout(&created).trim().to_owned();
    assert_eq!(stderr(&exec), format!("Error: container {created_id} is not running\n"));
}
