//! Compiles `cnet/**.proto` with protox (pure Rust, so no `protoc` is needed) and
//! generates tonic clients and servers plus a descriptor set for server reflection.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "cnet/ipam/v1/ipam.proto",
    "cnet/bridge/v1/bridge.proto",
    "cnet/gateway/v1/gateway.proto",
    "cnet/dns/v1/dns.proto",
    "cnet/nat/v1/nat.proto",
    "cnet/hosts/v1/hosts.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("cnet_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
