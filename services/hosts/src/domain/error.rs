//! What can be wrong with a request. Every variant but `NotFound` is the caller's mistake
//! (INVALID_ARGUMENT); messages name the field and the value so that a person can fix it.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// One value breaks its rule.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid { what: &'static str, value: String, reason: &'static str },
    /// Values that are fine alone contradict each other.
    #[error("{0}")]
    Conflict(String),
    /// A required field is empty.
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("no such container: {id}")]
    NotFound { id: String },
}
