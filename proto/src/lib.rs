//! cnet's gRPC contracts. The `.proto` files under `proto/cnet` are the public contract;
//! this crate only carries the code generated from them.

/// Encoded `FileDescriptorSet` of every cnet proto, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/cnet_descriptor.bin"));

pub mod ipam {
    pub mod v1 {
        tonic::include_proto!("cnet.ipam.v1");
    }
}

pub mod bridge {
    pub mod v1 {
        tonic::include_proto!("cnet.bridge.v1");
    }
}

pub mod gateway {
    pub mod v1 {
        tonic::include_proto!("cnet.gateway.v1");
    }
}

pub mod dns {
    pub mod v1 {
        tonic::include_proto!("cnet.dns.v1");
    }
}

pub mod nat {
    pub mod v1 {
        tonic::include_proto!("cnet.nat.v1");
    }
}

pub mod hosts {
    pub mod v1 {
        tonic::include_proto!("cnet.hosts.v1");
    }
}
