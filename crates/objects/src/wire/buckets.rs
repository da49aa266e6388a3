//! Bucket operations: create, head, delete, location, versioning, policy, notification
//! configuration, listings (ListObjects, ListObjectsV2, ListObjectVersions) and DeleteObjects.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http::{Method, StatusCode};

use super::{
    Ctx, Incoming, S3Body, S3Service, iso8601, owner_xml, set_header, status_only, url_encode,
    xml_response,
};
use crate::error::S3Error;
use crate::xml::{Doc, esc, parse};

type Resp = Result<http::Response<S3Body>, S3Error>;

pub(super) async fn list_buckets(svc: &Arc<S3Service>, ctx: &Ctx) -> Resp {
    let account = ctx.account.clone();
    let buckets = svc.blocking(move |s| s.list_buckets(&account)).await?;
    let mut d = Doc::new("ListAllMyBucketsResult");
    d.0.push_str(&owner_xml(&ctx.account));
    d.open("Buckets");
    for b in &buckets {
        d.open("Bucket")
            .el("Name", &b.name)
            .el("CreationDate", &iso8601(b.created_ms))
            .el("BucketRegion", &b.region)
            .close("Bucket");
    }
    d.close("Buckets");
    Ok(xml_response(d.end("ListAllMyBucketsResult")))
}

pub(super) async fn route<B>(svc: &Arc<S3Service>, ctx: &Ctx, body: Incoming<B>) -> Resp
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let m = ctx.method.clone();
    if m == Method::PUT {
        let doc = body.small(&ctx.headers).await?;
        if ctx.has("versioning") {
            return put_versioning(svc, ctx, &doc).await;
        }
        if ctx.has("policy") {
            return put_policy(svc, ctx, &doc).await;
        }
        if ctx.has("notification") {
            return crate::notify::wire::put_configuration(svc, ctx, &doc).await;
        }
        if ctx.has("tagging") || ctx.has("cors") || ctx.has("acl") || ctx.has("lifecycle") {
            return Err(not_implemented());
        }
        return create_bucket(svc, ctx, &doc).await;
    }
    if m == Method::POST {
        let doc = body.small(&ctx.headers).await?;
        if ctx.has("delete") {
            return delete_objects(svc, ctx, &doc).await;
        }
        return Err(not_implemented());
    }
    body.empty().await?;
    if m == Method::HEAD {
        let b = svc.authorize(ctx, "s3:ListBucket", None).await?;
        let mut r = status_only(StatusCode::OK);
        set_header(&mut r, "x-amz-bucket-region", &b.region);
        return Ok(r);
    }
    if m == Method::DELETE {
        if ctx.has("policy") {
            let b = owned(svc, ctx).await?;
            svc.blocking(move |s| s.set_policy(&b.name, None)).await?;
            return Ok(status_only(StatusCode::NO_CONTENT));
        }
        if ctx.has("tagging") || ctx.has("cors") || ctx.has("lifecycle") {
            return Err(not_implemented());
        }
        let b = owned(svc, ctx).await?;
        svc.blocking(move |s| s.delete_bucket(&b.name)).await?;
        return Ok(status_only(StatusCode::NO_CONTENT));
    }
    if m != Method::GET {
        return Err(method_not_allowed());
    }
    if ctx.has("location") {
        let b = owned(svc, ctx).await?;
        let region = if b.region == "us-east-1" {
            ""
        } else {
            &b.region
        };
        let doc = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{}</LocationConstraint>",
            esc(region)
        );
        return Ok(xml_response(doc));
    }
    if ctx.has("versioning") {
        let b = owned(svc, ctx).await?;
        let mut d = Doc::new("VersioningConfiguration");
        if !b.versioning.is_empty() {
            d.el("Status", &b.versioning);
        }
        return Ok(xml_response(d.end("VersioningConfiguration")));
    }
    if ctx.has("policy") {
        let b = owned(svc, ctx).await?;
        let p = b.policy.ok_or_else(|| {
            S3Error::new(
                "NoSuchBucketPolicy",
                404,
                "The bucket policy does not exist",
            )
            .with("BucketName", &b.name)
        })?;
        let mut r = http::Response::new(super::body::full(p));
        set_header(&mut r, "content-type", "application/json");
        return Ok(r);
    }
    if ctx.has("notification") {
        return crate::notify::wire::get_configuration(svc, ctx).await;
    }
    if ctx.has("versions") {
        return list_versions(svc, ctx).await;
    }
    if ctx.has("uploads") {
        return super::multipart::list_uploads(svc, ctx).await;
    }
    if ctx.has("tagging")
        || ctx.has("cors")
        || ctx.has("acl")
        || ctx.has("lifecycle")
        || ctx.has("website")
        || ctx.has("encryption")
        || ctx.has("ownershipControls")
        || ctx.has("publicAccessBlock")
    {
        return Err(not_implemented());
    }
    list_objects(svc, ctx).await
}

