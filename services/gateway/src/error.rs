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

/// The longest message a status carries. Messages quote the caller's input, and an
/// HTTP/2 client refuses a reply whose headers pass 16 KiB (the message, percent-encoded,
/// is one): a longer one is cut, saying how long it was.
const MAX_MESSAGE_BYTES: usize = 1024;

fn clipped(message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &message[..end], message.len())
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = clipped(error.to_string());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let status =
            Status::from(Error::NotFound(format!("No such container: {}", "é".repeat(5000))));
        assert!(status.message().len() < MAX_MESSAGE_BYTES + 32, "{}", status.message().len());
        assert!(status.message().ends_with("… (10019 bytes in all)"), "{}", status.message());
        assert_eq!(Status::from(Error::NotFound("short".into())).message(), "short");
    }
}
