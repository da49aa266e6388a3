//! Verification at the front door: parse what the client claims (header or presigned query), check
//! the clock, recompute the signature with the stored secret and compare in constant time.

use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::canonical::{
    PathEncoding, QueryParam, canonical_headers, canonical_query, canonical_request, canonical_uri,
    header_count, header_value, parse_query,
};
use crate::sign::{credential_scope, signature, signing_key, string_to_sign};
use crate::{
    ALGORITHM, MAX_CLOCK_SKEW, MAX_PRESIGN_EXPIRES_SECS, RequestParts, STREAMING_SIGNED_PAYLOAD,
    STREAMING_SIGNED_PAYLOAD_TRAILER, STREAMING_UNSIGNED_PAYLOAD_TRAILER, UNSIGNED_PAYLOAD,
    amz_date,
};

/// A request whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    /// The region of the credential scope; the caller decides whether it is one it serves.
    pub region: String,
    /// The service of the credential scope, e.g. `lambda` or `s3`.
    pub service: String,
    /// The request time the client signed (`x-amz-date`, `Date` or `X-Amz-Date`), in UTC.
    pub date: OffsetDateTime,
    /// The signature came from a presigned query rather than the `Authorization` header.
    pub presigned: bool,
    /// The payload hash the signature covers: the body's hex SHA-256 (the body is then authenticated),
    /// `UNSIGNED-PAYLOAD` or `STREAMING-UNSIGNED-PAYLOAD-TRAILER`. For the last one the body
    /// arrives aws-chunked and the caller must decode it.
    pub payload_hash: String,
}

/// Why a request was not authenticated. Each variant maps to the answer AWS gives
/// ([`aws_error_code`](Self::aws_error_code), [`http_status`](Self::http_status),
/// [`aws_message`](Self::aws_message)), and to S3's ([`s3_error_code`](Self::s3_error_code),
/// [`s3_http_status`](Self::s3_http_status)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("request carries neither an authorization header nor a presigned query")]
    MissingAuthentication,
    #[error("request carries both an authorization header and a presigned query")]
    AmbiguousAuthentication,
    #[error("malformed authorization header: {0}")]
    MalformedAuthorization(String),
    #[error("malformed presigned query: {0}")]
    MalformedPresignedQuery(String),
    #[error("malformed credential {0:?}")]
    MalformedCredential(String),
    #[error("request has neither an x-amz-date nor a date header")]
    MissingDate,
    #[error("malformed request date {0:?}")]
    MalformedDate(String),
    #[error("header {0} is not among the signed headers")]
    UnsignedHeader(&'static str),
    #[error("credential scope date {scope} does not match request date {request}")]
    ScopeDateMismatch { scope: String, request: String },
    #[error("request time {} is more than 15 minutes before {}", basic(.request), basic(.now))]
    SignatureExpired {
        request: OffsetDateTime,
        now: OffsetDateTime,
    },
    #[error("request time {} is more than 15 minutes after {}", basic(.request), basic(.now))]
    SignatureNotYetCurrent {
        request: OffsetDateTime,
        now: OffsetDateTime,
    },
    #[error("x-amz-expires {0:?} is not a number of seconds in 1..=604800")]
    InvalidExpires(String),
    #[error("presigned request expired at {}", basic(.expired_at))]
    PresignExpired {
        expired_at: OffsetDateTime,
        now: OffsetDateTime,
    },
    #[error("unknown access key id {0}")]
    UnknownAccessKey(String),
    #[error("unsupported x-amz-content-sha256 value {0:?}")]
    UnsupportedPayloadHash(String),
    /// Carries what the server computed, for the server's logs (never for the response).
    #[error("signature does not match")]
    SignatureMismatch {
        canonical_request: String,
        string_to_sign: String,
    },
    /// `UNSIGNED-PAYLOAD` or `STREAMING-UNSIGNED-PAYLOAD-TRAILER` for a service other than `s3`:
    /// only S3 accepts a body its signature does not cover.
    #[error("payload hash {0:?} is not accepted by this service")]
    UnsignedPayload(String),
    #[error("x-amz-content-sha256 {declared} does not match the body's sha256 {actual}")]
    BodyHashMismatch { declared: String, actual: String },
}

fn basic(t: &OffsetDateTime) -> String {
    amz_date::format_basic(*t).unwrap_or_else(|| t.to_string())
}

const SIGNATURE_MISMATCH_MESSAGE: &str = "The request signature we calculated does not match the \
     signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
     service documentation for details.";

impl VerifyError {
    /// The error type AWS JSON services such as Lambda answer with (the `x-amzn-ErrorType` header and
    /// the `__type` field).
    pub fn aws_error_code(&self) -> &'static str {
        use VerifyError::*;
        match self {
            MissingAuthentication => "MissingAuthenticationTokenException",
            AmbiguousAuthentication
            | MalformedAuthorization(_)
            | MalformedPresignedQuery(_)
            | MalformedCredential(_)
            | MissingDate
            | MalformedDate(_)
            | UnsignedHeader(_)
            | InvalidExpires(_)
            | UnsupportedPayloadHash(_) => "IncompleteSignatureException",
            UnknownAccessKey(_) => "UnrecognizedClientException",
            ScopeDateMismatch { .. }
            | SignatureExpired { .. }
            | SignatureNotYetCurrent { .. }
            | PresignExpired { .. }
            | SignatureMismatch { .. }
            | UnsignedPayload(_)
            | BodyHashMismatch { .. } => "InvalidSignatureException",
        }
    }

    /// The HTTP status that goes with [`aws_error_code`](Self::aws_error_code).
    pub fn http_status(&self) -> u16 {
        match self.aws_error_code() {
            "IncompleteSignatureException" => 400,
            _ => 403,
        }
    }

    /// The error code S3 answers with (the `<Code>` element).
    pub fn s3_error_code(&self) -> &'static str {
        use VerifyError::*;
        match self {
            MissingAuthentication | MissingDate | MalformedDate(_) | UnsignedHeader(_) => {
                "AccessDenied"
            }
            PresignExpired { .. } => "AccessDenied",
            AmbiguousAuthentication | UnsupportedPayloadHash(_) => "InvalidArgument",
            MalformedAuthorization(_) | MalformedCredential(_) | ScopeDateMismatch { .. } => {
                "AuthorizationHeaderMalformed"
            }
            MalformedPresignedQuery(_) | InvalidExpires(_) => "AuthorizationQueryParametersError",
            SignatureExpired { .. } | SignatureNotYetCurrent { .. } => "RequestTimeTooSkewed",
            UnknownAccessKey(_) => "InvalidAccessKeyId",
            SignatureMismatch { .. } | UnsignedPayload(_) => "SignatureDoesNotMatch",
            BodyHashMismatch { .. } => "XAmzContentSHA256Mismatch",
        }
    }

    /// The HTTP status that goes with [`s3_error_code`](Self::s3_error_code).
    pub fn s3_http_status(&self) -> u16 {
        match self.s3_error_code() {
            "InvalidArgument"
            | "AuthorizationHeaderMalformed"
            | "AuthorizationQueryParametersError"
            | "XAmzContentSHA256Mismatch" => 400,
            _ => 403,
        }
    }

    /// The message for the client, worded as AWS words it.
    pub fn aws_message(&self) -> String {
        use VerifyError::*;
        match self {
            MissingAuthentication => "Missing Authentication Token".to_owned(),
            AmbiguousAuthentication => "Only one auth mechanism allowed; only the X-Amz-Algorithm \
                 query parameter or the Authorization header should be specified."
                .to_owned(),
            MalformedAuthorization(reason) => {
                format!("Authorization header is malformed: {reason}.")
            }
            MalformedPresignedQuery(reason) => format!(
                "Query-string authentication version 4 requires the X-Amz-Algorithm, \
                 X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and \
                 X-Amz-Expires parameters ({reason})."
            ),
            MalformedCredential(credential) => format!(
                "Credential should be of the form \
                 'AccessKeyId/YYYYMMDD/region/service/aws4_request', not '{credential}'."
            ),
            MissingDate => "Authorization header requires existence of either a 'X-Amz-Date' or \
                 a 'Date' header."
                .to_owned(),
            MalformedDate(date) => {
                format!(
                    "Date must be in ISO-8601 'basic format' (YYYYMMDD'T'HHMMSS'Z'), got '{date}'."
                )
            }
            UnsignedHeader("host") => {
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
                    .to_owned()
            }
            UnsignedHeader("x-amz-date") => {
                "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.".to_owned()
            }
            UnsignedHeader(name) => {
                format!("'{name}' must be a 'SignedHeader' in the AWS Authorization.")
            }
            ScopeDateMismatch { scope, request } => format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{scope}' != '{request}'."
            ),
            SignatureExpired { request, now } => format!(
                "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                basic(request),
                basic(&(*now - MAX_CLOCK_SKEW)),
                basic(now)
            ),
            SignatureNotYetCurrent { request, now } => format!(
                "Signature not yet current: {} is still later than {} ({} + 15 min.)",
                basic(request),
                basic(&(*now + MAX_CLOCK_SKEW)),
                basic(now)
            ),
            InvalidExpires(value) => format!(
                "X-Amz-Expires must be a number of seconds from 1 to 604800 (one week), not '{value}'."
            ),
            PresignExpired { .. } => "Request has expired".to_owned(),
            UnknownAccessKey(_) => {
                "The security token included in the request is invalid.".to_owned()
            }
            UnsupportedPayloadHash(value) => format!(
                "x-amz-content-sha256 must be the hex SHA-256 of the body, UNSIGNED-PAYLOAD or \
                 STREAMING-UNSIGNED-PAYLOAD-TRAILER, not '{value}'."
            ),
            SignatureMismatch { .. } => SIGNATURE_MISMATCH_MESSAGE.to_owned(),
            UnsignedPayload(value) => format!(
                "{SIGNATURE_MISMATCH_MESSAGE} This service requires the payload to be signed: \
                 x-amz-content-sha256 must be the hex SHA-256 of the body, not '{value}'."
            ),
            BodyHashMismatch { .. } => "The provided 'x-amz-content-sha256' header does not match \
                 what was computed."
                .to_owned(),
        }
    }
}

