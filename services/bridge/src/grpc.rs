//! The BridgeAgent gRPC service: proto requests become validated domain values here (the
//! only module that sees prost types), replies are built from records, and
//! [`Error`](crate::error::Error) becomes a status code in exactly one place.

use std::{path::PathBuf, sync::Arc};

use cnet_proto::bridge::v1 as pb;
use tonic::{Request, Response, Status};

use crate::{
    agent::{Agent, BridgeState},
    domain::{
        Bridge, Endpoint, EndpointRequest, FieldError, Invalid, Mtu, Sandbox,
        net::{parse_cidr, parse_ipv4},
        parse_field,
    },
    error::Error,
    kernel::Kernel,
};

pub struct BridgeService<K> {
    agent: Arc<Agent<K>>,
}

impl<K> BridgeService<K> {
    pub fn new(agent: Arc<Agent<K>>) -> Self {
        Self { agent }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidArgument(_) => Status::invalid_argument(message),
            Error::AlreadyExists(_) => Status::already_exists(message),
            Error::NotFound(_) => Status::not_found(message),
            Error::FailedPrecondition(_) => Status::failed_precondition(message),
            // A race with another creator of the same name surfaces as EEXIST.
            Error::Kernel(kernel) if kernel.kind() == std::io::ErrorKind::AlreadyExists => {
                Status::already_exists(message)
            }
            Error::Kernel(_) | Error::Store(_) | Error::Teardown(_) | Error::Serve(_) => {
                Status::internal(message)
            }
        }
    }
}

/// Attaches the request field name to a refusal.
fn field<T>(name: &'static str, parsed: Result<T, Invalid>) -> Result<T, Error> {
    parsed.map_err(|Invalid(reason)| FieldError::new(name, reason).into())
}

fn optional<T>(name: &'static str, value: &str) -> Result<Option<T>, Error>
where
    T: std::str::FromStr<Err = Invalid>,
{
    if value.is_empty() { Ok(None) } else { Ok(Some(parse_field(name, value)?)) }
}

fn bridge_from(request: pb::EnsureBridgeRequest) -> Result<Bridge, Error> {
    Ok(Bridge {
        network_id: parse_field("network_id", &request.network_id)?,
        name: parse_field("name", &request.name)?,
        gateway: field("gateway_cidr", parse_cidr(&request.gateway_cidr))?,
        mtu: field("mtu", Mtu::optional(request.mtu))?.unwrap_or(Mtu::DEFAULT),
    })
}

fn endpoint_request_from(request: pb::EnsureEndpointRequest) -> Result<EndpointRequest, Error> {
    let gateway = match request.gateway.as_str() {
        "" => None,
        gateway => Some(field("gateway", parse_ipv4(gateway))?),
    };
    let request = EndpointRequest {
        id: parse_field("id", &request.id)?,
        network_id: parse_field("network_id", &request.network_id)?,
        sandbox_id: parse_field("sandbox_id", &request.sandbox_id)?,
        ifname: optional("ifname", &request.ifname)?,
        address: field("address_cidr", parse_cidr(&request.address_cidr))?,
        gateway,
        mac: optional("mac", &request.mac)?,
        mtu: field("mtu", Mtu::optional(request.mtu))?,
        default_route: request.default_route,
    };
    request.validate()?;
    Ok(request)
}

fn netns_path_from(value: &str) -> Result<Option<PathBuf>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    let path = PathBuf::from(value);
    if !path.is_absolute() {
        return Err(FieldError::new("netns_path", format!("{value:?} is not absolute")).into());
    }
    Ok(Some(path))
}

fn bridge_to(state: BridgeState) -> pb::Bridge {
    let BridgeState { bridge, ifindex } = state;
    pb::Bridge {
        network_id: bridge.network_id.into(),
        name: bridge.name.into(),
        gateway_cidr: bridge.gateway.to_string(),
        mtu: bridge.mtu.get(),
        ifindex,
    }
}

