//! The CLI's connection to the gateway: one lazily connecting channel, one method per
//! RPC, and the rule that turns a failed call into a message for people.

use cnet_common::client::TracedChannel;
use cnet_proto::gateway::v1::{
    CheckRequest, ConnectNetworkRequest, Container, CreateContainerRequest, CreateNetworkRequest,
    DisconnectNetworkRequest, Drift, InspectContainerRequest, InspectNetworkRequest,
    ListContainersRequest, ListNetworksRequest, Network, PruneNetworksRequest,
    RemoveContainerRequest, RemoveNetworkRequest, StartContainerRequest, StopContainerRequest,
    container_service_client::ContainerServiceClient, network_service_client::NetworkServiceClient,
    system_service_client::SystemServiceClient,
};
use tonic::{Code, Status, transport::ClientTlsConfig};

/// Listings grow with the cluster (a container's record may take 256 KiB): the CLI reads
/// replies far beyond tonic's 4 MiB default.
const MAX_REPLY_BYTES: usize = 256 * 1024 * 1024;

/// Each call carries the current span's trace context, so that the command's own span
/// is the root of the trace the gateway and its services add to.
pub struct Gateway {
    target: String,
    networks: NetworkServiceClient<TracedChannel>,
    containers: ContainerServiceClient<TracedChannel>,
    system: SystemServiceClient<TracedChannel>,
}

impl Gateway {
    /// Nothing is dialled yet: the first call connects (and fails clearly if nobody
    /// listens).
    pub fn connect(target: &str) -> anyhow::Result<Self> {
        Self::connect_with(target, None)
    }

    /// Like [`Gateway::connect`]; `tls` is used for an `https://` or `tls://` target.
    pub fn connect_with(target: &str, tls: Option<&ClientTlsConfig>) -> anyhow::Result<Self> {
        let channel = cnet_common::client::traced_channel_with(target, tls)?;
        Ok(Self {
            target: target.to_owned(),
            networks: NetworkServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_REPLY_BYTES),
            containers: ContainerServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_REPLY_BYTES),
            system: SystemServiceClient::new(channel).max_decoding_message_size(MAX_REPLY_BYTES),
        })
    }

    pub async fn create_network(&self, request: CreateNetworkRequest) -> anyhow::Result<Network> {
        self.answer(self.networks.clone().create_network(request).await)
    }

    pub async fn list_networks(&self) -> anyhow::Result<Vec<Network>> {
        let response = self.networks.clone().list_networks(ListNetworksRequest {}).await;
        Ok(self.answer(response)?.networks)
    }

    pub async fn inspect_network(&self, network: &str) -> anyhow::Result<Network> {
        let request = InspectNetworkRequest { network: network.to_owned() };
        self.answer(self.networks.clone().inspect_network(request).await)
    }

    pub async fn remove_network(&self, network: &str) -> anyhow::Result<()> {
        let request = RemoveNetworkRequest { network: network.to_owned() };
        self.answer(self.networks.clone().remove_network(request).await).map(drop)
    }

    pub async fn check(&self, repair: bool) -> anyhow::Result<Vec<Drift>> {
        let response = self.system.clone().check(CheckRequest { repair }).await;
        Ok(self.answer(response)?.drifts)
    }

    /// Names of the removed networks.
    pub async fn prune_networks(&self) -> anyhow::Result<Vec<String>> {
        let response = self.networks.clone().prune_networks(PruneNetworksRequest {}).await;
        Ok(self.answer(response)?.removed)
    }

    pub async fn connect_network(
        &self,
        request: ConnectNetworkRequest,
    ) -> anyhow::Result<Container> {
        self.answer(self.networks.clone().connect_network(request).await)
    }

    pub async fn disconnect_network(
        &self,
        network: &str,
        container: &str,
    ) -> anyhow::Result<Container> {
        let request = DisconnectNetworkRequest {
            network: network.to_owned(),
            container: container.to_owned(),
        };
        self.answer(self.networks.clone().disconnect_network(request).await)
    }

    pub async fn create_container(
        &self,
        request: CreateContainerRequest,
    ) -> anyhow::Result<Container> {
        self.answer(self.containers.clone().create_container(request).await)
    }

    pub async fn run_container(
        &self,
        request: CreateContainerRequest,
    ) -> anyhow::Result<Container> {
        self.answer(self.containers.clone().run_container(request).await)
    }

    pub async fn start_container(&self, container: &str) -> anyhow::Result<Container> {
        let request = StartContainerRequest { container: container.to_owned() };
        self.answer(self.containers.clone().start_container(request).await)
    }

    pub async fn stop_container(
        &self,
        container: &str,
        timeout_seconds: Option<u32>,
    ) -> anyhow::Result<Container> {
        let request = StopContainerRequest { container: container.to_owned(), timeout_seconds };
        self.answer(self.containers.clone().stop_container(request).await)
    }

    pub async fn remove_container(&self, container: &str, force: bool) -> anyhow::Result<()> {
        let request = RemoveContainerRequest { container: container.to_owned(), force };
        self.answer(self.containers.clone().remove_container(request).await).map(drop)
    }

    pub async fn inspect_container(&self, container: &str) -> anyhow::Result<Container> {
        let request = InspectContainerRequest { container: container.to_owned() };
        self.answer(self.containers.clone().inspect_container(request).await)
    }

    pub async fn list_containers(&self, all: bool) -> anyhow::Result<Vec<Container>> {
        let request = ListContainersRequest { all };
        Ok(self.answer(self.containers.clone().list_containers(request).await)?.containers)
    }

    fn answer<T>(&self, result: Result<tonic::Response<T>, Status>) -> anyhow::Result<T> {
        result
            .map(tonic::Response::into_inner)
            .map_err(|status| anyhow::anyhow!(describe(&self.target, &status)))
    }
}

