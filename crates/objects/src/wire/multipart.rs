//! Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts and
//! ListMultipartUploads. Parts are stored as bodies of their own; completion writes the
//! assembled object as one new body (its ETag S3's `md5-of-part-md5s-N`), indexes it and drops
//! the upload in one transaction, then releases the parts' bodies.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use md5::Digest as _;

use super::buckets::method_not_allowed;
use super::ingest::{MAX_PUT_BYTES, receive};
use super::objects::{meta_from_headers, read_source};
use super::{
    Ctx, Incoming, S3Body, S3Service, iso8601, owner_xml, set_header, status_only, xml_response,
};
use crate::checksum::Algorithm;
use crate::error::S3Error;
use crate::notify::EventKind;
use crate::xml::{Doc, parse};

type Resp = Result<http::Response<S3Body>, S3Error>;

/// Smallest part but the last, as on S3.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;

pub(super) async fn route<B>(svc: &Arc<S3Service>, ctx: &Ctx, body: Incoming<B>) -> Resp
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let m = ctx.method.clone();
    if m == Method::POST && ctx.has("uploads") {
        body.empty().await?;
        return create(svc, ctx).await;
    }
    let upload_id = ctx.param("uploadId").unwrap_or("").to_string();
    match m {
        Method::PUT => {
            if ctx.headers.contains_key("x-amz-copy-source") {
                body.empty().await?;
                upload_part_copy(svc, ctx, &upload_id).await
            } else {
                upload_part(svc, ctx, &upload_id, body).await
            }
        }
        Method::POST => {
            let doc = body.small(&ctx.headers).await?;
            complete(svc, ctx, &upload_id, &doc).await
        }
        Method::DELETE => {
            body.empty().await?;
            let bucket = svc
                .authorize(ctx, "s3:AbortMultipartUpload", Some(ctx.key()))
                .await?;
            let (b, k, id) = (
                bucket.name.clone(),
                ctx.key().to_string(),
                upload_id.clone(),
            );
            svc.blocking(move |s| {
                s.upload(&b, &k, &id)?;
                s.abort_upload(&id)
            })
            .await?;
            Ok(status_only(StatusCode::NO_CONTENT))
        }
        Method::GET => {
            body.empty().await?;
            list_parts(svc, ctx, &upload_id).await
        }
        _ => Err(method_not_allowed()),
    }
}

async fn create(svc: &Arc<S3Service>, ctx: &Ctx) -> Resp {
    let key = ctx.key().to_string();
    let bucket = svc.authorize(ctx, "s3:PutObject", Some(&key)).await?;
    let mut meta = meta_from_headers(&ctx.headers)?;
    let alg = match ctx.header("x-amz-checksum-algorithm") {
        Some(a) => Some(Algorithm::from_name(a).ok_or_else(|| {
            S3Error::invalid_argument("Checksum algorithm provided is unsupported.")
        })?),
        None => None,
    };
    // The algorithm is remembered (without a value) for the parts' checksums.
    meta.checksum = alg.map(|a| (a.name().to_string(), String::new()));
    let id = {
        let (b, k, a, m) = (
            bucket.name.clone(),
            key.clone(),
            ctx.account.clone(),
            meta.clone(),
        );
        svc.blocking(move |s| s.create_upload(&b, &k, &a, &m))
            .await?
    };
    let mut d = Doc::new("InitiateMultipartUploadResult");
    d.el("Bucket", &bucket.name)
        .el("Key", &key)
        .el("UploadId", &id);
    let mut r = xml_response(d.end("InitiateMultipartUploadResult"));
    if let Some(a) = alg {
        set_header(&mut r, "x-amz-checksum-algorithm", a.name());
        set_header(&mut r, "x-amz-checksum-type", "COMPOSITE");
    }
    Ok(r)
}