/// What the client claims: who signed, for which scope, over which headers, and when.
struct Claim {
    access_key_id: String,
    scope_date: String,
    region: String,
    service: String,
    /// Lower-case signed header names, in the client's order.
    signed_headers: Vec<String>,
    /// The `SignedHeaders` value exactly as sent.
    signed_line: String,
    signature: String,
    request_time: OffsetDateTime,
}

/// Verifies a request signed with header authentication or a presigned query.
///
/// `body_sha256_hex` is the hex SHA-256 of the body as received. `now` is the server's clock.
/// `secret_for` returns the secret of an access key id, or `None` when the key is unknown.
///
/// The payload hash in the canonical request is the `x-amz-content-sha256` header when present (a hex
/// value must then equal `body_sha256_hex`; `UNSIGNED-PAYLOAD` and
/// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` only for `s3`), otherwise the body's hash for header
/// authentication, and `UNSIGNED-PAYLOAD` (for `s3`, or an empty body) or the body's hash for
/// presigned requests. It is [`verify_head`] followed by [`HeadVerified::finish`].
pub fn verify(
    req: &RequestParts,
    body_sha256_hex: &str,
    now: OffsetDateTime,
    secret_for: impl Fn(&str) -> Option<String>,
) -> Result<Verified, VerifyError> {
    verify_with_signing_key(req, body_sha256_hex, now, |scope| {
        secret_for(scope.access_key_id).map(|secret| scope.signing_key(&secret))
    })
}

/// The credential scope a request claims: whose key, for which day, region and service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    pub access_key_id: &'a str,
    /// `YYYYMMDD`.
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl Scope<'_> {
    /// The signing key (`kSigning`) of this scope under `secret`: four chained HMACs, the same for
    /// every request of the scope, so a server may keep it for the day.
    pub fn signing_key(&self, secret: &str) -> [u8; 32] {
        signing_key(secret, self.date, self.region, self.service)
    }
}

/// [`verify`] with the signing key supplied by the caller: `key_for` returns the key of the
/// claimed scope (see [`Scope::signing_key`]), or `None` when the access key is unknown. A
/// caller that keeps derived keys saves the four HMACs of the derivation on each request; it
/// must stop handing out the keys of an access key that is no longer accepted.
pub fn verify_with_signing_key(
    req: &RequestParts,
    body_sha256_hex: &str,
    now: OffsetDateTime,
    key_for: impl FnOnce(&Scope<'_>) -> Option<[u8; 32]>,
) -> Result<Verified, VerifyError> {
    verify_head(req, now, key_for)?.finish(body_sha256_hex)
}

/// What the body of a request verified from its head must still satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyCheck {
    /// The signature is checked; the body must hash to this declared `x-amz-content-sha256`.
    DeclaredHash(String),
    /// The signature is checked and covers no body: it was made over this placeholder
    /// (`UNSIGNED-PAYLOAD` or `STREAMING-UNSIGNED-PAYLOAD-TRAILER`, `s3` only).
    Unsigned(String),
    /// The signature is checked over `UNSIGNED-PAYLOAD` by a presigned request of a service that
    /// needs its payload signed: only an empty body is covered.
    EmptyOnly,
    /// The signature covers the body's hash, which only the body gives: it is checked by
    /// [`HeadVerified::finish`].
    SignatureCoversBody,
}

/// A request whose head passed every check the head allows: the claim is well-formed and
/// current, the access key is known, and, where the payload hash does not depend on the body,
/// the signature itself matched. [`finish`](Self::finish) completes it with the body's hash.
///
/// A server reads the body only after this, so that an anonymous client or one with a wrong
/// key never makes it buffer or hash a byte.
#[derive(Debug, Clone)]
pub struct HeadVerified {
    access_key_id: String,
    region: String,
    service: String,
    request_time: OffsetDateTime,
    presigned: bool,
    body: BodyCheck,
    /// What the signature is recomputed from once the body's hash is known
    /// ([`BodyCheck::SignatureCoversBody`] only).
    pending: Option<PendingSignature>,
    /// The chain each chunk's signature continues (signed aws-chunked bodies only).
    chunks: Option<ChunkChain>,
}

/// Verifies the signatures of a signed aws-chunked body (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`):
/// each chunk's signature is an HMAC, under the request's signing key, of a string that names
/// the previous signature (the request's own for the first chunk) and the chunk's SHA-256, so
/// no chunk can be changed, dropped or reordered.
#[derive(Clone)]
pub struct ChunkChain {
    key: [u8; 32],
    amz_date: String,
    scope: String,
    previous: String,
}

impl std::fmt::Debug for ChunkChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkChain").finish_non_exhaustive()
    }
}

impl ChunkChain {
    /// Checks the next chunk's claimed signature against its data's hex SHA-256 (the empty
    /// body's for the final zero-length chunk), and moves the chain on when it matches.
    pub fn next(&mut self, chunk_sha256_hex: &str, claimed: &str) -> bool {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{chunk_sha256_hex}",
            self.amz_date, self.scope, self.previous
        );
        let expected = signature(&self.key, &sts);
        let ok = bool::from(expected.as_bytes().ct_eq(claimed.as_bytes()));
        if ok {
            self.previous = expected;
        }
        ok
    }
}

/// The parts of a canonical request that precede the payload hash, kept for [`HeadVerified::finish`].
#[derive(Clone)]
struct PendingSignature {
    key: [u8; 32],
    method: String,
    canonical_uri: String,
    canonical_query: String,
    canonical_headers: String,
    signed_line: String,
    amz_date: String,
    scope: String,
    signature: String,
}

// The derived key must not reach logs.
impl std::fmt::Debug for PendingSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignature").finish_non_exhaustive()
    }
}

impl PendingSignature {
    /// The canonical request and string to sign for `payload_hash`, and whether they match.
    fn check(&self, payload_hash: &str) -> (bool, String, String) {
        let creq = canonical_request(
            &self.method,
            &self.canonical_uri,
            &self.canonical_query,
            &self.canonical_headers,
            &self.signed_line,
            payload_hash,
        );
        let sts = string_to_sign(&self.amz_date, &self.scope, &creq);
        let expected = signature(&self.key, &sts);
        let ok = bool::from(expected.as_bytes().ct_eq(self.signature.as_bytes()));
        (ok, creq, sts)
    }
}

/// The hex SHA-256 of an empty body.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

impl HeadVerified {
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The region of the credential scope.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The service of the credential scope.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// What the body must still satisfy.
    pub fn body_check(&self) -> &BodyCheck {
        &self.body
    }

    /// The chain of chunk signatures a signed aws-chunked body must follow.
    pub fn chunk_chain(&self) -> Option<ChunkChain> {
        self.chunks.clone()
    }

