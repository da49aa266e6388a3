//! Authentication at the front door: every AWS-shaped request must carry a valid SigV4
//! signature (header or presigned query) by a known access key.
//!
//! Unsigned or wrongly signed requests are answered here and never reach a handler. The key
//! ring is in memory, so checking a signature costs no database round trip.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::http::{HeaderMap, StatusCode};
use updraft_control::accounts::KeyChange;
use updraft_sigv4::{RequestParts, VerifyError};

use crate::error::ApiError;

/// An access key and the account it acts for.
#[derive(Clone)]
pub struct KeyEntry {
    pub secret: String,
    pub account_id: String,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("secret", &"<redacted>")
            .field("account_id", &self.account_id)
            .finish()
    }
}

/// All access keys this node accepts: the root keys, and the stored keys of enabled accounts.
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

    /// Stops accepting a key; the next request signed with it is refused.
    pub fn remove(&self, access_key_id: &str) {
        if let Ok(mut k) = self.keys.write() {
            k.remove(access_key_id);
        }
    }

    /// Follows a change of the account service (see [`updraft_control::accounts::Accounts::subscribe`]).
    pub fn apply(&self, change: &KeyChange) {
        match change {
            KeyChange::Added(k) => {
                self.insert(
                    &k.access_key_id,
                    k.secret_access_key.expose(),
                    &k.account_id,
                );
            }
            KeyChange::Removed { access_key_id } => self.remove(access_key_id),
        }
    }

    /// Whether a key is accepted now.
    pub fn contains(&self, access_key_id: &str) -> bool {
        self.keys
            .read()
            .is_ok_and(|k| k.contains_key(access_key_id))
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

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_control::accounts::{KeyMaterial, SecretKey};

    #[test]
    fn key_ring_follows_account_changes() {
        let ring = KeyRing::default();
        ring.apply(&KeyChange::Added(KeyMaterial {
            access_key_id: "AKIAEXAMPLE000000001".into(),
            account_id: "210987654321".into(),
            secret_access_key: SecretKey::new("s".repeat(40)),
        }));
        let entry = ring.get("AKIAEXAMPLE000000001").unwrap();
        assert_eq!(entry.account_id, "210987654321");
        assert_eq!(entry.secret, "s".repeat(40));
        assert!(!format!("{entry:?}").contains(&"s".repeat(40)));
        ring.apply(&KeyChange::Removed {
            access_key_id: "AKIAEXAMPLE000000001".into(),
        });
        assert!(!ring.contains("AKIAEXAMPLE000000001"));
        assert!(ring.get("AKIAEXAMPLE000000001").is_none());
    }
}
