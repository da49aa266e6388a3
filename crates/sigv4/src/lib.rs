//! AWS Signature Version 4 for Updraft: signing (the CLI as a client) and verification (the server's
//! front door, on every request).
//!
//! The crate knows nothing about HTTP libraries. A request is described by [`RequestParts`]: the method,
//! the path and query exactly as they appeared on the wire, and the headers in arrival order. Callers
//! convert from whatever HTTP types they use.
//!
//! - [`verify`] checks header authentication (`Authorization: AWS4-HMAC-SHA256 …`) or a presigned query
//!   (`X-Amz-Signature=…`), and returns who signed and for which region and service. Its error,
//!   [`VerifyError`], knows the AWS error code, HTTP status and message each failure maps to.
//! - [`verify_head`] does every check the request head allows before the body is read (and the
//!   signature itself when the head carries the payload hash); [`HeadVerified::finish`] completes it
//!   with the body's hash, so a server never reads a body for an unknown key or a bad scope.
//! - [`sign_headers`] returns the headers a client adds to a request; [`presign`] returns the query
//!   parameters of a presigned URL.
//! - The canonical form follows AWS: path segments encoded twice for every service except `s3`
//!   ([`PathEncoding`]), query parameters decoded, re-encoded and sorted, header values trimmed and folded.
//!
//! Architecture invariant: this crate performs no I/O and reads no clock; the current time is an argument.

mod amz_date;
mod canonical;
mod sign;
mod verify;

#[cfg(test)]
mod vector_tests;

use std::fmt;

use sha2::{Digest, Sha256};

pub use canonical::{PathEncoding, canonical_uri};
pub use sign::{SignError, SigningParams, presign, sign_headers, sign_headers_with_payload};
pub use verify::{
    BodyCheck, ChunkChain, HeadVerified, Scope, Verified, VerifyError, verify, verify_head,
    verify_with_signing_key,
};

/// The only signing algorithm SigV4 defines for HMAC keys.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The payload hash placeholder for requests whose body is not covered by the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// An aws-chunked body without chunk signatures, with trailing checksums (sent by recent AWS SDKs for
/// S3 uploads). The signature covers the headers only; the body's integrity rests on the trailer.
pub const STREAMING_UNSIGNED_PAYLOAD_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// An aws-chunked body whose every chunk carries a signature chained from the request's
/// (`chunk-signature=`); S3 only. Verified chunk by chunk with [`ChunkChain`].
pub const STREAMING_SIGNED_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";

/// [`STREAMING_SIGNED_PAYLOAD`] followed by trailing headers (a checksum).
pub const STREAMING_SIGNED_PAYLOAD_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";

/// How far a request's time may be from the server's clock, either way, as on AWS.
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(15);

/// The longest lifetime of a presigned request, in seconds (seven days), as on AWS.
pub const MAX_PRESIGN_EXPIRES_SECS: u32 = 604_800;

/// An access key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Credentials {
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
        }
    }
}

// The secret must never reach logs through a stray `{:?}`.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// A request as received (or as it will be sent).
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// The raw path as on the wire, percent-encoded, e.g. `/2015-03-31/functions/arn%3Aaws%3A…/invocations`.
    pub path: &'a str,
    /// The raw query string as on the wire, without the leading `?` (empty when there is none).
    pub query: &'a str,
    /// Headers as (name, value) pairs in arrival order; names are case-insensitive and may repeat.
    pub headers: &'a [(String, String)],
}

/// The payload hash that goes into the canonical request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadHash<'a> {
    /// Lower-case hex SHA-256 of the body.
    Hex(&'a str),
    /// `UNSIGNED-PAYLOAD`: the body is not covered by the signature.
    Unsigned,
}

impl PayloadHash<'_> {
    /// The value as written into the canonical request and the `x-amz-content-sha256` header.
    pub fn as_str(&self) -> &str {
        match self {
            PayloadHash::Hex(hex) => hex,
            PayloadHash::Unsigned => UNSIGNED_PAYLOAD,
        }
    }
}

/// Lower-case hex SHA-256 of `data`, the form SigV4 uses for payload hashes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}
