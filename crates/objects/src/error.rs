//! S3's errors: one variant per refusal the object store gives, each knowing its `Code`,
//! HTTP status and message as S3 words them; the wire module renders the `<Error>` document.

/// A refused or failed object-store operation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct S3Error {
    /// S3's error code (`NoSuchKey`, `BucketNotEmpty`, ...).
    pub code: &'static str,
    pub status: u16,
    pub message: String,
    /// The bucket or key the error concerns, when S3 names one (`<Resource>`, `<BucketName>`, `<Key>`).
    pub resource: Option<String>,
    /// Extra elements S3 adds for some codes (`<BucketName>`, `<ArgumentName>`, ...).
    pub extra: Vec<(&'static str, String)>,
    /// Extra response headers (`x-amz-delete-marker` on a 404 of a deleted key).
    pub headers: Vec<(&'static str, String)>,
}

impl S3Error {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
            resource: None,
            extra: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn with_resource(mut self, r: impl Into<String>) -> Self {
        self.resource = Some(r.into());
        self
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn no_such_bucket(bucket: &str) -> Self {
        Self::new("NoSuchBucket", 404, "The specified bucket does not exist")
            .with("BucketName", bucket)
            .with_resource(format!("/{bucket}"))
    }

    pub fn no_such_key(key: &str) -> Self {
        Self::new("NoSuchKey", 404, "The specified key does not exist.").with("Key", key)
    }

    pub fn no_such_version(key: &str, version: &str) -> Self {
        Self::new(
            "NoSuchVersion",
            404,
            "The specified version does not exist.",
        )
        .with("Key", key)
        .with("VersionId", version)
    }

    pub fn no_such_upload(upload_id: &str) -> Self {
        Self::new(
            "NoSuchUpload",
            404,
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
        )
        .with("UploadId", upload_id)
    }

    pub fn access_denied() -> Self {
        Self::new("AccessDenied", 403, "Access Denied")
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new("InvalidArgument", 400, message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new("InvalidRequest", 400, message)
    }

    pub fn malformed_xml() -> Self {
        Self::new(
            "MalformedXML",
            400,
            "The XML you provided was not well-formed or did not validate against our published schema",
        )
    }

    pub fn precondition_failed(condition: &str) -> Self {
        Self::new(
            "PreconditionFailed",
            412,
            "At least one of the pre-conditions you specified did not hold",
        )
        .with("Condition", condition)
    }

    pub fn bad_digest(message: impl Into<String>) -> Self {
        Self::new("BadDigest", 400, message)
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "object store internal error");
        Self::new(
            "InternalError",
            500,
            "We encountered an internal error. Please try again.",
        )
    }

    pub fn incomplete_body() -> Self {
        Self::new(
            "IncompleteBody",
            400,
            "You did not provide the number of bytes specified by the Content-Length HTTP header",
        )
    }
}

impl From<rusqlite::Error> for S3Error {
    fn from(e: rusqlite::Error) -> Self {
        S3Error::internal(format!("objects.db: {e}"))
    }
}

impl From<std::io::Error> for S3Error {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(28) {
            // ENOSPC: the upload is dropped whole; nothing of it became visible.
            return S3Error::new(
                "InternalError",
                500,
                "We encountered an internal error. Please try again. (no space left on the node's disk)",
            );
        }
        S3Error::internal(format!("object store i/o: {e}"))
    }
}