pub(super) fn not_implemented() -> S3Error {
    S3Error::new(
        "NotImplemented",
        501,
        "A header or query you provided implies functionality that is not implemented.",
    )
}

pub(super) fn method_not_allowed() -> S3Error {
    S3Error::new(
        "MethodNotAllowed",
        405,
        "The specified method is not allowed against this resource.",
    )
}

/// The bucket, when the caller owns it (configuration is the owner's alone).
pub(super) async fn owned(
    svc: &Arc<S3Service>,
    ctx: &Ctx,
) -> Result<crate::store::Bucket, S3Error> {
    let name = ctx.bucket().to_string();
    let b = svc.blocking(move |s| s.bucket(&name)).await?;
    if b.account != ctx.account {
        return Err(S3Error::access_denied());
    }
    Ok(b)
}

async fn create_bucket(svc: &Arc<S3Service>, ctx: &Ctx, doc: &[u8]) -> Resp {
    if !doc.iter().all(u8::is_ascii_whitespace) {
        let root = parse(doc)?;
        if let Some(c) = root.text_of("LocationConstraint")
            && !c.is_empty()
            && c != svc.region
        {
            return Err(S3Error::new(
                "IllegalLocationConstraintException",
                400,
                format!(
                    "The {c} location constraint is incompatible for the region specific endpoint this request was sent to."
                ),
            ));
        }
        if root.text_of("LocationConstraint") == Some("us-east-1") {
            return Err(S3Error::new(
                "InvalidLocationConstraint",
                400,
                "The specified location-constraint is not valid",
            )
            .with("LocationConstraint", "us-east-1"));
        }
    }
    let (account, name, region) = (
        ctx.account.clone(),
        ctx.bucket().to_string(),
        svc.region.clone(),
    );
    svc.blocking(move |s| s.create_bucket(&account, &name, &region))
        .await?;
    let mut r = status_only(StatusCode::OK);
    set_header(&mut r, "location", &format!("/{}", ctx.bucket()));
    Ok(r)
}

async fn put_versioning(svc: &Arc<S3Service>, ctx: &Ctx, doc: &[u8]) -> Resp {
    let b = owned(svc, ctx).await?;
    let root = parse(doc)?;
    if root.name != "VersioningConfiguration" {
        return Err(S3Error::malformed_xml());
    }
    let status = match root.text_of("Status") {
        Some(s @ ("Enabled" | "Suspended")) => s.to_string(),
        None if b.versioning.is_empty() => return Ok(status_only(StatusCode::OK)),
        None => b.versioning.clone(),
        Some(_) => return Err(S3Error::malformed_xml()),
    };
    svc.blocking(move |s| s.set_versioning(&b.name, &status))
        .await?;
    Ok(status_only(StatusCode::OK))
}

async fn put_policy(svc: &Arc<S3Service>, ctx: &Ctx, doc: &[u8]) -> Resp {
    let b = owned(svc, ctx).await?;
    let text = std::str::from_utf8(doc)
        .map_err(|_| S3Error::new("MalformedPolicy", 400, "Policies must be valid JSON"))?
        .to_string();
    crate::policy::validate(&text)?;
    svc.blocking(move |s| s.set_policy(&b.name, Some(&text)))
        .await?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

fn max_keys(ctx: &Ctx, name: &str) -> Result<usize, S3Error> {
    match ctx.param(name) {
        None => Ok(1000),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n.min(1000) as usize)
            .ok_or_else(|| {
                S3Error::invalid_argument(
                    "Provided max-keys not an integer or within integer range",
                )
                .with("ArgumentName", name)
                .with("ArgumentValue", v)
            }),
    }
}

