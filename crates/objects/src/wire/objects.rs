//! Object operations: PutObject, GetObject and HeadObject (ranges, conditions, `response-*`
//! overrides), DeleteObject, CopyObject (metadata and tagging directives) and object tagging.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use super::body::{FileBody, INLINE_READ, full, read_range};
use super::buckets::{method_not_allowed, not_implemented};
use super::ingest::{MAX_PUT_BYTES, receive};
use super::{
    Ctx, Incoming, S3Body, S3Service, http_date, iso8601, parse_http_date, set_header, status_only,
    xml_response,
};
use crate::checksum::Algorithm;
use crate::error::S3Error;
use crate::notify::EventKind;
use crate::store::{DeleteOutcome, ObjectMeta, ObjectRecord, WriteCondition, etag_matches};
use crate::xml::{Doc, parse};

type Resp = Result<http::Response<S3Body>, S3Error>;

/// S3's limit on user metadata (names and values).
const MAX_USER_METADATA: usize = 2048;

pub(super) async fn route<B>(svc: &Arc<S3Service>, ctx: &Ctx, body: Incoming<B>) -> Resp
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let m = ctx.method.clone();
    if ctx.has("tagging") {
        return tagging(svc, ctx, body).await;
    }
    if ctx.has("acl") || ctx.has("retention") || ctx.has("legal-hold") || ctx.has("torrent") {
        return Err(not_implemented());
    }
    if m == Method::PUT {
        if ctx.headers.contains_key("x-amz-copy-source") {
            body.empty().await?;
            return copy_object(svc, ctx).await;
        }
        return put_object(svc, ctx, body).await;
    }
    body.empty().await?;
    if m == Method::GET || m == Method::HEAD {
        return get_object(svc, ctx, m == Method::HEAD).await;
    }
    if m == Method::DELETE {
        let out = delete_one(svc, ctx, ctx.key(), ctx.param("versionId")).await?;
        let mut r = status_only(StatusCode::NO_CONTENT);
        if out.delete_marker {
            set_header(&mut r, "x-amz-delete-marker", "true");
        }
        if let Some(v) = &out.version_id {
            set_header(&mut r, "x-amz-version-id", v);
        }
        return Ok(r);
    }
    Err(method_not_allowed())
}