    /// Whether the signature already matched (the body is then only held to
    /// [`body_check`](Self::body_check)); `false` when it covers the body's hash.
    pub fn signature_checked(&self) -> bool {
        self.body != BodyCheck::SignatureCoversBody
    }

    /// Completes the verification with the hex SHA-256 of the body as received.
    pub fn finish(self, body_sha256_hex: &str) -> Result<Verified, VerifyError> {
        let payload_hash = match &self.body {
            BodyCheck::DeclaredHash(declared) => {
                // Checked after the signature so that only an authenticated client learns
                // about its body.
                if !declared.eq_ignore_ascii_case(body_sha256_hex) {
                    return Err(VerifyError::BodyHashMismatch {
                        declared: declared.clone(),
                        actual: body_sha256_hex.to_owned(),
                    });
                }
                declared.clone()
            }
            BodyCheck::Unsigned(placeholder) => placeholder.clone(),
            BodyCheck::EmptyOnly if body_sha256_hex.eq_ignore_ascii_case(EMPTY_SHA256) => {
                UNSIGNED_PAYLOAD.to_owned()
            }
            BodyCheck::EmptyOnly | BodyCheck::SignatureCoversBody => {
                let body = body_sha256_hex.to_ascii_lowercase();
                // With `EmptyOnly` there is nothing to recompute: a body the signature does
                // not cover is a mismatch.
                let (ok, canonical_request, string_to_sign) = self
                    .pending
                    .as_ref()
                    .map(|p| p.check(&body))
                    .unwrap_or_default();
                if !ok {
                    return Err(VerifyError::SignatureMismatch {
                        canonical_request,
                        string_to_sign,
                    });
                }
                body
            }
        };
        Ok(Verified {
            access_key_id: self.access_key_id,
            region: self.region,
            service: self.service,
            date: self.request_time,
            presigned: self.presigned,
            payload_hash,
        })
    }
}

/// Verifies everything a request's head allows, before its body is read: the claim (header or
/// presigned query), the clock, the payload-hash mode the service accepts, the access key, and the
/// signature whenever the payload hash is given by the head (`x-amz-content-sha256`, or
/// `UNSIGNED-PAYLOAD` where it is allowed). `key_for` is as in [`verify_with_signing_key`].
///
/// Only `s3` accepts a payload the signature does not cover (`UNSIGNED-PAYLOAD`,
/// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`); other services answer those with
/// [`VerifyError::UnsignedPayload`], as AWS does, so that a body cannot be swapped under a
/// valid signature. A presigned request of another service may sign `UNSIGNED-PAYLOAD` for an
/// empty body only ([`BodyCheck::EmptyOnly`]).
pub fn verify_head(
    req: &RequestParts,
    now: OffsetDateTime,
    key_for: impl FnOnce(&Scope<'_>) -> Option<[u8; 32]>,
) -> Result<HeadVerified, VerifyError> {
    let now = now.to_offset(UtcOffset::UTC);
    let query = parse_query(req.query);
    let presigned = query.iter().any(|p| {
        p.name_is("X-Amz-Algorithm")
            || p.name_is("X-Amz-Credential")
            || p.name_is("X-Amz-Signature")
    });
    let claim = match (header_count(req.headers, "authorization"), presigned) {
        (0, false) => return Err(VerifyError::MissingAuthentication),
        (0, true) => presigned_claim(&query, now)?,
        (_, true) => return Err(VerifyError::AmbiguousAuthentication),
        (1, false) => header_claim(req.headers, now)?,
        _ => {
            return Err(VerifyError::MalformedAuthorization(
                "more than one authorization header".into(),
            ));
        }
    };

    let mode = payload_mode(req.headers, presigned, &claim.service)?;

    let key = key_for(&Scope {
        access_key_id: &claim.access_key_id,
        date: &claim.scope_date,
        region: &claim.region,
        service: &claim.service,
    })
    .ok_or_else(|| VerifyError::UnknownAccessKey(claim.access_key_id.clone()))?;

    let canonical_query = if presigned {
        canonical_query(query.iter().filter(|p| !p.name_is("X-Amz-Signature")))
    } else {
        canonical_query(&query)
    };
    let pending = PendingSignature {
        key,
        method: req.method.to_owned(),
        canonical_uri: canonical_uri(req.path, PathEncoding::for_service(&claim.service)),
        canonical_query,
        canonical_headers: canonical_headers(req.headers, &claim.signed_headers),
        signed_line: claim.signed_line,
        amz_date: basic(&claim.request_time),
        scope: credential_scope(&claim.scope_date, &claim.region, &claim.service),
        signature: claim.signature,
    };
    let mismatch = |creq: String, sts: String| VerifyError::SignatureMismatch {
        canonical_request: creq,
        string_to_sign: sts,
    };
    let mut chunks = None;
    let (body, pending) = match mode {
        PayloadMode::Declared(hex) => {
            let (ok, creq, sts) = pending.check(&hex);
            if !ok {
                return Err(mismatch(creq, sts));
            }
            (BodyCheck::DeclaredHash(hex), None)
        }
        PayloadMode::Unsigned(placeholder) => {
            let (ok, creq, sts) = pending.check(&placeholder);
            if !ok {
                return Err(mismatch(creq, sts));
            }
            if placeholder.starts_with(STREAMING_SIGNED_PAYLOAD) {
                chunks = Some(ChunkChain {
                    key: pending.key,
                    amz_date: pending.amz_date.clone(),
                    scope: pending.scope.clone(),
                    previous: pending.signature.clone(),
                });
            }
            (BodyCheck::Unsigned(placeholder), None)
        }
        PayloadMode::PresignedEither { any_body } => {
            // S3 presigners sign `UNSIGNED-PAYLOAD`, others (botocore's) the body's hash; each
            // can only match if the client signed that very value.
            let (ok, _, _) = pending.check(UNSIGNED_PAYLOAD);
            match (ok, any_body) {
                (true, true) => (BodyCheck::Unsigned(UNSIGNED_PAYLOAD.to_owned()), None),
                (true, false) => (BodyCheck::EmptyOnly, None),
                (false, _) => (BodyCheck::SignatureCoversBody, Some(pending)),
            }
        }
        PayloadMode::BodyHash => (BodyCheck::SignatureCoversBody, Some(pending)),
    };
    Ok(HeadVerified {
        access_key_id: claim.access_key_id,
        region: claim.region,
        service: claim.service,
        request_time: claim.request_time,
        presigned,
        body,
        pending,
        chunks,
    })
}

/// How the canonical request's payload hash is found.
enum PayloadMode {
    /// A hex `x-amz-content-sha256`: the signature can be checked at once.
    Declared(String),
    /// `UNSIGNED-PAYLOAD` or `STREAMING-UNSIGNED-PAYLOAD-TRAILER` declared (S3 only).
    Unsigned(String),
    /// A presigned request without `x-amz-content-sha256`: either `UNSIGNED-PAYLOAD` or the
    /// body's hash was signed. With `any_body` (S3) `UNSIGNED-PAYLOAD` leaves any body
    /// uncovered; elsewhere it covers an empty body only.
    PresignedEither { any_body: bool },
    /// Header authentication without `x-amz-content-sha256`: the body's hash was signed.
    BodyHash,
}

fn payload_mode(
    headers: &[(String, String)],
    presigned: bool,
    service: &str,
) -> Result<PayloadMode, VerifyError> {
    match header_value(headers, "x-amz-content-sha256") {
        None if presigned => Ok(PayloadMode::PresignedEither {
            any_body: service == "s3",
        }),
        None => Ok(PayloadMode::BodyHash),
        Some(v) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(PayloadMode::Declared(v))
        }
        Some(v)
            if v == UNSIGNED_PAYLOAD
                || v == STREAMING_UNSIGNED_PAYLOAD_TRAILER
                || v == STREAMING_SIGNED_PAYLOAD
                || v == STREAMING_SIGNED_PAYLOAD_TRAILER =>
        {
            if service == "s3" {
                Ok(PayloadMode::Unsigned(v))
            } else {
                Err(VerifyError::UnsignedPayload(v))
            }
        }
        Some(v) => Err(VerifyError::UnsupportedPayloadHash(v)),
    }
}

/// `AKID/YYYYMMDD/region/service/aws4_request` into its parts.
fn parse_credential(credential: &str) -> Result<[String; 4], VerifyError> {
    let malformed = || VerifyError::MalformedCredential(credential.to_owned());
    let parts: Vec<&str> = credential.split('/').collect();
    let [id, date, region, service, terminator] = parts[..] else {
        return Err(malformed());
    };
    if id.is_empty()
        || region.is_empty()
        || service.is_empty()
        || terminator != "aws4_request"
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(malformed());
    }
    Ok([id, date, region, service].map(str::to_owned))
}