async fn list_objects(svc: &Arc<S3Service>, ctx: &Ctx) -> Resp {
    let b = svc.authorize(ctx, "s3:ListBucket", None).await?;
    let v2 = ctx.param("list-type") == Some("2");
    let url = match ctx.param("encoding-type") {
        None => false,
        Some("url") => true,
        Some(_) => {
            return Err(
                S3Error::invalid_argument("Invalid Encoding Method specified in Request")
                    .with("ArgumentName", "encoding-type"),
            );
        }
    };
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let prefix = ctx.param("prefix").unwrap_or("").to_string();
    let delimiter = ctx
        .param("delimiter")
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    let max = max_keys(ctx, "max-keys")?;
    let token = ctx.param("continuation-token");
    let after = if v2 {
        match token {
            Some(t) => Some(
                B64.decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        S3Error::invalid_argument("The continuation token provided is incorrect")
                            .with("ArgumentName", "continuation-token")
                    })?,
            ),
            None => ctx.param("start-after").map(str::to_string),
        }
    } else {
        ctx.param("marker").map(str::to_string)
    };
    let listing = {
        let (name, prefix, delimiter, after) = (
            b.name.clone(),
            prefix.clone(),
            delimiter.clone(),
            after.clone(),
        );
        svc.blocking(move |s| s.list(&name, &prefix, delimiter.as_deref(), after.as_deref(), max))
            .await?
    };
    let fetch_owner = !v2 || ctx.param("fetch-owner") == Some("true");
    let mut d = Doc::new("ListBucketResult");
    d.el("Name", &b.name).el("Prefix", &enc(&prefix));
    if v2 {
        if let Some(t) = token {
            d.el("ContinuationToken", t);
        }
        if let Some(s) = ctx.param("start-after") {
            d.el("StartAfter", &enc(s));
        }
        d.el(
            "KeyCount",
            &(listing.objects.len() + listing.prefixes.len()).to_string(),
        );
    } else {
        d.el("Marker", &enc(ctx.param("marker").unwrap_or("")));
    }
    d.el("MaxKeys", &max.to_string());
    if let Some(dl) = &delimiter {
        d.el("Delimiter", &enc(dl));
    }
    if url {
        d.el("EncodingType", "url");
    }
    d.el(
        "IsTruncated",
        if listing.truncated { "true" } else { "false" },
    );
    if listing.truncated
        && let Some(last) = &listing.last
    {
        if v2 {
            d.el("NextContinuationToken", &B64.encode(last.as_bytes()));
        } else if delimiter.is_some() {
            d.el("NextMarker", &enc(last));
        }
    }
    for o in &listing.objects {
        d.open("Contents")
            .el("Key", &enc(&o.key))
            .el("LastModified", &iso8601(o.modified_ms))
            .el("ETag", &format!("\"{}\"", o.etag));
        if let Some((alg, _)) = &o.meta.checksum {
            d.el("ChecksumAlgorithm", alg);
            d.el("ChecksumType", "FULL_OBJECT");
        }
        d.el("Size", &o.size.to_string())
            .el("StorageClass", "STANDARD");
        if fetch_owner {
            d.0.push_str(&owner_xml(&b.account));
        }
        d.close("Contents");
    }
    for p in &listing.prefixes {
        d.open("CommonPrefixes")
            .el("Prefix", &enc(p))
            .close("CommonPrefixes");
    }
    Ok(xml_response(d.end("ListBucketResult")))
}