/// The message for a failed call: the gateway's own words, or a hint to start cnet
/// when the gateway could not be reached at all.
pub fn describe(target: &str, status: &Status) -> String {
    if let Some(cause) = tls_failure(target, status) {
        return format!(
            "TLS with the cnet gateway at {target} failed: {cause} (check --tlscacert, \
             --tlscert and --tlskey)"
        );
    }
    // A status decoded from the wire never has a source; one made locally from a
    // transport error does. That tells "gateway down" from the gateway's own
    // UNAVAILABLE ("a backing service cannot be reached").
    if status.code() == Code::Unavailable && std::error::Error::source(status).is_some() {
        return format!(
            "cannot connect to the cnet gateway at {target}: is cnet running? \
             (start it with `cnet up -d`)"
        );
    }
    match status.message() {
        "" => format!("gateway call failed: {}", status.code().description()),
        message => message.to_owned(),
    }
}

/// Why the TLS connection to a `https://` or `tls://` gateway failed (a certificate the
/// other side refused), if that is what `status` says.
fn tls_failure(target: &str, status: &Status) -> Option<String> {
    if !(target.starts_with("https://") || target.starts_with("tls://")) {
        return None;
    }
    let mut cause: &dyn std::error::Error = std::error::Error::source(status)?;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let cause = cause.to_string();
    let lower = cause.to_lowercase();
    if ["certificate", "alert", "tls", "handshake"].iter().any(|word| lower.contains(word)) {
        return Some(cause);
    }
    // The gateway's alert may be lost when it closes the connection under our first
    // write: what is left is a closed connection or a broken pipe.
    let closed = ["connection closed", "broken pipe"].iter().any(|words| lower.contains(words));
    (closed && matches!(status.code(), Code::Cancelled | Code::Unknown))
        .then(|| "the gateway closed the connection (did it refuse the client certificate?)".into())
}

#[cfg(test)]
mod tests {
    use cnet_proto::gateway::v1::{
        ListNetworksResponse,
        network_service_server::{NetworkService, NetworkServiceServer},
    };
    use tokio::net::TcpListener;
    use tokio_stream::wrappers::TcpListenerStream;

    use super::*;

