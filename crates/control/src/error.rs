//! The control plane's error type.
//!
//! Each [`ErrorKind`] corresponds to one Lambda error type; the front door turns the kind into
//! the wire name and status code, so this crate never speaks HTTP.

/// What went wrong, in the categories Lambda's API distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The function, version, alias or other resource does not exist.
    NotFound,
    /// The resource exists already, or is in use.
    Conflict,
    /// A parameter's value is not acceptable.
    InvalidParameter,
    /// A parameter does not match its modelled constraint (pattern, length, enum).
    Validation,
    /// A `RevisionId` or `CodeSha256` precondition did not hold.
    PreconditionFailed,
    /// The request body is larger than allowed.
    RequestTooLarge,
    /// A code package is larger than allowed.
    EntityTooLarge,
    /// Too many requests or concurrency exhausted.
    TooManyRequests,
    /// The caller may not perform the action.
    AccessDenied,
    /// A resource-based policy would grow past Lambda's size limit.
    PolicyLengthExceeded,
    /// An internal failure; details are logged, not returned.
    Service,
}

/// A control-plane failure with a message fit to show to the caller.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ControlError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PreconditionFailed, message)
    }
    /// An internal error: the cause is logged here and a generic message is returned.
    pub fn service(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal control-plane error");
        Self::new(ErrorKind::Service, "An internal error occurred.")
    }
}

impl From<updraft_store::StoreError> for ControlError {
    fn from(e: updraft_store::StoreError) -> Self {
        Self::service(e)
    }
}

pub type Result<T, E = ControlError> = std::result::Result<T, E>;