/// Content headers and user metadata of a write.
pub(super) fn meta_from_headers(h: &HeaderMap) -> Result<ObjectMeta, S3Error> {
    let get = |n: &str| {
        h.get(n)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let mut user = Vec::new();
    let mut size = 0;
    for (k, v) in h {
        if let Some(name) = k.as_str().strip_prefix("x-amz-meta-") {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            size += name.len() + v.len();
            user.push((name.to_string(), v));
        }
    }
    if size > MAX_USER_METADATA {
        return Err(S3Error::new(
            "MetadataTooLarge",
            400,
            "Your metadata headers exceed the maximum allowed metadata size",
        )
        .with("Size", size.to_string())
        .with("MaxSizeAllowed", MAX_USER_METADATA.to_string()));
    }
    user.sort();
    // aws-chunked is how the body travelled, not how it is stored.
    let encoding = get("content-encoding").and_then(|e| {
        let kept: Vec<&str> = e
            .split(',')
            .map(str::trim)
            .filter(|p| !p.eq_ignore_ascii_case("aws-chunked") && !p.is_empty())
            .collect();
        (!kept.is_empty()).then(|| kept.join(","))
    });
    Ok(ObjectMeta {
        content_type: get("content-type"),
        content_encoding: encoding,
        content_disposition: get("content-disposition"),
        content_language: get("content-language"),
        cache_control: get("cache-control"),
        expires: get("expires"),
        user,
        checksum: None,
        parts: None,
    })
}

/// `x-amz-tagging: k1=v1&k2=v2`.
fn tags_from_header(h: &HeaderMap) -> Result<Vec<(String, String)>, S3Error> {
    let Some(v) = h.get("x-amz-tagging").and_then(|v| v.to_str().ok()) else {
        return Ok(Vec::new());
    };
    let tags = super::parse_query(v);
    check_tags(&tags)?;
    Ok(tags)
}

fn check_tags(tags: &[(String, String)]) -> Result<(), S3Error> {
    if tags.len() > 10 {
        return Err(S3Error::new(
            "BadRequest",
            400,
            "Object tags cannot be greater than 10",
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(S3Error::new(
                "InvalidTag",
                400,
                "The TagKey you have provided is invalid",
            ));
        }
    }
    Ok(())
}

fn write_condition(ctx: &Ctx) -> Result<WriteCondition, S3Error> {
    let mut c = WriteCondition::default();
    if let Some(v) = ctx.header("if-none-match") {
        if v.trim() != "*" {
            return Err(not_implemented());
        }
        c.if_none_match_any = true;
    }
    c.if_match = ctx.header("if-match").map(str::to_string);
    Ok(c)
}

async fn put_object<B>(svc: &Arc<S3Service>, ctx: &Ctx, body: Incoming<B>) -> Resp
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let key = ctx.key().to_string();
    let bucket = svc.authorize(ctx, "s3:PutObject", Some(&key)).await?;
    let mut meta = meta_from_headers(&ctx.headers)?;
    let tags = tags_from_header(&ctx.headers)?;
    let cond = write_condition(ctx)?;
    let received = receive(&svc.store.blobs, &ctx.headers, body, MAX_PUT_BYTES).await?;
    let rec = {
        let (bucket, key) = (bucket.clone(), key.clone());
        svc.blocking(move |s| {
            let (mut staged, claimed) = received.finish()?;
            meta.checksum = claimed.map(|(a, v)| (a.name().to_string(), v));
            s.put_object(&bucket, &key, &mut staged, meta, tags, &cond)
        })
        .await?
    };
    svc.emit(ctx, &bucket, &rec, EventKind::Put).await;
    let mut r = status_only(StatusCode::OK);
    set_header(&mut r, "etag", &format!("\"{}\"", rec.etag));
    if rec.version_id != "null" {
        set_header(&mut r, "x-amz-version-id", &rec.version_id);
    }
    if let Some((alg, v)) = &rec.meta.checksum
        && let Some(a) = Algorithm::from_name(alg)
    {
        set_header(&mut r, a.header(), v);
        set_header(&mut r, "x-amz-checksum-type", "FULL_OBJECT");
    }
    Ok(r)
}

/// A parsed `Range: bytes=…` against an object of `size` bytes: `(start, end inclusive)`.
fn parse_range(v: &str, size: u64) -> Result<Option<(u64, u64)>, S3Error> {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Several ranges: S3 answers the whole object.
        return Ok(None);
    }
    let unsatisfiable = || {
        S3Error::new(
            "InvalidRange",
            416,
            "The requested range is not satisfiable",
        )
        .with("RangeRequested", v.trim())
        .with("ActualObjectSize", size.to_string())
    };
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = match b.parse() {
            Ok(n) => n,
            Err(_) => return Ok(None),
        };
        if n == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        let n = n.min(size);
        return Ok(Some((size - n, size - 1)));
    }
    let Ok(start) = a.parse::<u64>() else {
        return Ok(None);
    };
    let end = if b.is_empty() {
        size.saturating_sub(1)
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e.min(size.saturating_sub(1)),
            _ => return Ok(None),
        }
    };
    if start >= size {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end)))
}

/// How a read ends: its answer is the object, or `304`/`412`.
fn check_read_conditions(ctx: &Ctx, rec: &ObjectRecord) -> Result<Option<StatusCode>, S3Error> {
    let modified_s = rec.modified_ms / 1000;
    let if_match = ctx.header("if-match");
    if let Some(m) = if_match
        && !etag_matches(m, &rec.etag)
    {
        return Err(S3Error::precondition_failed("If-Match"));
    }
    if if_match.is_none()
        && let Some(t) = ctx.header("if-unmodified-since").and_then(parse_http_date)
        && modified_s > t / 1000
    {
        return Err(S3Error::precondition_failed("If-Unmodified-Since"));
    }
    let if_none = ctx.header("if-none-match");
    if let Some(m) = if_none
        && etag_matches(m, &rec.etag)
    {
        return Ok(Some(StatusCode::NOT_MODIFIED));
    }
    if if_none.is_none()
        && let Some(t) = ctx.header("if-modified-since").and_then(parse_http_date)
        && modified_s <= t / 1000
    {
        return Ok(Some(StatusCode::NOT_MODIFIED));
    }
    Ok(None)
}

