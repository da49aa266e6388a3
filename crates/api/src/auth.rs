//! Authentication at the front door: every AWS-shaped request must carry a valid SigV4
//! signature (header or presigned query) by a known access key.
//!
//! Unsigned or wrongly signed requests are answered here and never reach a handler. The key
//! ring is in memory, so checking a signature costs no database round trip.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::http::{HeaderMap, StatusCode};
use updraft_sigv4::{RequestParts, VerifyError};

use crate::error::ApiError;

/// An access key and the account it acts for.
#[derive(Clone)]
pub struct KeyEntry {
    pub secret: String,
    pub account_id: String,
}

/// All access keys this node accepts.
#[derive(Default)]
pub struct KeyRing {
    keys: RwLock<HashMap<String, KeyEntry>>,
}

/// Who made a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: String,
    pub access_key_id: String,
    /// The region the request was signed for.
    pub region: String,
    /// The service the request was signed for (`lambda`, `s3`, ...).
    pub service: String,
}

impl KeyRing {
    pub fn insert(&self, access_key_id: &str, secret: &str, account_id: &str) {
        if let Ok(mut k) = self.keys.write() {
            k.insert(
                access_key_id.to_string(),
                KeyEntry {
                    secret: secret.to_string(),
                    account_id: account_id.to_string(),
                },
            );
        }
    }

    fn get(&self, access_key_id: &str) -> Option<KeyEntry> {
        self.keys.read().ok()?.get(access_key_id).cloned()
    }
}

/// Turns a verification failure into AWS's answer.
pub fn verify_error(e: &VerifyError) -> ApiError {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::FORBIDDEN);
    tracing::debug!(error = %e, "request authentication failed");
    ApiError::new(status, e.aws_error_code(), e.aws_message())
}

/// Collects headers as the verifier wants them, in arrival order.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Verifies a request against the key ring.
pub fn authenticate(
    keys: &KeyRing,
    region: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Caller, ApiError> {
    let parts = RequestParts {
        method,
        path,
        query,
        headers,
    };
    let body_hash = updraft_sigv4::sha256_hex(body);
    let verified =
        updraft_sigv4::verify(&parts, &body_hash, time::OffsetDateTime::now_utc(), |id| {
            keys.get(id).map(|e| e.secret)
        })
        .map_err(|e| verify_error(&e))?;
    if verified.region != region {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region, not '{}'. This endpoint serves '{region}'.",
                verified.region
            ),
        ));
    }
    let entry = keys.get(&verified.access_key_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    })?;
    Ok(Caller {
        account_id: entry.account_id,
        access_key_id: verified.access_key_id,
        region: verified.region,
        service: verified.service,
    })
}
