//! The `cnet.ipam.v1.Ipam` gRPC service: converts prost messages to validated domain
//! requests, calls the [`Registry`], and converts results back. The mapping of errors to
//! status codes lives here, in one place, and follows the table in ipam.proto.

use tonic::{Request, Response, Status};

use cnet_proto::ipam::v1 as proto;

use crate::{
    Error,
    domain::{self, Allocation, AllocationRequest, Owner, PoolId, PoolRequest, PoolSummary},
    registry::Registry,
};

pub struct IpamService {
    registry: Registry,
}

impl IpamService {
    pub fn new(registry: Registry) -> Self {
        Self { registry }
    }
}

#[tonic::async_trait]
impl proto::ipam_server::Ipam for IpamService {
    #[tracing::instrument(skip_all, fields(pool = %request.get_ref().id))]
    async fn create_pool(
        &self,
        request: Request<proto::CreatePoolRequest>,
    ) -> Result<Response<proto::Pool>, Status> {
        let proto::CreatePoolRequest { id, subnet, ip_range, gateway, exclude } =
            request.into_inner();
        let request =
            PoolRequest::parse(&id, &subnet, &ip_range, &gateway, &exclude).map_err(Error::from)?;
        let summary = self.registry.create_pool(&request).await?;
        Ok(Response::new(pool_to_proto(summary)))
    }

    #[tracing::instrument(skip_all, fields(pool = %request.get_ref().id))]
    async fn get_pool(
        &self,
        request: Request<proto::GetPoolRequest>,
    ) -> Result<Response<proto::Pool>, Status> {
        let id = PoolId::parse(&request.get_ref().id).map_err(Error::from)?;
        Ok(Response::new(pool_to_proto(self.registry.pool(&id).await?)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_pools(
        &self,
        _request: Request<proto::ListPoolsRequest>,
    ) -> Result<Response<proto::ListPoolsResponse>, Status> {
        let pools = self.registry.pools().await.into_iter().map(pool_to_proto).collect();
        Ok(Response::new(proto::ListPoolsResponse { pools }))
    }

    #[tracing::instrument(skip_all, fields(pool = %request.get_ref().id))]
    async fn delete_pool(
        &self,
        request: Request<proto::DeletePoolRequest>,
    ) -> Result<Response<proto::DeletePoolResponse>, Status> {
        let request = request.into_inner();
        let id = PoolId::parse(&request.id).map_err(Error::from)?;
        self.registry.delete_pool(&id, request.force).await?;
        Ok(Response::new(proto::DeletePoolResponse {}))
    }

    #[tracing::instrument(skip_all, fields(pool = %request.get_ref().pool_id, owner = %request.get_ref().owner))]
    async fn allocate(
        &self,
        request: Request<proto::AllocateRequest>,
    ) -> Result<Response<proto::Allocation>, Status> {
        let proto::AllocateRequest { pool_id, owner, address } = request.into_inner();
        let request = AllocationRequest::parse(&pool_id, &owner, &address).map_err(Error::from)?;
        let allocation = self.registry.allocate(&request).await?;
        Ok(Response::new(allocation_to_proto(allocation)))
    }

    #[tracing::instrument(skip_all, fields(pool = %request.get_ref().pool_id, owner = %request.get_ref().owner))]
    async fn release(
        &self,
        request: Request<proto::ReleaseRequest>,
    ) -> Result<Response<proto::ReleaseResponse>, Status> {
        let request = request.into_inner();
        let pool_id = PoolId::parse(&request.pool_id).map_err(Error::from)?;
        let owner = Owner::parse(&request.owner).map_err(Error::from)?;
        let released = self.registry.release(&pool_id, &owner).await?;
        let address = released.map(|allocation| allocation.address.to_string()).unwrap_or_default();
        Ok(Response::new(proto::ReleaseResponse { address }))
    }

    /// An empty pool id lists the allocations of every pool.
    #[tracing::instrument(skip_all, fields(pool = %request.get_ref().pool_id))]
    async fn list_allocations(
        &self,
        request: Request<proto::ListAllocationsRequest>,
    ) -> Result<Response<proto::ListAllocationsResponse>, Status> {
        let pool_id = &request.get_ref().pool_id;
        let pool_id = (!pool_id.is_empty())
            .then(|| PoolId::parse(pool_id))
            .transpose()
            .map_err(Error::from)?;
        let allocations = self.registry.allocations(pool_id.as_ref()).await?;
        let allocations = allocations.into_iter().map(allocation_to_proto).collect();
        Ok(Response::new(proto::ListAllocationsResponse { allocations }))
    }
}

fn pool_to_proto(summary: PoolSummary) -> proto::Pool {
    let PoolSummary { pool, allocated, free } = summary;
    proto::Pool {
        id: pool.id().to_string(),
        subnet: pool.subnet().to_string(),
        network: pool.network().to_string(),
        ip_range: pool.ip_range().map(ToString::to_string).unwrap_or_default(),
        gateway: pool.gateway().to_string(),
        auto_subnet: pool.auto_subnet(),
        auto_gateway: pool.auto_gateway(),
        allocated,
        free,
    }
}

fn allocation_to_proto(allocation: Allocation) -> proto::Allocation {
    proto::Allocation {
        pool_id: allocation.pool_id.to_string(),
        owner: allocation.owner.to_string(),
        address: allocation.address.to_string(),
        prefix_len: allocation.prefix_len.into(),
        gateway: allocation.gateway.to_string(),
        is_static: allocation.is_static,
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        use domain::Error as E;
        let message = error.to_string();
        match error {
            Error::Ipam(error) => match error {
                E::InvalidName { .. }
                | E::Ipv6NotSupported { .. }
                | E::InvalidCidr { .. }
                | E::InvalidGateway { .. }
                | E::InvalidAddress { .. }
                | E::InvalidExclude { .. }
                | E::MissingSubnet
                | E::UnusableSubnet { .. }
                | E::SubnetTooSmall { .. }
                | E::GatewayOutsideSubnet { .. }
                | E::RangeOutsideSubnet { .. }
                | E::AddressOutsideSubnet { .. } => Status::invalid_argument(message),
                E::GatewayUnavailable { .. }
                | E::Overlap { .. }
                | E::PoolExists { .. }
                | E::AddressInUse { .. }
                | E::OwnerHoldsOther { .. }
                | E::OwnerTaken { .. } => Status::already_exists(message),
                E::PoolNotFound { .. } => Status::not_found(message),
                E::PoolExhausted { .. } | E::NoDefaultSubnet => Status::resource_exhausted(message),
                E::PoolInUse { .. } => Status::failed_precondition(message),
            },
            Error::Store(_) | Error::Corrupt { .. } | Error::Serve(_) => {
                tracing::error!(%message, "internal error");
                Status::internal(message)
            }
        }
    }
}