/// The current version (or the one asked for), with S3's answers for missing keys and
/// delete markers.
pub(super) fn live_version(
    rec: Option<ObjectRecord>,
    key: &str,
    version: Option<&str>,
) -> Result<ObjectRecord, S3Error> {
    let Some(rec) = rec else {
        return Err(match version {
            Some(v) => S3Error::no_such_version(key, v),
            None => S3Error::no_such_key(key),
        });
    };
    if rec.delete_marker {
        let e = if version.is_some() {
            method_not_allowed().with_header("last-modified", http_date(rec.modified_ms))
        } else {
            S3Error::no_such_key(key)
        };
        return Err(e
            .with_header("x-amz-delete-marker", "true")
            .with_header("x-amz-version-id", rec.version_id.clone()));
    }
    Ok(rec)
}

/// Headers every answer about an object carries.
fn object_headers(r: &mut http::Response<S3Body>, rec: &ObjectRecord, ctx: &Ctx) {
    set_header(r, "etag", &format!("\"{}\"", rec.etag));
    set_header(r, "last-modified", &http_date(rec.modified_ms));
    if rec.version_id != "null" {
        set_header(r, "x-amz-version-id", &rec.version_id);
    }
    let m = &rec.meta;
    let over = |p: &str| ctx.param(p).map(str::to_string);
    let pairs: [(&'static str, Option<String>); 6] = [
        (
            "content-type",
            over("response-content-type")
                .or_else(|| m.content_type.clone())
                .or(Some("binary/octet-stream".into())),
        ),
        (
            "content-encoding",
            over("response-content-encoding").or_else(|| m.content_encoding.clone()),
        ),
        (
            "content-disposition",
            over("response-content-disposition").or_else(|| m.content_disposition.clone()),
        ),
        (
            "content-language",
            over("response-content-language").or_else(|| m.content_language.clone()),
        ),
        (
            "cache-control",
            over("response-cache-control").or_else(|| m.cache_control.clone()),
        ),
        (
            "expires",
            over("response-expires").or_else(|| m.expires.clone()),
        ),
    ];
    for (k, v) in pairs {
        if let Some(v) = v {
            set_header(r, k, &v);
        }
    }
    for (k, v) in &m.user {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(format!("x-amz-meta-{k}").as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            r.headers_mut().insert(name, value);
        }
    }
    if !rec.tags.is_empty() {
        set_header(r, "x-amz-tagging-count", &rec.tags.len().to_string());
    }
    if let Some(n) = m.parts {
        set_header(r, "x-amz-mp-parts-count", &n.to_string());
    }
    set_header(r, "accept-ranges", "bytes");
}

enum Payload {
    None,
    Inline(Vec<u8>),
    File(std::fs::File),
}

async fn get_object(svc: &Arc<S3Service>, ctx: &Ctx, head: bool) -> Resp {
    let key = ctx.key().to_string();
    let bucket = svc.authorize(ctx, "s3:GetObject", Some(&key)).await?;
    let version = ctx.param("versionId").map(str::to_string);
    let range_header = ctx.header("range").map(str::to_string);
    let (rec, range, payload) = {
        let (name, key, version, headers) = (
            bucket.name.clone(),
            key.clone(),
            version.clone(),
            ctx.headers.clone(),
        );
        let early = Ctx {
            method: ctx.method.clone(),
            bucket: None,
            key: None,
            query: Vec::new(),
            headers,
            request_id: String::new(),
            account: String::new(),
            source_ip: String::new(),
        };
        svc.blocking(move |s| {
            let rec = live_version(
                s.object(&name, &key, version.as_deref())?,
                &key,
                version.as_deref(),
            )?;
            if let Some(status) = check_read_conditions(&early, &rec)? {
                return Ok((rec, Err(status), Payload::None));
            }
            let range = match &range_header {
                Some(h) => parse_range(h, rec.size)?,
                None => None,
            };
            let (start, len) = match range {
                Some((a, b)) => (a, b - a + 1),
                None => (0, rec.size),
            };
            let payload = match (&rec.sha256, head) {
                (_, true) | (None, _) => Payload::None,
                (Some(sha), false) if len <= INLINE_READ => {
                    Payload::Inline(read_range(&s.blobs.path(sha), start, len)?)
                }
                (Some(sha), false) => {
                    use std::io::{Seek, SeekFrom};
                    let mut f = std::fs::File::open(s.blobs.path(sha))?;
                    f.seek(SeekFrom::Start(start))?;
                    Payload::File(f)
                }
            };
            Ok((rec, Ok(range), payload))
        })
        .await?
    };
    let range = match range {
        Ok(r) => r,
        Err(status) => {
            let mut r = status_only(status);
            set_header(&mut r, "etag", &format!("\"{}\"", rec.etag));
            set_header(&mut r, "last-modified", &http_date(rec.modified_ms));
            return Ok(r);
        }
    };
    let len = match range {
        Some((a, b)) => b - a + 1,
        None => rec.size,
    };
    let body = match payload {
        Payload::None => super::body::empty(),
        Payload::Inline(v) => full(v),
        Payload::File(f) => FileBody::spawn(f, len),
    };
    let mut r = http::Response::new(body);
    object_headers(&mut r, &rec, ctx);
    set_header(&mut r, "content-length", &len.to_string());
    if let Some((a, b)) = range {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        set_header(
            &mut r,
            "content-range",
            &format!("bytes {a}-{b}/{}", rec.size),
        );
    } else if ctx.header("x-amz-checksum-mode") == Some("ENABLED")
        && let Some((alg, v)) = &rec.meta.checksum
        && let Some(a) = Algorithm::from_name(alg)
    {
        set_header(&mut r, a.header(), v);
        set_header(&mut r, "x-amz-checksum-type", "FULL_OBJECT");
    }
    Ok(r)
}

/// Deletes one key or version (DeleteObject, and each entry of DeleteObjects).
pub(super) async fn delete_one(
    svc: &Arc<S3Service>,
    ctx: &Ctx,
    key: &str,
    version: Option<&str>,
) -> Result<DeleteOutcome, S3Error> {
    let bucket = svc
        .authorize(
            ctx,
            if version.is_some() {
                "s3:DeleteObjectVersion"
            } else {
                "s3:DeleteObject"
            },
            Some(key),
        )
        .await?;
    let (b, k, v) = (bucket.clone(), key.to_string(), version.map(str::to_string));
    let out = svc
        .blocking(move |s| s.delete_object(&b, &k, v.as_deref()))
        .await?;
    if out.removed {
        let kind = if out.delete_marker && version.is_none() {
            EventKind::DeleteMarkerCreated
        } else {
            EventKind::Delete
        };
        let rec = ObjectRecord {
            bucket: bucket.name.clone(),
            key: key.to_string(),
            version_id: out.version_id.clone().unwrap_or_else(|| "null".into()),
            latest: true,
            delete_marker: out.delete_marker,
            sha256: None,
            size: 0,
            etag: String::new(),
            modified_ms: crate::store::now_ms(),
            meta: ObjectMeta::default(),
            tags: Vec::new(),
            seq: svc.store.peek_seq(),
        };
        svc.emit(ctx, &bucket, &rec, kind).await;
    }
    Ok(out)
}

/// `x-amz-copy-source`: `[/]bucket/key[?versionId=…]`, URL-encoded.
pub(super) fn copy_source(v: &str) -> Result<(String, String, Option<String>), S3Error> {
    let v = v.trim().trim_start_matches('/');
    let (path, version) = match v.split_once("?versionId=") {
        Some((p, ver)) => (p, Some(ver.to_string())),
        None => (v, None),
    };
    let decoded = String::from_utf8(percent_encoding::percent_decode_str(path).collect())
        .map_err(|_| super::invalid_uri())?;
    let (b, k) = decoded.split_once('/').ok_or_else(|| {
        S3Error::invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        )
        .with("ArgumentName", "x-amz-copy-source")
    })?;
    if k.is_empty() {
        return Err(S3Error::invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        ));
    }
    Ok((b.to_string(), k.to_string(), version))
}