/// `host;x-amz-date` into lower-case names; empty names are malformed.
fn parse_signed_headers(line: &str) -> Option<Vec<String>> {
    let names: Vec<String> = line.split(';').map(str::to_ascii_lowercase).collect();
    if names.iter().any(|n| n.is_empty()) {
        return None;
    }
    Some(names)
}

fn require_signed(signed: &[String], name: &'static str) -> Result<(), VerifyError> {
    if signed.iter().any(|n| n == name) {
        Ok(())
    } else {
        Err(VerifyError::UnsignedHeader(name))
    }
}

fn check_scope_date(scope_date: &str, request_time: OffsetDateTime) -> Result<(), VerifyError> {
    let request = basic(&request_time);
    let request_date = request.get(..8).unwrap_or_default();
    if scope_date == request_date {
        Ok(())
    } else {
        Err(VerifyError::ScopeDateMismatch {
            scope: scope_date.to_owned(),
            request: request_date.to_owned(),
        })
    }
}

fn check_not_in_future(request: OffsetDateTime, now: OffsetDateTime) -> Result<(), VerifyError> {
    if request > now + MAX_CLOCK_SKEW {
        return Err(VerifyError::SignatureNotYetCurrent { request, now });
    }
    Ok(())
}

/// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
fn parse_authorization(value: &str) -> Result<(String, String, String), VerifyError> {
    let malformed = |reason: String| VerifyError::MalformedAuthorization(reason);
    let value = value.trim_matches(is_http_space);
    let Some(rest) = value.strip_prefix(ALGORITHM) else {
        let algorithm = value.split_whitespace().next().unwrap_or_default();
        return Err(malformed(format!(
            "unsupported algorithm {algorithm:?}, expected {ALGORITHM}"
        )));
    };
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return Err(malformed(format!("expected a space after {ALGORITHM}")));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim_matches(is_http_space);
        if part.is_empty() {
            continue;
        }
        let Some((key, val)) = part.split_once('=') else {
            return Err(malformed(format!("{part:?} is not a key=value pair")));
        };
        let slot = match key.trim_matches(is_http_space) {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot
            .replace(val.trim_matches(is_http_space).to_owned())
            .is_some()
        {
            return Err(malformed(format!(
                "{} appears more than once",
                key.trim_matches(is_http_space)
            )));
        }
    }
    let missing = |name: &str| malformed(format!("missing {name}"));
    Ok((
        credential.ok_or_else(|| missing("Credential"))?,
        signed_headers.ok_or_else(|| missing("SignedHeaders"))?,
        signature.ok_or_else(|| missing("Signature"))?,
    ))
}

fn header_claim(headers: &[(String, String)], now: OffsetDateTime) -> Result<Claim, VerifyError> {
    let authorization = header_value(headers, "authorization").unwrap_or_default();
    let (credential, signed_line, signature) = parse_authorization(&authorization)?;
    let [access_key_id, scope_date, region, service] = parse_credential(&credential)?;
    let signed_headers = parse_signed_headers(&signed_line).ok_or_else(|| {
        VerifyError::MalformedAuthorization(format!("invalid SignedHeaders {signed_line:?}"))
    })?;

    let (date_header, request_time) = match header_value(headers, "x-amz-date") {
        Some(v) => (
            "x-amz-date",
            amz_date::parse_basic(&v).ok_or(VerifyError::MalformedDate(v))?,
        ),
        None => match header_value(headers, "date") {
            Some(v) => (
                "date",
                amz_date::parse_http_date(&v).ok_or(VerifyError::MalformedDate(v))?,
            ),
            None => return Err(VerifyError::MissingDate),
        },
    };
    require_signed(&signed_headers, "host")?;
    require_signed(&signed_headers, date_header)?;
    check_scope_date(&scope_date, request_time)?;
    if request_time < now - MAX_CLOCK_SKEW {
        return Err(VerifyError::SignatureExpired {
            request: request_time,
            now,
        });
    }
    check_not_in_future(request_time, now)?;

    Ok(Claim {
        access_key_id,
        scope_date,
        region,
        service,
        signed_headers,
        signed_line,
        signature,
        request_time,
    })
}

/// The single value of a presigned parameter; repeating one is malformed.
fn single_param(query: &[QueryParam], name: &str) -> Result<String, VerifyError> {
    let mut found = query.iter().filter(|p| p.name_is(name));
    let malformed = |reason: String| VerifyError::MalformedPresignedQuery(reason);
    let Some(first) = found.next() else {
        return Err(malformed(format!("missing {name}")));
    };
    if found.next().is_some() {
        return Err(malformed(format!("{name} appears more than once")));
    }
    String::from_utf8(first.value.clone()).map_err(|_| malformed(format!("{name} is not UTF-8")))
}

fn presigned_claim(query: &[QueryParam], now: OffsetDateTime) -> Result<Claim, VerifyError> {
    let algorithm = single_param(query, "X-Amz-Algorithm")?;
    let credential = single_param(query, "X-Amz-Credential")?;
    let date = single_param(query, "X-Amz-Date")?;
    let expires = single_param(query, "X-Amz-Expires")?;
    let signed_line = single_param(query, "X-Amz-SignedHeaders")?;
    let signature = single_param(query, "X-Amz-Signature")?;
    if algorithm != ALGORITHM {
        return Err(VerifyError::MalformedPresignedQuery(format!(
            "unsupported algorithm {algorithm:?}, expected {ALGORITHM}"
        )));
    }
    let [access_key_id, scope_date, region, service] = parse_credential(&credential)?;
    let signed_headers = parse_signed_headers(&signed_line).ok_or_else(|| {
        VerifyError::MalformedPresignedQuery(format!("invalid X-Amz-SignedHeaders {signed_line:?}"))
    })?;
    let request_time = amz_date::parse_basic(&date).ok_or(VerifyError::MalformedDate(date))?;
    let expires_secs = match expires.parse::<u32>() {
        Ok(secs)
            if (1..=MAX_PRESIGN_EXPIRES_SECS).contains(&secs)
                && expires.bytes().all(|b| b.is_ascii_digit()) =>
        {
            secs
        }
        _ => return Err(VerifyError::InvalidExpires(expires)),
    };
    require_signed(&signed_headers, "host")?;
    check_scope_date(&scope_date, request_time)?;
    check_not_in_future(request_time, now)?;
    let expired_at = request_time + Duration::seconds(i64::from(expires_secs));
    if now > expired_at {
        return Err(VerifyError::PresignExpired { expired_at, now });
    }

    Ok(Claim {
        access_key_id,
        scope_date,
        region,
        service,
        signed_headers,
        signed_line,
        signature,
        request_time,
    })
}