fn part_number(ctx: &Ctx) -> Result<u32, S3Error> {
    ctx.param("partNumber")
        .and_then(|p| p.parse::<u32>().ok())
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
            )
            .with("ArgumentName", "partNumber")
            .with("ArgumentValue", ctx.param("partNumber").unwrap_or(""))
        })
}

async fn upload_part<B>(svc: &Arc<S3Service>, ctx: &Ctx, upload_id: &str, body: Incoming<B>) -> Resp
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let key = ctx.key().to_string();
    let bucket = svc.authorize(ctx, "s3:PutObject", Some(&key)).await?;
    let number = part_number(ctx)?;
    let upload = {
        let (b, k, id) = (bucket.name.clone(), key.clone(), upload_id.to_string());
        svc.blocking(move |s| s.upload(&b, &k, &id)).await?
    };
    let received = receive(&svc.store.blobs, &ctx.headers, body, MAX_PUT_BYTES).await?;
    let part = svc
        .blocking(move |s| {
            let (mut staged, claimed) = received.finish()?;
            let checksum = claimed.map(|(a, v)| (a.name().to_string(), v));
            s.put_part(&upload, number, &mut staged, checksum)
        })
        .await?;
    let mut r = status_only(StatusCode::OK);
    set_header(&mut r, "etag", &format!("\"{}\"", part.etag));
    if let Some((alg, v)) = &part.checksum
        && let Some(a) = Algorithm::from_name(alg)
    {
        set_header(&mut r, a.header(), v);
    }
    Ok(r)
}

/// `bytes=a-b` of `x-amz-copy-source-range`.
fn copy_range(v: &str, size: u64) -> Result<(u64, u64), S3Error> {
    let bad = || {
        S3Error::invalid_argument("The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
            .with("ArgumentName", "x-amz-copy-source-range")
    };
    let spec = v.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a > b {
        return Err(bad());
    }
    if b >= size {
        return Err(S3Error::new(
            "InvalidRange",
            416,
            "The requested range is not satisfiable",
        )
        .with("RangeRequested", v)
        .with("ActualObjectSize", size.to_string()));
    }
    Ok((a, b))
}

async fn upload_part_copy(svc: &Arc<S3Service>, ctx: &Ctx, upload_id: &str) -> Resp {
    let key = ctx.key().to_string();
    let bucket = svc.authorize(ctx, "s3:PutObject", Some(&key)).await?;
    let number = part_number(ctx)?;
    let upload = {
        let (b, k, id) = (bucket.name.clone(), key.clone(), upload_id.to_string());
        svc.blocking(move |s| s.upload(&b, &k, &id)).await?
    };
    let src = read_source(svc, ctx).await?;
    let (start, end) = match ctx.header("x-amz-copy-source-range") {
        Some(v) => copy_range(v, src.size)?,
        None => (0, src.size.saturating_sub(1)),
    };
    let len = if src.size == 0 { 0 } else { end - start + 1 };
    let part = svc
        .blocking(move |s| {
            let sha = src
                .sha256
                .clone()
                .ok_or_else(|| S3Error::no_such_key(&src.key))?;
            let mut f = std::fs::File::open(s.blobs.path(&sha))?;
            f.seek(SeekFrom::Start(start))?;
            let mut w = s.blobs.writer(&[])?;
            copy_into(&mut f.take(len), &mut w)?;
            let mut staged = w.finish()?;
            s.put_part(&upload, number, &mut staged, None)
        })
        .await?;
    let mut d = Doc::new("CopyPartResult");
    d.el("ETag", &format!("\"{}\"", part.etag))
        .el("LastModified", &iso8601(part.modified_ms));
    Ok(xml_response(d.end("CopyPartResult")))
}

/// Copies a reader into a body writer (blocking).
fn copy_into(r: &mut impl Read, w: &mut crate::blobs::BlobWriter) -> Result<(), S3Error> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        w.write(&buf[..n]);
        w.flush()?;
    }
}