/// The source of a copy, read with the caller's rights and `x-amz-copy-source-if-*` checked.
pub(super) async fn read_source(svc: &Arc<S3Service>, ctx: &Ctx) -> Result<ObjectRecord, S3Error> {
    let (sb, sk, sv) = copy_source(ctx.header("x-amz-copy-source").unwrap_or(""))?;
    svc.authorize_in(&ctx.account, &sb, "s3:GetObject", Some(&sk))
        .await?;
    let rec = {
        let (sb, sk, sv) = (sb.clone(), sk.clone(), sv.clone());
        svc.blocking(move |s| s.object(&sb, &sk, sv.as_deref()))
            .await?
    };
    let rec = live_version(rec, &sk, sv.as_deref()).map_err(|e| {
        // A delete marker as the copy source is answered like a missing key.
        if e.code == "MethodNotAllowed" {
            S3Error::invalid_request("The source of a copy request may not specifically refer to a delete marker by version id.")
        } else {
            e
        }
    })?;
    let modified_s = rec.modified_ms / 1000;
    if let Some(m) = ctx.header("x-amz-copy-source-if-match")
        && !etag_matches(m, &rec.etag)
    {
        return Err(S3Error::precondition_failed("x-amz-copy-source-If-Match"));
    }
    if let Some(m) = ctx.header("x-amz-copy-source-if-none-match")
        && etag_matches(m, &rec.etag)
    {
        return Err(S3Error::precondition_failed(
            "x-amz-copy-source-If-None-Match",
        ));
    }
    if let Some(t) = ctx
        .header("x-amz-copy-source-if-unmodified-since")
        .and_then(parse_http_date)
        && modified_s > t / 1000
    {
        return Err(S3Error::precondition_failed(
            "x-amz-copy-source-If-Unmodified-Since",
        ));
    }
    if let Some(t) = ctx
        .header("x-amz-copy-source-if-modified-since")
        .and_then(parse_http_date)
        && modified_s <= t / 1000
    {
        return Err(S3Error::precondition_failed(
            "x-amz-copy-source-If-Modified-Since",
        ));
    }
    Ok(rec)
}