fn sandbox_to(sandbox: Sandbox) -> pb::Sandbox {
    pb::Sandbox {
        id: sandbox.id.into(),
        netns_path: sandbox.netns_path.display().to_string(),
        owned: sandbox.owned,
    }
}

fn endpoint_to(endpoint: Endpoint) -> pb::Endpoint {
    pb::Endpoint {
        id: endpoint.id.into(),
        network_id: endpoint.network_id.into(),
        sandbox_id: endpoint.sandbox_id.into(),
        ifname: endpoint.ifname.into(),
        host_ifname: endpoint.host_ifname.into(),
        address_cidr: endpoint.address.to_string(),
        gateway: endpoint.gateway.map(|gateway| gateway.to_string()).unwrap_or_default(),
        mac: endpoint.mac.to_string(),
        mtu: endpoint.mtu.get(),
        default_route: endpoint.default_route,
    }
}

#[tonic::async_trait]
impl<K: Kernel> pb::bridge_agent_server::BridgeAgent for BridgeService<K> {
    #[tracing::instrument(skip_all, fields(network_id = %request.get_ref().network_id))]
    async fn ensure_bridge(
        &self,
        request: Request<pb::EnsureBridgeRequest>,
    ) -> Result<Response<pb::Bridge>, Status> {
        let bridge = bridge_from(request.into_inner())?;
        let state = self.agent.ensure_bridge(bridge).await?;
        Ok(Response::new(bridge_to(state)))
    }

    #[tracing::instrument(skip_all, fields(network_id = %request.get_ref().network_id))]
    async fn delete_bridge(
        &self,
        request: Request<pb::DeleteBridgeRequest>,
    ) -> Result<Response<pb::DeleteBridgeResponse>, Status> {
        let network_id =
            parse_field("network_id", &request.get_ref().network_id).map_err(Error::from)?;
        self.agent.delete_bridge(&network_id).await?;
        Ok(Response::new(pb::DeleteBridgeResponse {}))
    }

    async fn list_bridges(
        &self,
        _request: Request<pb::ListBridgesRequest>,
    ) -> Result<Response<pb::ListBridgesResponse>, Status> {
        let bridges = self.agent.bridges().await?.into_iter().map(bridge_to).collect();
        Ok(Response::new(pb::ListBridgesResponse { bridges }))
    }

    #[tracing::instrument(skip_all, fields(sandbox_id = %request.get_ref().id))]
    async fn ensure_sandbox(
        &self,
        request: Request<pb::EnsureSandboxRequest>,
    ) -> Result<Response<pb::Sandbox>, Status> {
        let request = request.into_inner();
        let id = parse_field("id", &request.id).map_err(Error::from)?;
        let netns_path = netns_path_from(&request.netns_path)?;
        let sandbox = self.agent.ensure_sandbox(id, netns_path).await?;
        Ok(Response::new(sandbox_to(sandbox)))
    }

    #[tracing::instrument(skip_all, fields(sandbox_id = %request.get_ref().id))]
    async fn delete_sandbox(
        &self,
        request: Request<pb::DeleteSandboxRequest>,
    ) -> Result<Response<pb::DeleteSandboxResponse>, Status> {
        let id = parse_field("id", &request.get_ref().id).map_err(Error::from)?;
        self.agent.delete_sandbox(&id).await?;
        Ok(Response::new(pb::DeleteSandboxResponse {}))
    }

    async fn list_sandboxes(
        &self,
        _request: Request<pb::ListSandboxesRequest>,
    ) -> Result<Response<pb::ListSandboxesResponse>, Status> {
        let sandboxes = self.agent.sandboxes()?.into_iter().map(sandbox_to).collect();
        Ok(Response::new(pb::ListSandboxesResponse { sandboxes }))
    }

    #[tracing::instrument(skip_all, fields(endpoint_id = %request.get_ref().id))]
    async fn ensure_endpoint(
        &self,
        request: Request<pb::EnsureEndpointRequest>,
    ) -> Result<Response<pb::Endpoint>, Status> {
        let request = endpoint_request_from(request.into_inner())?;
        let endpoint = self.agent.ensure_endpoint(request).await?;
        Ok(Response::new(endpoint_to(endpoint)))
    }

