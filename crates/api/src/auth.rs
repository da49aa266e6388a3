//! Authentication at the front door: every AWS-shaped request must carry a valid SigV4
//! signature (header or presigned query) by a known access key.
//!
//! Unsigned or wrongly signed requests are answered here and never reach a handler. The key
//! ring is in memory, so checking a signature costs no database round trip; it also keeps the
//! signing keys it derived (one per access key, day, region and service), so a request costs one
//! HMAC instead of five. Every key change forgets them all.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, StatusCode};
use updraft_control::accounts::KeyChange;
use updraft_sigv4::{BodyCheck, HeadVerified, RequestParts, Scope, VerifyError};

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
    /// Signing keys derived from `keys`; a short list (keys × days × regions × services in use).
    derived: RwLock<Vec<Derived>>,
    /// Bumped (under the `keys` write lock) on every change, so that a key derived from a secret
    /// read before a change is never kept after it.
    generation: AtomicU64,
}

/// Derived keys kept at most; the list starts over when it is full.
const MAX_DERIVED: usize = 64;

/// A signing key derived for one scope, and the account of its access key.
struct Derived {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    key: [u8; 32],
    account_id: String,
}

impl Derived {
    fn is_for(&self, s: &Scope<'_>) -> bool {
        self.access_key_id == s.access_key_id
            && self.date == s.date
            && self.region == s.region
            && self.service == s.service
    }
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
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        self.forget_derived();
    }

    /// Stops accepting a key; the next request signed with it is refused.
    pub fn remove(&self, access_key_id: &str) {
        if let Ok(mut k) = self.keys.write() {
            k.remove(access_key_id);
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        self.forget_derived();
    }

    fn forget_derived(&self) {
        match self.derived.write() {
            Ok(mut d) => d.clear(),
            Err(p) => p.into_inner().clear(),
        }
    }

    /// The signing key of a scope and the account of its access key; `None` for an unknown key.
    fn signing_key(&self, scope: &Scope<'_>) -> Option<([u8; 32], String)> {
        if let Ok(d) = self.derived.read()
            && let Some(e) = d.iter().find(|e| e.is_for(scope))
        {
            return Some((e.key, e.account_id.clone()));
        }
        let (entry, generation) = {
            let keys = self.keys.read().ok()?;
            (
                keys.get(scope.access_key_id)?.clone(),
                self.generation.load(Ordering::SeqCst),
            )
        };
        let key = scope.signing_key(&entry.secret);
        if let Ok(mut d) = self.derived.write()
            && self.generation.load(Ordering::SeqCst) == generation
        {
            if d.len() >= MAX_DERIVED {
                d.clear();
            }
            d.push(Derived {
                access_key_id: scope.access_key_id.to_string(),
                date: scope.date.to_string(),
                region: scope.region.to_string(),
                service: scope.service.to_string(),
                key,
                account_id: entry.account_id.clone(),
            });
        }
        Some((key, entry.account_id))
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

    #[cfg(test)]
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

/// A request whose head is authenticated as far as a head can be (see
/// [`updraft_sigv4::verify_head`]): the access key is known, the scope's date, region and service
/// are valid, and the signature matched when the head carries the payload hash. Its body may
/// now be read; [`finish`](Self::finish) completes the check with the body's hash.
#[derive(Debug)]
pub struct PendingAuth {
    head: HeadVerified,
    account_id: String,
}

impl PendingAuth {
    /// The account of the access key that signed the request.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The service the request was signed for.
    pub fn service(&self) -> &str {
        self.head.service()
    }

    /// Whether the signature covers an empty body only (a presigned `UNSIGNED-PAYLOAD`).
    pub fn empty_body_only(&self) -> bool {
        *self.head.body_check() == BodyCheck::EmptyOnly
    }

    /// The answer to a body the signature does not cover (see
    /// [`empty_body_only`](Self::empty_body_only)), given without reading it.
    pub fn refuse_body(self) -> ApiError {
        // Any hash but the empty body's fails as the signature mismatch it is.
        match self.finish(&"0".repeat(64)) {
            Err(e) => e,
            Ok(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "InvalidSignatureException",
                "The request signature does not cover its body.",
            ),
        }
    }

    /// [`finish`](Self::finish) with the signature failure kept as it is.
    pub fn finish_raw(self, body_sha256_hex: &str) -> Result<Caller, VerifyError> {
        let verified = self.head.finish(body_sha256_hex)?;
        Ok(Caller {
            account_id: self.account_id,
            access_key_id: verified.access_key_id,
            region: verified.region,
            service: verified.service,
        })
    }

    /// What the body must still satisfy.
    pub fn body_check(&self) -> &BodyCheck {
        self.head.body_check()
    }

    /// The chunk-signature chain of a signed aws-chunked body.
    pub fn chunk_chain(&self) -> Option<updraft_sigv4::ChunkChain> {
        self.head.chunk_chain()
    }

    /// Completes the check with the hex SHA-256 of the body as received.
    pub fn finish(self, body_sha256_hex: &str) -> Result<Caller, ApiError> {
        let verified = self
            .head
            .finish(body_sha256_hex)
            .map_err(|e| verify_error(&e))?;
        Ok(Caller {
            account_id: self.account_id,
            access_key_id: verified.access_key_id,
            region: verified.region,
            service: verified.service,
        })
    }
}

/// Checks a request's head against the key ring, before its body is read.
pub fn authenticate_head(
    keys: &KeyRing,
    region: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
) -> Result<PendingAuth, ApiError> {
    verify_head_for(keys, region, method, path, query, headers).map_err(|f| match f {
        HeadFailure::Verify(e) => verify_error(&e),
        HeadFailure::Refused(e) => e,
    })
}

/// Why a head was not authenticated: its signature (each protocol words that its own way),
/// or this node's own refusal (an unknown key, another region).
#[derive(Debug)]
pub enum HeadFailure {
    Verify(VerifyError),
    Refused(ApiError),
}

/// [`authenticate_head`] with the signature failure kept as it is.
pub fn verify_head_for(
    keys: &KeyRing,
    region: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
) -> Result<PendingAuth, HeadFailure> {
    let parts = RequestParts {
        method,
        path,
        query,
        headers,
    };
    let mut account_id = None;
    let head = updraft_sigv4::verify_head(&parts, time::OffsetDateTime::now_utc(), |scope| {
        let (key, account) = keys.signing_key(scope)?;
        account_id = Some(account);
        Some(key)
    })
    .map_err(HeadFailure::Verify)?;
    if head.region() != region {
        return Err(HeadFailure::Refused(ApiError::new(
            StatusCode::FORBIDDEN,
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region, not '{}'. This endpoint serves '{region}'.",
                head.region()
            ),
        )));
    }
    let account_id = account_id.ok_or_else(|| {
        HeadFailure::Refused(ApiError::new(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ))
    })?;
    Ok(PendingAuth { head, account_id })
}

/// Verifies a request whose body is at hand against the key ring.
pub fn authenticate(
    keys: &KeyRing,
    region: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Caller, ApiError> {
    authenticate_head(keys, region, method, path, query, headers)?
        .finish(&updraft_sigv4::sha256_hex(body))
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

    #[test]
    fn derived_signing_keys_follow_key_changes() {
        let ring = KeyRing::default();
        let scope = Scope {
            access_key_id: "AKIAEXAMPLE000000002",
            date: "20240517",
            region: "us-east-1",
            service: "lambda",
        };
        assert!(ring.signing_key(&scope).is_none());
        ring.insert("AKIAEXAMPLE000000002", "first-secret", "111111111111");
        let (k1, account) = ring.signing_key(&scope).unwrap();
        assert_eq!(k1, scope.signing_key("first-secret"));
        assert_eq!(account, "111111111111");
        // Kept: the second lookup is served from the derived keys.
        assert_eq!(ring.derived.read().unwrap().len(), 1);
        assert_eq!(ring.signing_key(&scope).unwrap().0, k1);
        // A new secret for the same id: the old derived key is gone.
        ring.insert("AKIAEXAMPLE000000002", "second-secret", "111111111111");
        let (k2, _) = ring.signing_key(&scope).unwrap();
        assert_eq!(k2, scope.signing_key("second-secret"));
        assert_ne!(k1, k2);
        // A removed key is refused at once, derived key or not.
        ring.remove("AKIAEXAMPLE000000002");
        assert!(ring.signing_key(&scope).is_none());
        assert!(ring.derived.read().unwrap().is_empty());
    }

    const AKID: &str = "AKIAEXAMPLE000000003";
    const SECRET: &str = "head-first-secret";

    fn ring() -> KeyRing {
        let ring = KeyRing::default();
        ring.insert(AKID, SECRET, "111111111111");
        ring
    }

    /// Headers of a POST signed now by `akid` for `region`, over `payload`.
    fn signed(
        akid: &str,
        region: &str,
        payload: updraft_sigv4::PayloadHash<'_>,
    ) -> Vec<(String, String)> {
        let creds = updraft_sigv4::Credentials::new(akid, SECRET);
        let mut headers = vec![("host".to_string(), "localhost".to_string())];
        let req = RequestParts {
            method: "POST",
            path: "/2015-03-31/functions/f/invocations",
            query: "",
            headers: &headers,
        };
        let params = updraft_sigv4::SigningParams {
            credentials: &creds,
            region,
            service: "lambda",
            time: time::OffsetDateTime::now_utc(),
        };
        let added = updraft_sigv4::sign_headers_with_payload(&req, payload, &params).unwrap();
        headers.extend(added);
        headers
    }

    fn head(ring: &KeyRing, headers: &[(String, String)]) -> Result<PendingAuth, ApiError> {
        authenticate_head(
            ring,
            "us-east-1",
            "POST",
            "/2015-03-31/functions/f/invocations",
            "",
            headers,
        )
    }

    #[test]
    fn the_head_is_refused_before_any_body_for_a_bad_key_region_or_payload_mode() {
        let ring = ring();
        let body_hash = updraft_sigv4::sha256_hex(b"{}");
        let hex = updraft_sigv4::PayloadHash::Hex(&body_hash);
        let err = head(&ring, &signed("AKIAUNKNOWN000000000", "us-east-1", hex)).unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code),
            (403, "UnrecognizedClientException")
        );
        let err = head(&ring, &signed(AKID, "eu-west-1", hex)).unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code),
            (403, "InvalidSignatureException")
        );
        let unsigned = signed(AKID, "us-east-1", updraft_sigv4::PayloadHash::Unsigned);
        let err = head(&ring, &unsigned).unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code),
            (403, "InvalidSignatureException")
        );
    }

    #[test]
    fn a_pending_head_is_completed_by_the_body_hash() {
        let ring = ring();
        let body_hash = updraft_sigv4::sha256_hex(b"{}");
        let headers = signed(
            AKID,
            "us-east-1",
            updraft_sigv4::PayloadHash::Hex(&body_hash),
        );
        let pending = head(&ring, &headers).unwrap();
        assert_eq!(
            (pending.account_id(), pending.service()),
            ("111111111111", "lambda")
        );
        let err = head(&ring, &headers)
            .unwrap()
            .finish(&updraft_sigv4::sha256_hex(b"{\"x\":1}"))
            .unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code),
            (403, "InvalidSignatureException")
        );
        let caller = pending.finish(&body_hash).unwrap();
        assert_eq!(
            (caller.account_id.as_str(), caller.access_key_id.as_str()),
            ("111111111111", AKID)
        );
    }
}