async fn copy_object(svc: &Arc<S3Service>, ctx: &Ctx) -> Resp {
    let key = ctx.key().to_string();
    let bucket = svc.authorize(ctx, "s3:PutObject", Some(&key)).await?;
    let src = read_source(svc, ctx).await?;
    let replace_meta = match ctx.header("x-amz-metadata-directive") {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(_) => {
            return Err(S3Error::invalid_argument("Unknown metadata directive.")
                .with("ArgumentName", "x-amz-metadata-directive"));
        }
    };
    let replace_tags = ctx.header("x-amz-tagging-directive") == Some("REPLACE");
    if src.bucket == bucket.name
        && src.key == key
        && !replace_meta
        && ctx.param("versionId").is_none()
    {
        return Err(S3Error::invalid_request(
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let mut meta = if replace_meta {
        let mut m = meta_from_headers(&ctx.headers)?;
        m.checksum = src.meta.checksum.clone();
        m.parts = src.meta.parts;
        m
    } else {
        src.meta.clone()
    };
    if src.meta.parts.is_some() {
        // The copy is one object whose ETag stays the source's.
        meta.parts = src.meta.parts;
    }
    let tags = if replace_tags {
        tags_from_header(&ctx.headers)?
    } else {
        src.tags.clone()
    };
    let cond = write_condition(ctx)?;
    let rec = {
        let (bucket, key, src) = (bucket.clone(), key.clone(), src.clone());
        svc.blocking(move |s| s.put_existing(&bucket, &key, &src, meta, tags, &cond))
            .await?
    };
    svc.emit(ctx, &bucket, &rec, EventKind::Copy).await;
    let mut d = Doc::new("CopyObjectResult");
    d.el("ETag", &format!("\"{}\"", rec.etag))
        .el("LastModified", &iso8601(rec.modified_ms));
    if let Some((alg, v)) = &rec.meta.checksum
        && let Some(a) = Algorithm::from_name(alg)
    {
        d.el("ChecksumType", "FULL_OBJECT").el(a.xml_name(), v);
    }
    let mut r = xml_response(d.end("CopyObjectResult"));
    if rec.version_id != "null" {
        set_header(&mut r, "x-amz-version-id", &rec.version_id);
    }
    if src.version_id != "null" {
        set_header(&mut r, "x-amz-copy-source-version-id", &src.version_id);
    }
    Ok(r)
}

async fn tagging<B>(svc: &Arc<S3Service>, ctx: &Ctx, body: Incoming<B>) -> Resp
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let key = ctx.key().to_string();
    let version = ctx.param("versionId").map(str::to_string);
    let (action, doc) = match ctx.method {
        Method::PUT => ("s3:PutObjectTagging", Some(body.small(&ctx.headers).await?)),
        Method::GET => {
            body.empty().await?;
            ("s3:GetObjectTagging", None)
        }
        Method::DELETE => {
            body.empty().await?;
            ("s3:DeleteObjectTagging", None)
        }
        _ => return Err(method_not_allowed()),
    };
    let bucket = svc.authorize(ctx, action, Some(&key)).await?;
    let rec = {
        let (name, k, v) = (bucket.name.clone(), key.clone(), version.clone());
        let rec = svc
            .blocking(move |s| s.object(&name, &k, v.as_deref()))
            .await?;
        live_version(rec, &key, version.as_deref())?
    };
    let new_tags = match (&ctx.method, doc) {
        (&Method::PUT, Some(doc)) => {
            let root = parse(&doc)?;
            let set = root.child("TagSet").ok_or_else(S3Error::malformed_xml)?;
            let tags: Vec<(String, String)> = set
                .all("Tag")
                .map(|t| {
                    (
                        t.text_of("Key").unwrap_or("").to_string(),
                        t.text_of("Value").unwrap_or("").to_string(),
                    )
                })
                .collect();
            check_tags(&tags)?;
            Some(tags)
        }
        (&Method::DELETE, _) => Some(Vec::new()),
        _ => None,
    };
    let mut r = if let Some(tags) = new_tags {
        let (name, key, v) = (bucket.name.clone(), key.clone(), rec.version_id.clone());
        let deleting = tags.is_empty() && ctx.method == Method::DELETE;
        svc.blocking(move |s| s.set_tags(&name, &key, &v, &tags))
            .await?;
        status_only(if deleting {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::OK
        })
    } else {
        let mut d = Doc::new("Tagging");
        d.open("TagSet");
        for (k, v) in &rec.tags {
            d.open("Tag").el("Key", k).el("Value", v).close("Tag");
        }
        d.close("TagSet");
        xml_response(d.end("Tagging"))
    };
    if rec.version_id != "null" {
        set_header(&mut r, "x-amz-version-id", &rec.version_id);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=95-200", 100).unwrap(), Some((95, 99)));
        assert_eq!(
            parse_range("bytes=100-", 100).unwrap_err().code,
            "InvalidRange"
        );
        assert_eq!(parse_range("bytes=5-1", 100).unwrap(), None);
        assert_eq!(parse_range("items=1-2", 100).unwrap(), None);
    }

    #[test]
    fn copy_sources() {
        assert_eq!(
            copy_source("/bk/a%20b/c?versionId=v1").unwrap(),
            ("bk".into(), "a b/c".into(), Some("v1".into()))
        );
        assert!(copy_source("bk").is_err());
    }
}
