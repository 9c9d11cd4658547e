//! The agent's one error type. Each variant is one gRPC status code (see `grpc.rs`), and
//! messages name the object they are about.

use cnet_common::store::StoreError;

use crate::{domain::FieldError, kernel::KernelError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidArgument(#[from] FieldError),
    /// A name is taken by something not ours, or an id is reused with other parameters.
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Teardown goes on past a failure and reports every one.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Teardown(Vec<Error>),
    #[error("serve gRPC: {0}")]
    Serve(#[from] tonic::transport::Error),
}