async fn complete(svc: &Arc<S3Service>, ctx: &Ctx, upload_id: &str, doc: &[u8]) -> Resp {
    let key = ctx.key().to_string();
    let bucket = svc.authorize(ctx, "s3:PutObject", Some(&key)).await?;
    let root = parse(doc)?;
    if root.name != "CompleteMultipartUpload" {
        return Err(S3Error::malformed_xml());
    }
    let mut wanted: Vec<(u32, String)> = Vec::new();
    for p in root.all("Part") {
        let n = p
            .text_of("PartNumber")
            .and_then(|n| n.trim().parse::<u32>().ok())
            .ok_or_else(S3Error::malformed_xml)?;
        let etag = p
            .text_of("ETag")
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_string();
        wanted.push((n, etag));
    }
    if wanted.is_empty() {
        return Err(S3Error::malformed_xml());
    }
    if wanted.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(S3Error::new(
            "InvalidPartOrder",
            400,
            "The list of parts was not in ascending order. Parts must be ordered by part number.",
        )
        .with("UploadId", upload_id));
    }
    let (b, id) = (bucket.clone(), upload_id.to_string());
    let rec = svc
        .blocking(move |s| {
            let upload = s.upload(&b.name, &key, &id)?;
            let stored = s.parts(&id)?;
            let mut chosen = Vec::with_capacity(wanted.len());
            for (i, (n, etag)) in wanted.iter().enumerate() {
                let part = stored
                    .iter()
                    .find(|p| p.number == *n && (etag.is_empty() || p.etag == *etag))
                    .ok_or_else(|| {
                        S3Error::new(
                            "InvalidPart",
                            400,
                            "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not have matched the part's entity tag.",
                        )
                        .with("UploadId", &id)
                        .with("PartNumber", n.to_string())
                        .with("ETag", etag)
                    })?;
                if i + 1 < wanted.len() && part.size < MIN_PART_BYTES {
                    return Err(S3Error::new(
                        "EntityTooSmall",
                        400,
                        "Your proposed upload is smaller than the minimum allowed object size.",
                    )
                    .with("ProposedSize", part.size.to_string())
                    .with("MinSizeAllowed", MIN_PART_BYTES.to_string())
                    .with("PartNumber", n.to_string())
                    .with("ETag", &part.etag));
                }
                chosen.push(part.clone());
            }
            let mut md5s = md5::Md5::new();
            let mut w = s.blobs.writer(&[])?;
            for p in &chosen {
                md5s.update(hex::decode(&p.etag).unwrap_or_default());
                let mut f = std::fs::File::open(s.blobs.path(&p.sha256))?;
                copy_into(&mut f, &mut w)?;
            }
            let mut staged = w.finish()?;
            let etag = format!("{}-{}", hex::encode(md5s.finalize()), chosen.len());
            let mut meta = upload.meta.clone();
            meta.parts = Some(chosen.len() as u32);
            // A composite checksum is not a checksum of the whole body: it is not kept.
            meta.checksum = None;
            s.complete_upload(&b, &upload, &mut staged, etag, meta)
        })
        .await?;
    svc.emit(ctx, &bucket, &rec, EventKind::CompleteMultipartUpload)
        .await;
    let mut d = Doc::new("CompleteMultipartUploadResult");
    d.el(
        "Location",
        &format!(
            "http://{}/{}/{}",
            ctx.header("host").unwrap_or("localhost"),
            bucket.name,
            super::url_encode(&rec.key)
        ),
    )
    .el("Bucket", &bucket.name)
    .el("Key", &rec.key)
    .el("ETag", &format!("\"{}\"", rec.etag));
    let mut r = xml_response(d.end("CompleteMultipartUploadResult"));
    if rec.version_id != "null" {
        set_header(&mut r, "x-amz-version-id", &rec.version_id);
    }
    Ok(r)
}

