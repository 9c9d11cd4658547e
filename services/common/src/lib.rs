//! Plumbing shared by every cnet service: one config story ([`config`]), serving gRPC on
//! a Unix socket and optionally TCP with health, reflection and tower layers
//! ([`server`]), connecting to other services ([`client`]), the sled store
//! ([`store`]), logging and tracing ([`telemetry`]), request metrics ([`metrics`],
//! pushed over OTLP by [`otlp_metrics`]), process identity ([`process`]), TLS material
//! for TCP ([`tls`]), graceful shutdown ([`shutdown`]) and the start-up sequence every
//! binary shares ([`service`]).

pub mod client;
pub mod config;
pub mod metrics;
pub mod otlp_metrics;
pub mod process;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod tls;

/// Exit code for an invalid configuration (EX_CONFIG would be 78; EX_USAGE is what
/// operators' tooling expects for bad flags and files).
pub const EXIT_BAD_CONFIG: i32 = 64;