    #[tokio::test]
    async fn unreachable_gateway_says_how_to_start_cnet() {
        let dir = tempfile::tempdir().unwrap();
        let target = format!("unix://{}/gateway.sock", dir.path().display());
        let gateway = Gateway::connect(&target).unwrap();
        let error = gateway.list_networks().await.unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "cannot connect to the cnet gateway at {target}: is cnet running? \
                 (start it with `cnet up -d`)"
            )
        );
    }

    #[test]
    fn gateway_statuses_print_only_their_message() {
        let status = Status::not_found("network nosuchnet not found");
        assert_eq!(describe("unix:///x", &status), "network nosuchnet not found");
        // The gateway's own UNAVAILABLE is not "cnet is down".
        let status = Status::unavailable("ipam service unreachable");
        assert_eq!(describe("unix:///x", &status), "ipam service unreachable");
    }

    #[test]
    fn a_refused_tls_handshake_says_so() {
        let tls_error = |code: Code, cause: &str| {
            let mut status = Status::new(code, "transport error");
            let cause = std::io::Error::new(std::io::ErrorKind::InvalidData, cause.to_owned());
            status.set_source(std::sync::Arc::new(cause));
            status
        };
        let status = tls_error(Code::Unknown, "received fatal alert: CertificateRequired");
        assert_eq!(
            describe("https://gw:7411", &status),
            "TLS with the cnet gateway at https://gw:7411 failed: received fatal alert: \
             CertificateRequired (check --tlscacert, --tlscert and --tlskey)"
        );
        let status = tls_error(Code::Cancelled, "connection closed");
        assert!(
            describe("tls://gw:7411", &status).contains("did it refuse the client certificate")
        );
        let status = tls_error(Code::Unavailable, "invalid peer certificate: UnknownIssuer");
        assert!(describe("https://gw:7411", &status).contains("UnknownIssuer"));
        // Not a TLS target: the usual messages.
        let status = tls_error(Code::Unavailable, "connection refused");
        assert!(describe("https://gw:7411", &status).contains("is cnet running?"));
        assert!(describe("tcp://gw:7411", &status).contains("is cnet running?"));
    }

    /// A fake gateway answering one call proves the happy path through the real client.
    struct FakeNetworks;

    #[tonic::async_trait]
    impl NetworkService for FakeNetworks {
        async fn create_network(
            &self,
            request: tonic::Request<CreateNetworkRequest>,
        ) -> Result<tonic::Response<Network>, Status> {
            let name = request.into_inner().name;
            Err(Status::already_exists(format!("network with name {name} already exists")))
        }
        async fn list_networks(
            &self,
            _: tonic::Request<ListNetworksRequest>,
        ) -> Result<tonic::Response<ListNetworksResponse>, Status> {
            let network = Network { name: "bridge".into(), ..Default::default() };
            Ok(tonic::Response::new(ListNetworksResponse { networks: vec![network] }))
        }
        async fn inspect_network(
            &self,
            _: tonic::Request<InspectNetworkRequest>,
        ) -> Result<tonic::Response<Network>, Status> {
            Err(Status::unimplemented("inspect"))
        }
        async fn remove_network(
            &self,
            _: tonic::Request<RemoveNetworkRequest>,
        ) -> Result<tonic::Response<cnet_proto::gateway::v1::RemoveNetworkResponse>, Status>
        {
            Err(Status::unimplemented("remove"))
        }
        async fn prune_networks(
            &self,
            _: tonic::Request<cnet_proto::gateway::v1::PruneNetworksRequest>,
        ) -> Result<tonic::Response<cnet_proto::gateway::v1::PruneNetworksResponse>, Status>
        {
            Err(Status::unimplemented("prune"))
        }
        async fn connect_network(
            &self,
            _: tonic::Request<cnet_proto::gateway::v1::ConnectNetworkRequest>,
        ) -> Result<tonic::Response<Container>, Status> {
            Err(Status::unimplemented("connect"))
        }
        async fn disconnect_network(
            &self,
            _: tonic::Request<cnet_proto::gateway::v1::DisconnectNetworkRequest>,
        ) -> Result<tonic::Response<Container>, Status> {
            Err(Status::unimplemented("disconnect"))
        }
    }

    #[tokio::test]
    async fn answers_and_errors_from_a_live_gateway() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(NetworkServiceServer::new(FakeNetworks))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        let gateway = Gateway::connect(&format!("tcp://{address}")).unwrap();
        let networks = gateway.list_networks().await.unwrap();
        assert_eq!(networks[0].name, "bridge");
        let request = CreateNetworkRequest { name: "vswitch01".into(), ..Default::default() };
        let error = gateway.create_network(request).await.unwrap_err().to_string();
        assert_eq!(error, "network with name vswitch01 already exists");
    }
}