async fn list_versions(svc: &Arc<S3Service>, ctx: &Ctx) -> Resp {
    let b = svc.authorize(ctx, "s3:ListBucketVersions", None).await?;
    let url = ctx.param("encoding-type") == Some("url");
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let prefix = ctx.param("prefix").unwrap_or("").to_string();
    let max = max_keys(ctx, "max-keys")?;
    let key_marker = ctx.param("key-marker").map(str::to_string);
    let version_marker = ctx.param("version-id-marker").map(str::to_string);
    // Versions of the marker key after the version marker come first, then later keys.
    let start = match (&key_marker, &version_marker) {
        (Some(k), Some(_)) => {
            // `key > start` must include the marker key itself.
            let mut s = k.clone();
            s.pop();
            Some(s)
        }
        (Some(k), None) => Some(k.clone()),
        _ => None,
    };
    let rows = {
        let (name, prefix, start) = (b.name.clone(), prefix.clone(), start.clone());
        svc.blocking(move |s| s.list_versions(&name, &prefix, start.as_deref(), max + 10_000))
            .await?
            .0
    };
    let mut rows = rows.into_iter().peekable();
    if let (Some(k), Some(v)) = (&key_marker, &version_marker) {
        // Skip up to and including the marker version; and keys before the marker.
        let mut seen = false;
        while let Some(r) = rows.peek() {
            if r.key < *k {
                rows.next();
                continue;
            }
            if r.key == *k && !seen {
                seen = r.version_id == *v;
                rows.next();
                continue;
            }
            break;
        }
    }
    let page: Vec<_> = rows.by_ref().take(max).collect();
    let truncated = rows.peek().is_some();
    let mut d = Doc::new("ListVersionsResult");
    d.el("Name", &b.name)
        .el("Prefix", &enc(&prefix))
        .el("KeyMarker", &enc(key_marker.as_deref().unwrap_or("")))
        .el("VersionIdMarker", version_marker.as_deref().unwrap_or(""))
        .el("MaxKeys", &max.to_string())
        .el("IsTruncated", if truncated { "true" } else { "false" });
    if url {
        d.el("EncodingType", "url");
    }
    if truncated && let Some(last) = page.last() {
        d.el("NextKeyMarker", &enc(&last.key))
            .el("NextVersionIdMarker", &last.version_id);
    }
    for o in &page {
        let tag = if o.delete_marker {
            "DeleteMarker"
        } else {
            "Version"
        };
        d.open(tag)
            .el("Key", &enc(&o.key))
            .el("VersionId", &o.version_id)
            .el("IsLatest", if o.latest { "true" } else { "false" })
            .el("LastModified", &iso8601(o.modified_ms));
        if !o.delete_marker {
            d.el("ETag", &format!("\"{}\"", o.etag))
                .el("Size", &o.size.to_string())
                .el("StorageClass", "STANDARD");
        }
        d.0.push_str(&owner_xml(&b.account));
        d.close(tag);
    }
    Ok(xml_response(d.end("ListVersionsResult")))
}

async fn delete_objects(svc: &Arc<S3Service>, ctx: &Ctx, doc: &[u8]) -> Resp {
    let root = parse(doc)?;
    if root.name != "Delete" {
        return Err(S3Error::malformed_xml());
    }
    let quiet = root.text_of("Quiet") == Some("true");
    let items: Vec<(String, Option<String>)> = root
        .all("Object")
        .map(|o| {
            (
                o.text_of("Key").unwrap_or("").to_string(),
                o.text_of("VersionId").map(str::to_string),
            )
        })
        .collect();
    if items.is_empty() || items.len() > 1000 {
        return Err(S3Error::malformed_xml());
    }
    let mut d = Doc::new("DeleteResult");
    for (key, version) in items {
        let r = super::objects::delete_one(svc, ctx, &key, version.as_deref()).await;
        match r {
            Ok(out) => {
                if quiet {
                    continue;
                }
                d.open("Deleted").el("Key", &key);
                if let Some(v) = &version {
                    d.el("VersionId", v);
                }
                if out.delete_marker {
                    d.el("DeleteMarker", "true");
                    if let Some(v) = &out.version_id {
                        d.el("DeleteMarkerVersionId", v);
                    }
                }
                d.close("Deleted");
            }
            Err(e) => {
                d.open("Error").el("Key", &key);
                if let Some(v) = &version {
                    d.el("VersionId", v);
                }
                d.el("Code", e.code)
                    .el("Message", &e.message)
                    .close("Error");
            }
        }
    }
    Ok(xml_response(d.end("DeleteResult")))
}