    #[tracing::instrument(skip_all, fields(endpoint_id = %request.get_ref().id))]
    async fn delete_endpoint(
        &self,
        request: Request<pb::DeleteEndpointRequest>,
    ) -> Result<Response<pb::DeleteEndpointResponse>, Status> {
        let id = parse_field("id", &request.get_ref().id).map_err(Error::from)?;
        self.agent.delete_endpoint(&id).await?;
        Ok(Response::new(pb::DeleteEndpointResponse {}))
    }

    async fn list_endpoints(
        &self,
        _request: Request<pb::ListEndpointsRequest>,
    ) -> Result<Response<pb::ListEndpointsResponse>, Status> {
        let endpoints = self.agent.endpoints().into_iter().map(endpoint_to).collect();
        Ok(Response::new(pb::ListEndpointsResponse { endpoints }))
    }

    async fn host_prefixes(
        &self,
        _request: Request<pb::HostPrefixesRequest>,
    ) -> Result<Response<pb::HostPrefixesResponse>, Status> {
        let prefixes = self.agent.host_prefixes().await?.iter().map(ToString::to_string).collect();
        Ok(Response::new(pb::HostPrefixesResponse { prefixes }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_become_domain_values_with_defaults() {
        let bridge = bridge_from(pb::EnsureBridgeRequest {
            network_id: "n1".into(),
            name: "cnet0".into(),
            gateway_cidr: "172.16.1.1/16".into(),
            mtu: 0,
        })
        .unwrap();
        assert_eq!(
            (bridge.mtu, bridge.gateway.to_string()),
            (Mtu::DEFAULT, "172.16.1.1/16".into())
        );
        let request = endpoint_request_from(pb::EnsureEndpointRequest {
            id: "c1/n1".into(),
            network_id: "n1".into(),
            sandbox_id: "c1".into(),
            address_cidr: "172.16.1.0/16".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            (&request.ifname, request.gateway, request.mac, request.mtu),
            (&None, None, None, None)
        );
        let endpoint = endpoint_to(request.resolve(&bridge));
        assert_eq!(endpoint.gateway, "");
        assert_eq!(endpoint.mac, "02:42:ac:10:01:00");
    }

    #[test]
    fn errors_map_to_status_codes() {
        use std::io::{Error as IoError, ErrorKind};

        use crate::kernel::KernelError;
        let check = |error: Error, code: tonic::Code| assert_eq!(Status::from(error).code(), code);
        check(FieldError::new("mtu", "bad").into(), tonic::Code::InvalidArgument);
        check(Error::AlreadyExists("x".into()), tonic::Code::AlreadyExists);
        check(Error::NotFound("x".into()), tonic::Code::NotFound);
        check(Error::FailedPrecondition("x".into()), tonic::Code::FailedPrecondition);
        let exists = KernelError::new("create", IoError::from(ErrorKind::AlreadyExists));
        check(exists.into(), tonic::Code::AlreadyExists);
        let busy = KernelError::new("delete", IoError::other("busy"));
        check(busy.into(), tonic::Code::Internal);
        let status = Status::from(Error::Teardown(vec![
            Error::NotFound("a".into()),
            Error::NotFound("b".into()),
        ]));
        assert_eq!((status.code(), status.message()), (tonic::Code::Internal, "a; b"));
    }

    #[test]
    fn netns_paths_must_be_absolute() {
        assert_eq!(netns_path_from("").unwrap(), None);
        assert_eq!(netns_path_from("/proc/1/ns/net").unwrap(), Some("/proc/1/ns/net".into()));
        let error = netns_path_from("proc/1/ns/net").unwrap_err();
        assert_eq!(error.to_string(), "netns_path: \"proc/1/ns/net\" is not absolute");
    }
}
