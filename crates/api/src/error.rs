//! The one error type of the front door, rendered exactly as AWS renders errors.
//!
//! Lambda (rest-json) answers with the status code, an `x-amzn-ErrorType` header naming the
//! error and a JSON body carrying `Type` and `message`; botocore reads the header to pick the
//! modelled exception class. Internal details never reach the body: they are logged where the
//! error is created.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use updraft_control::{ControlError, ErrorKind};

use crate::AppState;
use crate::auth::Caller;

/// An AWS-shaped error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra top-level body fields (e.g. `Reason` of `TooManyRequestsException`).
    pub extra: Option<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }

    pub fn bad_content(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }

    pub fn unknown_operation() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "Unknown operation",
        )
    }

    pub fn service(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "An internal error occurred.",
        )
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let (status, code) = match e.kind {
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "ResourceConflictException"),
            ErrorKind::InvalidParameter => {
                (StatusCode::BAD_REQUEST, "InvalidParameterValueException")
            }
            ErrorKind::Validation => (StatusCode::BAD_REQUEST, "ValidationException"),
            ErrorKind::PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailedException",
            ),
            ErrorKind::RequestTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLargeException")
            }
            ErrorKind::EntityTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
            ),
            ErrorKind::TooManyRequests => {
                (StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException")
            }
            ErrorKind::AccessDenied => (StatusCode::FORBIDDEN, "AccessDeniedException"),
            ErrorKind::PolicyLengthExceeded => {
                (StatusCode::BAD_REQUEST, "PolicyLengthExceededException")
            }
            ErrorKind::Service => (StatusCode::INTERNAL_SERVER_ERROR, "ServiceException"),
        };
        Self::new(status, code, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "Type": if self.status.is_server_error() { "Service" } else { "User" },
            "message": self.message,
        });
        if let Some((k, v)) = self.extra {
            body[k] = serde_json::Value::String(v);
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(self.code));
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Clones what a [`blocking`] closure needs: the state, the caller, a function name and a
/// qualifier.
pub(crate) fn owned(
    state: &Arc<AppState>,
    caller: &Caller,
    f: &str,
    qualifier: Option<&str>,
) -> (Arc<AppState>, Caller, String, Option<String>) {
    (
        state.clone(),
        caller.clone(),
        f.to_string(),
        qualifier.map(str::to_string),
    )
}

/// Runs a blocking control-plane call (it may write the store) off the async workers, so the
/// invoke path never waits behind a disk write.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::service)?
}
