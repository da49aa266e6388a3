//! The front door's side of the object store: which requests are S3's, their authentication
//! in S3's words, and the hand-over to `updraft_objects` (which owns S3's wire shapes). S3
//! bodies are not read here: they stream to disk in the object store, and a signature that
//! covers the body is completed there with the hash computed on the way.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::response::Response;
use updraft_objects::{S3Error, S3Request, S3Service};
use updraft_sigv4::{BodyCheck, VerifyError};

use crate::auth::{HeadFailure, header_pairs, verify_head_for};
use crate::{AppState, is_api_date};

/// Whether a request is the object store's: not on a path or in a shape another service owns
/// (Lambda's API dates, Updraft's own routes, `X-Amz-Target`), and addressed to a
/// bucket by host, signed for `s3`, or anonymous on a bucket path (but for a form post).
pub fn claims(parts: &Parts, raw_path: &str, raw_query: &str) -> bool {
    let first = raw_path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    let others = is_api_date(first)
        || matches!(
            first,
            "updraft" | "health" | "metrics" | "ui" | "lambda-url"
        )
        || parts.headers.contains_key("x-amz-target");
    if others {
        return false;
    }
    let host = parts.headers.get("host").and_then(|h| h.to_str().ok());
    if host.and_then(updraft_objects::wire::host_bucket).is_some() {
        return true;
    }
    let scoped = |v: &str| v.contains("/s3/aws4_request");
    if let Some(a) = parts
        .headers
        .get("authorization")
        .and_then(|a| a.to_str().ok())
    {
        return scoped(a);
    }
    let q = raw_query.replace("%2F", "/").replace("%2f", "/");
    if q.contains("X-Amz-Credential=") {
        return scoped(&q);
    }
    // Anonymous: presigned links and public reads of other services always carry a credential;
    // an anonymous form post is the query protocol's (SQS), answered in its words.
    let form_post = parts.method == axum::http::Method::POST
        && parts
            .headers
            .get("content-type")
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    !first.is_empty() && !form_post
}

/// An authentication failure in S3's words.
fn verify_error(e: &VerifyError) -> S3Error {
    tracing::debug!(error = %e, "s3 request authentication failed");
    S3Error::new(e.s3_error_code(), e.s3_http_status(), e.aws_message())
}

fn head_failure(f: HeadFailure, region: &str) -> S3Error {
    match f {
        HeadFailure::Verify(e) => verify_error(&e),
        HeadFailure::Refused(e) if e.code == "UnrecognizedClientException" => S3Error::new(
            "InvalidAccessKeyId",
            403,
            "The AWS Access Key Id you provided does not exist in our records.",
        ),
        HeadFailure::Refused(e) => S3Error::new(
            "AuthorizationHeaderMalformed",
            400,
            format!(
                "The authorization header is malformed; {} Expecting '{region}'.",
                e.message
            ),
        ),
    }
}

/// Serves an S3 request.
pub async fn serve(
    state: &Arc<AppState>,
    parts: Parts,
    body: Body,
    request_id: &str,
    raw_path: &str,
    raw_query: &str,
) -> Response {
    let head = parts.method == axum::http::Method::HEAD;
    let has_body = crate::body::announces_body(&parts.headers);
    let fail = |e: S3Error| {
        let r = updraft_objects::wire::error_response(&e, raw_path, request_id, head);
        crate::unread(has_body, r.map(Body::new))
    };
    let Some(svc) = state.objects.get() else {
        return fail(S3Error::new(
            "ServiceUnavailable",
            503,
            "The object store is not running on this node.",
        ));
    };
    let pairs = header_pairs(&parts.headers);
    let pending = match verify_head_for(
        &state.keys,
        &state.region,
        parts.method.as_str(),
        raw_path,
        raw_query,
        &pairs,
    ) {
        Ok(p) => p,
        Err(HeadFailure::Verify(VerifyError::MissingAuthentication)) => {
            return fail(S3Error::access_denied());
        }
        Err(f) => return fail(head_failure(f, &state.region)),
    };
    if pending.service() != "s3" {
        return fail(S3Error::new(
            "AuthorizationHeaderMalformed",
            400,
            format!(
                "The authorization header is malformed; incorrect service \"{}\". This endpoint belongs to \"s3\".",
                pending.service()
            ),
        ));
    }
    let account = pending.account_id().to_string();
    let chunk_verify = pending.chunk_chain().map(|mut chain| {
        Box::new(move |sha: &str, sig: &str| chain.next(sha, sig))
            as updraft_objects::chunked::ChunkVerify
    });
    let verify: Option<updraft_objects::wire::VerifyBody> = match pending.body_check() {
        // The signature is checked and covers no body: nothing is left to do.
        BodyCheck::Unsigned(_) => match pending.finish_raw(updraft_objects::EMPTY_SHA256) {
            Ok(_) => None,
            Err(e) => return fail(verify_error(&e)),
        },
        _ => Some(Box::new(move |sha: &str| {
            pending
                .finish_raw(sha)
                .map(|_| ())
                .map_err(|e| verify_error(&e))
        })),
    };
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".to_string());
    let req = S3Request {
        method: parts.method,
        raw_path: raw_path.to_string(),
        raw_query: raw_query.to_string(),
        headers: parts.headers,
        body,
        request_id: request_id.to_string(),
        account,
        has_body,
        verify,
        chunk_verify,
        source_ip,
    };
    serve_with(svc, req).await
}

async fn serve_with(svc: &Arc<S3Service>, req: S3Request<Body>) -> Response {
    svc.handle(req).await.map(Body::new)
}
