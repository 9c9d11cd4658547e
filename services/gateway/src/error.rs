//! The gateway's error type and its one mapping to gRPC status codes.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// A backing service refused or failed a step; its code and message pass through,
    /// since they are already written for people (e.g. Docker's IPAM wording).
    #[error("{}", .0.message())]
    Backend(Status),
    #[error(transparent)]
    Store(#[from] cnet_common::store::StoreError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

impl Error {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        Self::Backend(status)
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidArgument(_) => Status::invalid_argument(message),
            Error::NotFound(_) => Status::not_found(message),
            Error::AlreadyExists(_) => Status::already_exists(message),
            Error::FailedPrecondition(_) => Status::failed_precondition(message),
            Error::Backend(status) => match status.code() {
                // An unknown code from a peer is our failure to classify it, not the
                // caller's: report it as internal with the peer's words.
                Code::Unknown => Status::internal(message),
                code => Status::new(code, message),
            },
            Error::Store(_) | Error::Io { .. } => Status::internal(message),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