/// The whitespace HTTP allows around header value parts; Unicode spaces are data, not padding.
fn is_http_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Credentials, PayloadHash, SigningParams, presign, sha256_hex, sign_headers,
        sign_headers_with_payload,
    };
    use time::macros::datetime;

    const AKID: &str = "AKIAUPDRAFTTEST";
    const SECRET: &str = "s3cr3t/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const T0: OffsetDateTime = datetime!(2024-05-17 09:30:15 UTC);

    fn creds() -> Credentials {
        Credentials::new(AKID, SECRET)
    }

    fn secrets(id: &str) -> Option<String> {
        (id == AKID).then(|| SECRET.to_owned())
    }

    fn h(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    /// Signs a Lambda-style request and returns its full header list.
    fn signed_request(
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        service: &str,
        time: OffsetDateTime,
    ) -> Vec<(String, String)> {
        let creds = creds();
        let mut headers = vec![
            h("Host", "localhost:9000"),
            h("Content-Type", "application/json"),
            h("User-Agent", "updraft-cli"),
        ];
        let req = RequestParts {
            method,
            path,
            query,
            headers: &headers,
        };
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service,
            time,
        };
        let added = sign_headers(&req, body, &params).expect("signs");
        headers.extend(added);
        headers
    }

    fn parts<'a>(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        headers: &'a [(String, String)],
    ) -> RequestParts<'a> {
        RequestParts {
            method,
            path,
            query,
            headers,
        }
    }

    const ARN_PATH: &str = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn/invocations";

    #[test]
    fn round_trip_header_auth() {
        let body = br#"{"key":"value"}"#;
        let headers = signed_request("POST", ARN_PATH, "Qualifier=%24LATEST", body, "lambda", T0);
        let v = verify(
            &parts("POST", ARN_PATH, "Qualifier=%24LATEST", &headers),
            &sha256_hex(body),
            T0 + Duration::minutes(3),
            secrets,
        )
        .expect("verifies");
        assert_eq!(
            v,
            Verified {
                access_key_id: AKID.into(),
                region: "us-east-1".into(),
                service: "lambda".into(),
                date: T0,
                presigned: false,
                payload_hash: sha256_hex(body),
            }
        );
    }

    #[test]
    fn a_precomputed_signing_key_verifies_like_the_secret() {
        let body = br#"{}"#;
        let headers = signed_request("POST", ARN_PATH, "", body, "lambda", T0);
        let req = parts("POST", ARN_PATH, "", &headers);
        let mut asked = None;
        let v = verify_with_signing_key(&req, &sha256_hex(body), T0, |scope| {
            asked = Some((
                scope.access_key_id.to_owned(),
                scope.date.to_owned(),
                scope.region.to_owned(),
                scope.service.to_owned(),
            ));
            Some(scope.signing_key(SECRET))
        })
        .expect("verifies");
        assert_eq!(v, verify(&req, &sha256_hex(body), T0, secrets).unwrap());
        assert_eq!(
            asked,
            Some((
                AKID.to_owned(),
                "20240517".to_owned(),
                "us-east-1".to_owned(),
                "lambda".to_owned()
            ))
        );
        // A key of another scope (here: another day) does not verify.
        let other = Scope {
            access_key_id: AKID,
            date: "20240518",
            region: "us-east-1",
            service: "lambda",
        }
        .signing_key(SECRET);
        let err =
            verify_with_signing_key(&req, &sha256_hex(body), T0, |_| Some(other)).unwrap_err();
        assert!(
            matches!(err, VerifyError::SignatureMismatch { .. }),
            "{err:?}"
        );
        let err = verify_with_signing_key(&req, &sha256_hex(body), T0, |_| None).unwrap_err();
        assert_eq!(err, VerifyError::UnknownAccessKey(AKID.to_owned()));
    }

    #[test]
    fn header_names_and_order_do_not_matter_to_the_server() {
        let body = b"x";
        let mut headers = signed_request("PUT", "/b/k", "", body, "s3", T0);
        headers.reverse();
        for (name, _) in headers.iter_mut() {
            *name = name.to_ascii_uppercase();
        }
        verify(
            &parts("PUT", "/b/k", "", &headers),
            &sha256_hex(body),
            T0,
            secrets,
        )
        .expect("verifies");
    }

    #[test]
    fn tampered_body_is_rejected() {
        let headers = signed_request("POST", "/x", "", b"original", "lambda", T0);
        let err = verify(
            &parts("POST", "/x", "", &headers),
            &sha256_hex(b"tampered"),
            T0,
            secrets,
        )
        .unwrap_err();
        assert!(
            matches!(err, VerifyError::BodyHashMismatch { .. }),
            "{err:?}"
        );
        assert_eq!(err.s3_error_code(), "XAmzContentSHA256Mismatch");
    }

    #[test]
    fn tampered_body_without_content_sha256_header_fails_the_signature() {
        let headers: Vec<_> = signed_request("POST", "/x", "", b"original", "lambda", T0)
            .into_iter()
            .filter(|(n, _)| n != "x-amz-content-sha256")
            .collect();
        // The signature covered the header, so removing it already breaks the signature; what
        // matters is that a different body can never verify.
        let err = verify(
            &parts("POST", "/x", "", &headers),
            &sha256_hex(b"tampered"),
            T0,
            secrets,
        )
        .unwrap_err();
        assert!(
            matches!(err, VerifyError::SignatureMismatch { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn tampered_path_query_and_header_are_rejected() {
        let headers = signed_request("GET", "/a", "x=1", b"", "lambda", T0);
        let body = sha256_hex(b"");
        for (path, query) in [("/b", "x=1"), ("/a", "x=2"), ("/a", "x=1&y=2")] {
            let err = verify(&parts("GET", path, query, &headers), &body, T0, secrets).unwrap_err();
            assert!(
                matches!(err, VerifyError::SignatureMismatch { .. }),
                "{path}?{query}"
            );
        }
        let err = verify(&parts("DELETE", "/a", "x=1", &headers), &body, T0, secrets).unwrap_err();
        assert!(matches!(err, VerifyError::SignatureMismatch { .. }));
        let mut changed = headers.clone();
        changed[1].1 = "text/plain".into();
        let err = verify(&parts("GET", "/a", "x=1", &changed), &body, T0, secrets).unwrap_err();
        assert!(matches!(err, VerifyError::SignatureMismatch { .. }));
        // An unsigned header may change freely.
        let mut changed = headers.clone();
        changed[2].1 = "another-agent".into();
        verify(&parts("GET", "/a", "x=1", &changed), &body, T0, secrets).expect("verifies");
    }

    #[test]
    fn wrong_secret_is_rejected() {
        let headers = signed_request("GET", "/", "", b"", "lambda", T0);
        let err = verify(
            &parts("GET", "/", "", &headers),
            &sha256_hex(b""),
            T0,
            |_| Some("not-the-secret".to_owned()),
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::SignatureMismatch { .. }));
        assert_eq!(err.aws_error_code(), "InvalidSignatureException");
        assert_eq!(err.http_status(), 403);
        assert_eq!(err.s3_error_code(), "SignatureDoesNotMatch");
        assert_eq!(
            err.aws_message(),
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details."
        );
    }

    #[test]
    fn unknown_key_is_rejected() {
        let headers = signed_request("GET", "/", "", b"", "lambda", T0);
        let err = verify(
            &parts("GET", "/", "", &headers),
            &sha256_hex(b""),
            T0,
            |_| None,
        )
        .unwrap_err();
        assert_eq!(err, VerifyError::UnknownAccessKey(AKID.into()));
        assert_eq!(err.aws_error_code(), "UnrecognizedClientException");
        assert_eq!(err.s3_error_code(), "InvalidAccessKeyId");
    }

    #[test]
    fn skew_of_sixteen_minutes_is_rejected_fifteen_accepted() {
        let headers = signed_request("GET", "/", "", b"", "lambda", T0);
        let req = parts("GET", "/", "", &headers);
        let body = sha256_hex(b"");
        verify(&req, &body, T0 + Duration::minutes(15), secrets).expect("15 minutes late is fine");
        verify(&req, &body, T0 - Duration::minutes(15), secrets).expect("15 minutes early is fine");

        let late = verify(&req, &body, T0 + Duration::minutes(16), secrets).unwrap_err();
        assert!(
            matches!(late, VerifyError::SignatureExpired { .. }),
            "{late:?}"
        );
        assert_eq!(late.aws_error_code(), "InvalidSignatureException");
        assert_eq!(
            late.aws_message(),
            "Signature expired: 20240517T093015Z is now earlier than 20240517T093115Z \
             (20240517T094615Z - 15 min.)"
        );
        assert_eq!(late.s3_error_code(), "RequestTimeTooSkewed");

        let early = verify(&req, &body, T0 - Duration::minutes(16), secrets).unwrap_err();
        assert!(
            matches!(early, VerifyError::SignatureNotYetCurrent { .. }),
            "{early:?}"
        );
        assert_eq!(
            early.aws_message(),
            "Signature not yet current: 20240517T093015Z is still later than 20240517T092915Z \
             (20240517T091415Z + 15 min.)"
        );
    }

    #[test]
    fn skew_is_checked_before_the_key_is_looked_up() {
        let headers = signed_request("GET", "/", "", b"", "lambda", T0);
        let err = verify(
            &parts("GET", "/", "", &headers),
            &sha256_hex(b""),
            T0 + Duration::hours(1),
            |_| panic!("no key lookup for a stale request"),
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::SignatureExpired { .. }));
    }

    #[test]
    fn missing_authentication() {
        let headers = vec![h("host", "h")];
        let err = verify(&parts("GET", "/", "", &headers), "", T0, secrets).unwrap_err();
        assert_eq!(err, VerifyError::MissingAuthentication);
        assert_eq!(err.aws_error_code(), "MissingAuthenticationTokenException");
        assert_eq!(err.http_status(), 403);
        assert_eq!(err.aws_message(), "Missing Authentication Token");
    }

    /// An `Authorization` value built by hand at `T0`, for requests the signer refuses to produce:
    /// the canonical URI is given as is, and `signed` lists the signed header names.
    fn hand_authorization(
        method: &str,
        canonical_uri: &str,
        headers: &[(String, String)],
        signed: &[&str],
        payload: &str,
        service: &str,
    ) -> (String, String) {
        let signed: Vec<String> = signed.iter().map(|s| (*s).to_owned()).collect();
        let creq = canonical_request(
            method,
            canonical_uri,
            "",
            &canonical_headers(headers, &signed),
            &signed.join(";"),
            payload,
        );
        let scope = credential_scope("20240517", "us-east-1", service);
        let key = signing_key(SECRET, "20240517", "us-east-1", service);
        let sig = signature(&key, &string_to_sign("20240517T093015Z", &scope, &creq));
        h(
            "authorization",
            &format!(
                "{ALGORITHM} Credential={AKID}/{scope}, SignedHeaders={}, Signature={sig}",
                signed.join(";")
            ),
        )
    }

    #[test]
    fn unsigned_host_is_rejected() {
        let body = sha256_hex(b"");
        let mut headers = vec![h("host", "h"), h("x-amz-date", "20240517T093015Z")];
        headers.push(hand_authorization(
            "GET",
            "/",
            &headers,
            &["x-amz-date"],
            &body,
            "lambda",
        ));
        let err = verify(&parts("GET", "/", "", &headers), &body, T0, secrets).unwrap_err();
        assert_eq!(err, VerifyError::UnsignedHeader("host"));
        assert_eq!(err.aws_error_code(), "IncompleteSignatureException");
        assert_eq!(err.http_status(), 400);
    }

    #[test]
    fn unsigned_amz_date_is_rejected() {
        let mut headers = signed_request("GET", "/", "", b"", "lambda", T0);
        for (name, value) in headers.iter_mut() {
            if name == "authorization" {
                *value = value.replace(";x-amz-date", "");
            }
        }
        let err = verify(
            &parts("GET", "/", "", &headers),
            &sha256_hex(b""),
            T0,
            secrets,
        )
        .unwrap_err();
        assert_eq!(err, VerifyError::UnsignedHeader("x-amz-date"));
    }

    #[test]
    fn date_header_is_used_only_without_x_amz_date() {
        let body = sha256_hex(b"");
        let mut headers = vec![h("host", "h"), h("date", "Fri, 17 May 2024 09:30:15 GMT")];
        headers.push(hand_authorization(
            "GET",
            "/",
            &headers,
            &["date", "host"],
            &body,
            "lambda",
        ));
        let v = verify(&parts("GET", "/", "", &headers), &body, T0, secrets).expect("verifies");
        assert_eq!(v.date, T0);

        // x-amz-date, when present, is the request time (and must then be signed).
        let mut both = headers.clone();
        both.push(h("x-amz-date", "20240517T093015Z"));
        let err = verify(&parts("GET", "/", "", &both), &body, T0, secrets).unwrap_err();
        assert_eq!(err, VerifyError::UnsignedHeader("x-amz-date"));

        let mut no_date = headers.clone();
        no_date.remove(1);
        assert_eq!(
            verify(&parts("GET", "/", "", &no_date), &body, T0, secrets).unwrap_err(),
            VerifyError::MissingDate
        );
    }

    #[test]
    fn scope_date_must_match_request_date() {
        let mut headers = signed_request("GET", "/", "", b"", "lambda", T0);
        for (name, value) in headers.iter_mut() {
            if name == "authorization" {
                *value = value.replace("/20240517/", "/20240516/");
            }
        }
        let err = verify(
            &parts("GET", "/", "", &headers),
            &sha256_hex(b""),
            T0,
            secrets,
        )
        .unwrap_err();
        assert_eq!(
            err,
            VerifyError::ScopeDateMismatch {
                scope: "20240516".into(),
                request: "20240517".into()
            }
        );
    }

    #[test]
    fn malformed_authorization_headers() {
        let cases = [
            "AWS AKID:abc",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256Credential=a/20240517/us-east-1/lambda/aws4_request",
            "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=abc",
            "AWS4-HMAC-SHA256 Credential=a/20240517/us-east-1/lambda/aws4_request, Signature=abc",
            "AWS4-HMAC-SHA256 Credential=a/20240517/us-east-1/lambda/aws4_request, SignedHeaders=host",
            "AWS4-HMAC-SHA256 Credential=a/20240517/us-east-1/lambda/aws4_request, SignedHeaders=host;;x-amz-date, Signature=abc",
            "AWS4-HMAC-SHA256 Credential=x, Credential=y, SignedHeaders=host, Signature=abc",
            "AWS4-HMAC-SHA256 garbage",
        ];
        for auth in cases {
            let headers = vec![
                h("host", "h"),
                h("x-amz-date", "20240517T093015Z"),
                h("authorization", auth),
            ];
            let err = verify(&parts("GET", "/", "", &headers), "", T0, secrets).unwrap_err();
            assert!(
                matches!(err, VerifyError::MalformedAuthorization(_)),
                "{auth}: {err:?}"
            );
            assert_eq!(err.aws_error_code(), "IncompleteSignatureException");
        }
        for credential in [
            "AKID/20240517/us-east-1/lambda",
            "AKID/20240517/us-east-1/lambda/aws4_request/x",
            "AKID/2024051/us-east-1/lambda/aws4_request",
            "AKID/20240517//lambda/aws4_request",
            "AKID/20240517/us-east-1/lambda/aws5_request",
            "/20240517/us-east-1/lambda/aws4_request",
        ] {
            let auth = format!(
                "{ALGORITHM} Credential={credential}, SignedHeaders=host;x-amz-date, Signature=abc"
            );
            let headers = vec![
                h("host", "h"),
                h("x-amz-date", "20240517T093015Z"),
                h("authorization", &auth),
            ];
            let err = verify(&parts("GET", "/", "", &headers), "", T0, secrets).unwrap_err();
            assert_eq!(err, VerifyError::MalformedCredential(credential.into()));
        }
        let auth = format!(
            "{ALGORITHM} Credential={AKID}/20240517/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
        );
        let headers = vec![
            h("host", "h"),
            h("x-amz-date", "2024-05-17T09:30:15Z"),
            h("authorization", &auth),
        ];
        let err = verify(&parts("GET", "/", "", &headers), "", T0, secrets).unwrap_err();
        assert_eq!(
            err,
            VerifyError::MalformedDate("2024-05-17T09:30:15Z".into())
        );
    }

    #[test]
    fn two_authorization_headers_are_malformed() {
        let mut headers = signed_request("GET", "/", "", b"", "lambda", T0);
        let auth = headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .cloned()
            .expect("auth");
        headers.push(auth);
        let err = verify(
            &parts("GET", "/", "", &headers),
            &sha256_hex(b""),
            T0,
            secrets,
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::MalformedAuthorization(_)));
    }

    #[test]
    fn unsigned_payload_and_streaming_trailer_are_accepted() {
        let creds = creds();
        let base = vec![h("host", "h")];
        let req = parts("PUT", "/b/k", "", &base);
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "s3",
            time: T0,
        };
        let mut unsigned = base.clone();
        unsigned.extend(
            sign_headers_with_payload(&req, PayloadHash::Unsigned, &params).expect("signs"),
        );
        let v = verify(
            &parts("PUT", "/b/k", "", &unsigned),
            &sha256_hex(b"any"),
            T0,
            secrets,
        )
        .expect("verifies");
        assert_eq!(v.payload_hash, UNSIGNED_PAYLOAD);

        let mut streaming = vec![
            h("host", "h"),
            h("x-amz-content-sha256", STREAMING_UNSIGNED_PAYLOAD_TRAILER),
            h("x-amz-date", "20240517T093015Z"),
            h("x-amz-decoded-content-length", "3"),
        ];
        streaming.push(hand_authorization(
            "PUT",
            "/b/k",
            &streaming,
            &[
                "host",
                "x-amz-content-sha256",
                "x-amz-date",
                "x-amz-decoded-content-length",
            ],
            STREAMING_UNSIGNED_PAYLOAD_TRAILER,
            "s3",
        ));
        let v = verify(
            &parts("PUT", "/b/k", "", &streaming),
            &sha256_hex(b"chunks"),
            T0,
            secrets,
        )
        .expect("verifies");
        assert_eq!(v.payload_hash, STREAMING_UNSIGNED_PAYLOAD_TRAILER);
    }

    #[test]
    fn signed_streaming_payload_is_verified_chunk_by_chunk() {
        let payload = STREAMING_SIGNED_PAYLOAD;
        let mut headers = vec![
            h("host", "h"),
            h("x-amz-content-sha256", payload),
            h("x-amz-date", "20240517T093015Z"),
        ];
        headers.push(hand_authorization(
            "PUT",
            "/b/k",
            &headers,
            &["host", "x-amz-content-sha256", "x-amz-date"],
            payload,
            "s3",
        ));
        let req = parts("PUT", "/b/k", "", &headers);
        let key = |s: &Scope<'_>| secrets(s.access_key_id).map(|k| s.signing_key(&k));
        let head = verify_head(&req, T0, key).unwrap();
        let mut chain = head
            .chunk_chain()
            .expect("a chain for a signed streaming body");
        // The first chunk's signature, computed by hand from the seed signature.
        let seed = headers[3]
            .1
            .rsplit("Signature=")
            .next()
            .unwrap()
            .to_string();
        let k = signing_key(SECRET, "20240517", "us-east-1", "s3");
        let data_hash = crate::sha256_hex(b"chunk");
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n20240517T093015Z\n20240517/us-east-1/s3/aws4_request\n{seed}\n{EMPTY_SHA256}\n{data_hash}"
        );
        let first = signature(&k, &sts);
        assert!(!chain.clone().next(&crate::sha256_hex(b"other"), &first));
        assert!(chain.next(&data_hash, &first));
        // Replaying the first signature for the next chunk fails: the chain moved on.
        assert!(!chain.next(&data_hash, &first));
        // Outside S3 the mode is refused, as any payload the signature does not cover.
        let err = verify_head(
            &parts(
                "PUT",
                "/2015-03-31/functions/f/invocations",
                "",
                &lambda_with_declared_payload(payload),
            ),
            T0,
            |_| panic!("key looked up"),
        )
        .unwrap_err();
        assert_eq!(err, VerifyError::UnsignedPayload(payload.into()));
    }

    /// A Lambda request signed with `payload` written into `x-amz-content-sha256` and the
    /// canonical request, by hand (the signer refuses to sign an unsigned Lambda payload).
    fn lambda_with_declared_payload(payload: &str) -> Vec<(String, String)> {
        let mut headers = vec![
            h("host", "h"),
            h("x-amz-content-sha256", payload),
            h("x-amz-date", "20240517T093015Z"),
        ];
        headers.push(hand_authorization(
            "POST",
            "/2015-03-31/functions/f/invocations",
            &headers,
            &["host", "x-amz-content-sha256", "x-amz-date"],
            payload,
            "lambda",
        ));
        headers
    }

    #[test]
    fn unsigned_payload_is_refused_outside_s3_before_the_key_is_looked_up() {
        for payload in [UNSIGNED_PAYLOAD, STREAMING_UNSIGNED_PAYLOAD_TRAILER] {
            let headers = lambda_with_declared_payload(payload);
            let req = parts("POST", "/2015-03-31/functions/f/invocations", "", &headers);
            let err = verify_head(&req, T0, |_| panic!("key looked up")).unwrap_err();
            assert_eq!(err, VerifyError::UnsignedPayload(payload.into()));
            assert_eq!(err.aws_error_code(), "InvalidSignatureException");
            assert_eq!(err.http_status(), 403);
            // The signature is right; the swapped body is what it does not cover.
            let err = verify(&req, &sha256_hex(b"swapped"), T0, secrets).unwrap_err();
            assert_eq!(err, VerifyError::UnsignedPayload(payload.into()));
        }
    }

    #[test]
    fn head_refuses_an_unknown_key_and_a_bad_scope_without_the_body() {
        let headers = signed_request("POST", ARN_PATH, "", b"{}", "lambda", T0);
        let req = parts("POST", ARN_PATH, "", &headers);
        let err = verify_head(&req, T0, |_| None).unwrap_err();
        assert_eq!(err, VerifyError::UnknownAccessKey(AKID.into()));
        let late = T0 + Duration::minutes(16);
        let err = verify_head(&req, late, |_| panic!("key looked up")).unwrap_err();
        assert!(
            matches!(err, VerifyError::SignatureExpired { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn head_checks_the_signature_when_the_payload_hash_is_declared() {
        let body = br#"{"a":1}"#;
        let creds = creds();
        // Updraft's signer, like S3's, declares the payload hash in `x-amz-content-sha256`.
        let base = vec![h("host", "h")];
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "lambda",
            time: T0,
        };
        let mut headers = base.clone();
        headers.extend(sign_headers(&parts("POST", ARN_PATH, "", &base), body, &params).unwrap());
        let req = parts("POST", ARN_PATH, "", &headers);

        // A wrong secret fails on the head alone.
        let wrong = |s: &Scope<'_>| Some(s.signing_key("not-the-secret"));
        let err = verify_head(&req, T0, wrong).unwrap_err();
        assert!(
            matches!(err, VerifyError::SignatureMismatch { .. }),
            "{err:?}"
        );

        let head = verify_head(&req, T0, |s| Some(s.signing_key(SECRET))).unwrap();
        assert!(head.signature_checked());
        assert_eq!(
            head.body_check(),
            &BodyCheck::DeclaredHash(sha256_hex(body))
        );
        let err = head.clone().finish(&sha256_hex(b"swapped")).unwrap_err();
        assert!(
            matches!(err, VerifyError::BodyHashMismatch { .. }),
            "{err:?}"
        );
        let v = head.finish(&sha256_hex(body)).unwrap();
        assert_eq!(v.payload_hash, sha256_hex(body));
    }

    #[test]
    fn head_defers_the_signature_when_it_covers_the_body() {
        // As botocore signs Lambda requests: the body's hash is in the canonical request only.
        let body = br#"{"a":1}"#;
        let path = "/2015-03-31/functions/f/invocations";
        let mut headers = vec![h("host", "h"), h("x-amz-date", "20240517T093015Z")];
        headers.push(hand_authorization(
            "POST",
            path,
            &headers,
            &["host", "x-amz-date"],
            &sha256_hex(body),
            "lambda",
        ));
        let req = parts("POST", path, "", &headers);
        let head = verify_head(&req, T0, |s| Some(s.signing_key(SECRET))).unwrap();
        assert!(!head.signature_checked());
        assert_eq!(head.body_check(), &BodyCheck::SignatureCoversBody);
        assert_eq!(
            (head.access_key_id(), head.region(), head.service()),
            (AKID, "us-east-1", "lambda")
        );
        let err = head.clone().finish(&sha256_hex(b"swapped")).unwrap_err();
        assert!(
            matches!(err, VerifyError::SignatureMismatch { .. }),
            "{err:?}"
        );
        assert_eq!(head.finish(&sha256_hex(body)).unwrap().access_key_id, AKID);
        // A wrong secret is only found out once the body's hash is known.
        let head = verify_head(&req, T0, |s| Some(s.signing_key("nope"))).unwrap();
        assert!(head.finish(&sha256_hex(body)).is_err());
    }

    #[test]
    fn presigned_unsigned_payload_outside_s3_covers_an_empty_body_only() {
        let headers = vec![h("host", "h")];
        let mut query = vec![
            ("X-Amz-Algorithm", ALGORITHM.to_owned()),
            (
                "X-Amz-Credential",
                format!("{AKID}%2F20240517%2Fus-east-1%2Flambda%2Faws4_request"),
            ),
            ("X-Amz-Date", "20240517T093015Z".to_owned()),
            ("X-Amz-Expires", "300".to_owned()),
            ("X-Amz-SignedHeaders", "host".to_owned()),
        ];
        let unsigned_query: String = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let creq = canonical_request(
            "POST",
            "/2015-03-31/functions/f/invocations",
            &canonical_query(&parse_query(&unsigned_query)),
            &canonical_headers(&headers, &["host".to_owned()]),
            "host",
            UNSIGNED_PAYLOAD,
        );
        let scope = credential_scope("20240517", "us-east-1", "lambda");
        let key = signing_key(SECRET, "20240517", "us-east-1", "lambda");
        let sig = signature(&key, &string_to_sign("20240517T093015Z", &scope, &creq));
        query.push(("X-Amz-Signature", sig));
        let q: String = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let req = parts("POST", "/2015-03-31/functions/f/invocations", &q, &headers);
        let head = verify_head(&req, T0, |s| Some(s.signing_key(SECRET))).unwrap();
        assert_eq!(head.body_check(), &BodyCheck::EmptyOnly);
        assert_eq!(
            head.clone().finish(&sha256_hex(b"")).unwrap().payload_hash,
            UNSIGNED_PAYLOAD
        );
        let err = head.finish(&sha256_hex(b"{}")).unwrap_err();
        assert!(
            matches!(err, VerifyError::SignatureMismatch { .. }),
            "{err:?}"
        );
    }

    fn presigned_query(
        path: &str,
        query: &str,
        expires: u32,
        service: &str,
        time: OffsetDateTime,
    ) -> String {
        let creds = creds();
        let headers = vec![h("host", "localhost:9000")];
        let req = parts("GET", path, query, &headers);
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service,
            time,
        };
        let added = presign(&req, expires, &params).expect("presigns");
        if query.is_empty() {
            added
        } else {
            format!("{query}&{added}")
        }
    }

    #[test]
    fn round_trip_presigned() {
        let path = "/code/fn/my%20code%3Av1.zip";
        let query = presigned_query(path, "versionId=3", 600, "s3", T0);
        let headers = vec![h("Host", "localhost:9000"), h("User-Agent", "curl")];
        let v = verify(
            &parts("GET", path, &query, &headers),
            &sha256_hex(b""),
            T0 + Duration::minutes(9),
            secrets,
        )
        .expect("verifies");
        assert!(v.presigned);
        assert_eq!(v.service, "s3");
        assert_eq!(v.payload_hash, UNSIGNED_PAYLOAD);

        // Parameter order on the wire does not matter.
        let mut pieces: Vec<&str> = query.split('&').collect();
        pieces.reverse();
        let reordered = pieces.join("&");
        verify(&parts("GET", path, &reordered, &headers), "", T0, secrets).expect("verifies");

        let tampered = query.replace("versionId=3", "versionId=4");
        let err = verify(&parts("GET", path, &tampered, &headers), "", T0, secrets).unwrap_err();
        assert!(matches!(err, VerifyError::SignatureMismatch { .. }));
        let other_host = vec![h("Host", "evil:9000")];
        let err = verify(&parts("GET", path, &query, &other_host), "", T0, secrets).unwrap_err();
        assert!(matches!(err, VerifyError::SignatureMismatch { .. }));
    }

    #[test]
    fn presigned_expiry() {
        let query = presigned_query("/b/k", "", 60, "s3", T0);
        let headers = vec![h("host", "localhost:9000")];
        let req = parts("GET", "/b/k", &query, &headers);
        verify(&req, "", T0 + Duration::seconds(60), secrets).expect("valid to the last second");
        let err = verify(&req, "", T0 + Duration::seconds(61), secrets).unwrap_err();
        assert_eq!(
            err,
            VerifyError::PresignExpired {
                expired_at: T0 + Duration::seconds(60),
                now: T0 + Duration::seconds(61)
            }
        );
        assert_eq!(err.s3_error_code(), "AccessDenied");
        // A long-lived link is not subject to the 15-minute window...
        let query = presigned_query("/b/k", "", 604_800, "s3", T0);
        let req = parts("GET", "/b/k", &query, &headers);
        verify(&req, "", T0 + Duration::days(6), secrets).expect("six days in");
        // ...but one dated in the future is.
        let err = verify(&req, "", T0 - Duration::minutes(16), secrets).unwrap_err();
        assert!(matches!(err, VerifyError::SignatureNotYetCurrent { .. }));
    }

    #[test]
    fn presigned_expires_bounds() {
        let headers = vec![h("host", "localhost:9000")];
        let query = presigned_query("/b/k", "", 60, "s3", T0);
        for bad in ["0", "604801", "-5", "abc", "+60", ""] {
            let q = query.replace("X-Amz-Expires=60", &format!("X-Amz-Expires={bad}"));
            let err = verify(&parts("GET", "/b/k", &q, &headers), "", T0, secrets).unwrap_err();
            assert_eq!(
                err,
                VerifyError::InvalidExpires(bad.replace('+', " ")),
                "{bad}"
            );
            assert_eq!(err.s3_error_code(), "AuthorizationQueryParametersError");
        }
    }

    #[test]
    fn presigned_requires_every_parameter_once() {
        let headers = vec![h("host", "localhost:9000")];
        let query = presigned_query("/b/k", "", 60, "s3", T0);
        for name in [
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Signature",
        ] {
            let without: Vec<&str> = query
                .split('&')
                .filter(|p| !p.starts_with(&format!("{name}=")))
                .collect();
            let err = verify(
                &parts("GET", "/b/k", &without.join("&"), &headers),
                "",
                T0,
                secrets,
            )
            .unwrap_err();
            assert_eq!(
                err,
                VerifyError::MalformedPresignedQuery(format!("missing {name}"))
            );
        }
        let doubled = format!("{query}&X-Amz-Date=20240517T093015Z");
        let err = verify(&parts("GET", "/b/k", &doubled, &headers), "", T0, secrets).unwrap_err();
        assert!(matches!(err, VerifyError::MalformedPresignedQuery(_)));
    }

    #[test]
    fn presigned_host_must_be_signed() {
        let headers = vec![h("host", "localhost:9000")];
        let query = presigned_query("/b/k", "", 60, "s3", T0)
            .replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=x-foo");
        let err = verify(&parts("GET", "/b/k", &query, &headers), "", T0, secrets).unwrap_err();
        assert_eq!(err, VerifyError::UnsignedHeader("host"));
    }

    #[test]
    fn both_mechanisms_at_once_are_rejected() {
        let headers = signed_request("GET", "/b/k", "", b"", "s3", T0);
        let query = presigned_query("/b/k", "", 60, "s3", T0);
        let err = verify(
            &parts("GET", "/b/k", &query, &headers),
            &sha256_hex(b""),
            T0,
            secrets,
        )
        .unwrap_err();
        assert_eq!(err, VerifyError::AmbiguousAuthentication);
    }

    #[test]
    fn lambda_arn_path_is_double_encoded_end_to_end() {
        // A signer that encoded the path only once must not verify for a non-S3 service.
        let body = sha256_hex(b"{}");
        let headers = vec![h("host", "h"), h("x-amz-date", "20240517T093015Z")];
        let signed = ["host", "x-amz-date"];
        let mut double = headers.clone();
        double.push(hand_authorization(
            "POST",
            &ARN_PATH.replace('%', "%25"),
            &headers,
            &signed,
            &body,
            "lambda",
        ));
        verify(&parts("POST", ARN_PATH, "", &double), &body, T0, secrets)
            .expect("double encoding verifies");
        let mut single = headers.clone();
        single.push(hand_authorization(
            "POST", ARN_PATH, &headers, &signed, &body, "lambda",
        ));
        let err = verify(&parts("POST", ARN_PATH, "", &single), &body, T0, secrets).unwrap_err();
        assert!(matches!(err, VerifyError::SignatureMismatch { .. }));
    }

    #[test]
    fn every_error_has_codes_and_a_message() {
        let now = T0;
        let all = [
            VerifyError::MissingAuthentication,
            VerifyError::AmbiguousAuthentication,
            VerifyError::MalformedAuthorization("x".into()),
            VerifyError::MalformedPresignedQuery("x".into()),
            VerifyError::MalformedCredential("x".into()),
            VerifyError::MissingDate,
            VerifyError::MalformedDate("x".into()),
            VerifyError::UnsignedHeader("host"),
            VerifyError::ScopeDateMismatch {
                scope: "a".into(),
                request: "b".into(),
            },
            VerifyError::SignatureExpired { request: now, now },
            VerifyError::SignatureNotYetCurrent { request: now, now },
            VerifyError::InvalidExpires("0".into()),
            VerifyError::PresignExpired {
                expired_at: now,
                now,
            },
            VerifyError::UnknownAccessKey("k".into()),
            VerifyError::UnsupportedPayloadHash("x".into()),
            VerifyError::UnsignedPayload("UNSIGNED-PAYLOAD".into()),
            VerifyError::SignatureMismatch {
                canonical_request: String::new(),
                string_to_sign: String::new(),
            },
            VerifyError::BodyHashMismatch {
                declared: "a".into(),
                actual: "b".into(),
            },
        ];
        for e in all {
            assert!(!e.aws_error_code().is_empty());
            assert!(!e.s3_error_code().is_empty());
            assert!(matches!(e.http_status(), 400 | 403));
            assert!(matches!(e.s3_http_status(), 400 | 403));
            assert!(!e.aws_message().is_empty());
            let display = e.to_string();
            assert!(!display.ends_with('.'), "{display}");
            assert!(
                display.starts_with(|c: char| !c.is_ascii_uppercase()),
                "{display}"
            );
        }
    }
}