async fn list_parts(svc: &Arc<S3Service>, ctx: &Ctx, upload_id: &str) -> Resp {
    let key = ctx.key().to_string();
    let bucket = svc
        .authorize(ctx, "s3:ListMultipartUploadParts", Some(&key))
        .await?;
    let max = ctx
        .param("max-parts")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(1000)
        .min(1000);
    let marker = ctx
        .param("part-number-marker")
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0);
    let (upload, parts) = {
        let (b, k, id) = (bucket.name.clone(), key.clone(), upload_id.to_string());
        svc.blocking(move |s| Ok((s.upload(&b, &k, &id)?, s.parts(&id)?)))
            .await?
    };
    let after: Vec<_> = parts.into_iter().filter(|p| p.number > marker).collect();
    let truncated = after.len() > max;
    let page = &after[..after.len().min(max)];
    let mut d = Doc::new("ListPartsResult");
    d.el("Bucket", &bucket.name)
        .el("Key", &key)
        .el("UploadId", upload_id)
        .el("PartNumberMarker", &marker.to_string());
    if let Some(last) = page.last() {
        d.el("NextPartNumberMarker", &last.number.to_string());
    }
    d.el("MaxParts", &max.to_string())
        .el("IsTruncated", if truncated { "true" } else { "false" });
    for p in page {
        d.open("Part")
            .el("PartNumber", &p.number.to_string())
            .el("LastModified", &iso8601(p.modified_ms))
            .el("ETag", &format!("\"{}\"", p.etag))
            .el("Size", &p.size.to_string());
        if let Some((alg, v)) = &p.checksum
            && let Some(a) = Algorithm::from_name(alg)
        {
            d.el(a.xml_name(), v);
        }
        d.close("Part");
    }
    d.0.push_str(&format!(
        "<Initiator><ID>{}</ID><DisplayName>{}</DisplayName></Initiator>",
        super::owner_id(&upload.account),
        upload.account
    ));
    d.0.push_str(&owner_xml(&bucket.account));
    d.el("StorageClass", "STANDARD");
    Ok(xml_response(d.end("ListPartsResult")))
}

pub(super) async fn list_uploads(svc: &Arc<S3Service>, ctx: &Ctx) -> Resp {
    let bucket = svc
        .authorize(ctx, "s3:ListBucketMultipartUploads", None)
        .await?;
    let prefix = ctx.param("prefix").unwrap_or("").to_string();
    let max = ctx
        .param("max-uploads")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(1000)
        .min(1000);
    let key_marker = ctx.param("key-marker").unwrap_or("").to_string();
    let uploads = {
        let (b, p) = (bucket.name.clone(), prefix.clone());
        svc.blocking(move |s| s.list_uploads(&b, &p)).await?
    };
    let after: Vec<_> = uploads
        .into_iter()
        .filter(|u| key_marker.is_empty() || u.key > key_marker)
        .collect();
    let truncated = after.len() > max;
    let page = &after[..after.len().min(max)];
    let mut d = Doc::new("ListMultipartUploadsResult");
    d.el("Bucket", &bucket.name)
        .el("KeyMarker", &key_marker)
        .el(
            "UploadIdMarker",
            ctx.param("upload-id-marker").unwrap_or(""),
        )
        .el("Prefix", &prefix)
        .el("MaxUploads", &max.to_string())
        .el("IsTruncated", if truncated { "true" } else { "false" });
    if truncated && let Some(last) = page.last() {
        d.el("NextKeyMarker", &last.key)
            .el("NextUploadIdMarker", &last.upload_id);
    }
    for u in page {
        d.open("Upload")
            .el("Key", &u.key)
            .el("UploadId", &u.upload_id);
        d.0.push_str(&format!(
            "<Initiator><ID>{}</ID><DisplayName>{}</DisplayName></Initiator>",
            super::owner_id(&u.account),
            u.account
        ));
        d.0.push_str(&owner_xml(&bucket.account));
        d.el("StorageClass", "STANDARD")
            .el("Initiated", &iso8601(u.created_ms))
            .close("Upload");
    }
    Ok(xml_response(d.end("ListMultipartUploadsResult")))
}
