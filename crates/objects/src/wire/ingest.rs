//! Request bodies streamed to disk: plain bodies, and `aws-chunked` ones (signed chunks or
//! unsigned with a trailing checksum) decoded on the way. While the bytes arrive, MD5 (the
//! ETag), SHA-256 (the storage name, and the payload hash a signature may cover) and every
//! checksum the client announced run over them; a body whose checksum, `Content-MD5`, length
//! or payload hash does not match is refused and its temporary file removed, so nothing of it
//! is ever visible.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;

use super::{Incoming, VerifyBody};
use crate::blobs::{BlobWriter, Blobs, Staged, WRITE_BUFFER};
use crate::checksum::Algorithm;
use crate::chunked::ChunkDecoder;
use crate::error::S3Error;

/// How long an upload may send nothing before it is dropped (S3's `RequestTimeout`), so an idle
/// client cannot hold a connection and a temporary file forever.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The next frame of a body, or S3's `RequestTimeout` when none comes within [`IDLE_TIMEOUT`].
pub(crate) async fn next_frame<B>(body: &mut B) -> Result<Option<http_body::Frame<Bytes>>, S3Error>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
        Err(_) => Err(S3Error::new(
            "RequestTimeout",
            400,
            "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.",
        )),
        Ok(None) => Ok(None),
        Ok(Some(Ok(f))) => Ok(Some(f)),
        Ok(Some(Err(e))) => {
            tracing::debug!(error = %e, "s3 request body read failed");
            Err(S3Error::incomplete_body())
        }
    }
}

/// Largest single PUT, as on S3.
pub const MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Whether a body is aws-chunked.
pub fn is_chunked(headers: &HeaderMap) -> bool {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    h("x-amz-content-sha256").starts_with("STREAMING-")
        || h("content-encoding")
            .split(',')
            .any(|e| e.trim().eq_ignore_ascii_case("aws-chunked"))
}

/// What the client says its body is.
#[derive(Debug, Default)]
struct Expect {
    /// Checksums given as headers.
    headers: Vec<(Algorithm, String)>,
    /// A checksum announced as a trailer (`x-amz-trailer`).
    trailer: Option<Algorithm>,
    /// Base64 MD5 (`Content-MD5`).
    md5: Option<String>,
    /// The decoded length, when announced.
    len: Option<u64>,
    /// Algorithms to compute.
    algorithms: Vec<Algorithm>,
}

fn expectations(headers: &HeaderMap, chunked: bool) -> Result<Expect, S3Error> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let mut e = Expect::default();
    for a in Algorithm::ALL {
        if let Some(v) = h(a.header()) {
            e.headers.push((a, v.trim().to_string()));
            e.algorithms.push(a);
        }
    }
    if let Some(t) = h("x-amz-trailer") {
        let a = Algorithm::from_header(t.trim()).ok_or_else(|| {
            S3Error::invalid_argument(format!("Value for x-amz-trailer header is invalid: {t}"))
        })?;
        e.trailer = Some(a);
        if !e.algorithms.contains(&a) {
            e.algorithms.push(a);
        }
    }
    if let Some(a) = h("x-amz-sdk-checksum-algorithm").or(h("x-amz-checksum-algorithm")) {
        let a = Algorithm::from_name(a.trim()).ok_or_else(|| {
            S3Error::invalid_argument("Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
        })?;
        if !e.algorithms.contains(&a) {
            e.algorithms.push(a);
        }
    }
    if let Some(m) = h("content-md5") {
        let raw = B64
            .decode(m.trim())
            .ok()
            .filter(|r| r.len() == 16)
            .ok_or_else(|| {
                S3Error::new(
                    "InvalidDigest",
                    400,
                    "The Content-MD5 you specified was invalid.",
                )
            })?;
        e.md5 = Some(hex::encode(raw));
    }
    e.len = if chunked {
        h("x-amz-decoded-content-length").and_then(|v| v.trim().parse().ok())
    } else {
        h("content-length").and_then(|v| v.trim().parse().ok())
    };
    Ok(e)
}

fn mismatch(a: Algorithm) -> S3Error {
    S3Error::bad_digest(format!(
        "The {} you specified did not match the calculated checksum.",
        a.name()
    ))
}

/// A body received into a temporary file, not yet checked against what the client claimed.
pub(crate) struct Received {
    writer: BlobWriter,
    decoder: Option<ChunkDecoder>,
    verify: Option<VerifyBody>,
    expect: Expect,
}

/// Streams a request body into a new temporary file of `blobs`, up to `max` bytes.
pub(crate) async fn receive<B>(
    blobs: &Blobs,
    headers: &HeaderMap,
    incoming: Incoming<B>,
    max: u64,
) -> Result<Received, S3Error>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let chunked = is_chunked(headers);
    let expect = expectations(headers, chunked)?;
    if let Some(n) = expect.len
        && n > max
    {
        return Err(too_large(n, max));
    }
    let mut writer = blobs.writer(&expect.algorithms)?;
    let mut incoming = incoming;
    let mut decoder = chunked.then(|| incoming.decoder());
    let Incoming {
        mut body, verify, ..
    } = incoming;
    let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread;
    while let Some(frame) = next_frame(&mut body).await? {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match decoder.as_mut() {
            Some(d) => d.feed(&data, &mut |b| {
                writer.write(b);
                Ok(())
            })?,
            None => writer.write(&data),
        }
        if writer.size > max {
            return Err(too_large(writer.size, max));
        }
        if writer.pending() >= WRITE_BUFFER {
            if multi_thread {
                tokio::task::block_in_place(|| writer.flush())?;
            } else {
                writer.flush()?;
            }
        }
    }
    if let Some(d) = decoder.as_mut() {
        d.finish()?;
    }
    if let Some(n) = expect.len
        && n != writer.size
    {
        return Err(S3Error::incomplete_body());
    }
    Ok(Received {
        writer,
        decoder,
        verify,
        expect,
    })
}

fn too_large(n: u64, max: u64) -> S3Error {
    S3Error::new(
        "EntityTooLarge",
        400,
        "Your proposed upload exceeds the maximum allowed size",
    )
    .with("ProposedSize", n.to_string())
    .with("MaxSizeAllowed", max.to_string())
}

impl Received {
    /// Writes out and fsyncs the body, then checks it against every claim. Blocking.
    pub fn finish(self) -> Result<(Staged, Option<(Algorithm, String)>), S3Error> {
        let Received {
            writer,
            decoder,
            verify,
            expect,
        } = self;
        let staged = writer.finish()?;
        if let Some(v) = verify {
            v(&staged.sha256)?;
        }
        if let Some(m) = &expect.md5
            && *m != staged.md5
        {
            return Err(S3Error::bad_digest(
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
        let mut claimed = None;
        for (a, v) in &expect.headers {
            if staged.checksum(*a) != Some(v.as_str()) {
                return Err(mismatch(*a));
            }
            claimed = Some((*a, v.clone()));
        }
        if let Some(a) = expect.trailer {
            let value = decoder
                .as_ref()
                .and_then(|d| d.trailer(a.header()))
                .ok_or_else(|| {
                    S3Error::invalid_request(format!(
                        "The trailing checksum {} was announced but not sent.",
                        a.header()
                    ))
                })?;
            if staged.checksum(a) != Some(value) {
                return Err(mismatch(a));
            }
            claimed = Some((a, value.to_string()));
        }
        if claimed.is_none()
            && let Some((a, v)) = staged.checksums.first()
        {
            // An algorithm asked for without a value: S3 computes and keeps it.
            claimed = Some((*a, v.clone()));
        }
        Ok((staged, claimed))
    }
}

/// Checks the checksums announced for a small body read whole.
pub(crate) fn check_small_checksums(
    headers: &HeaderMap,
    body: &[u8],
    decoder: Option<&ChunkDecoder>,
) -> Result<(), S3Error> {
    let e = expectations(headers, decoder.is_some())?;
    let sum = |a: Algorithm| {
        let mut h = a.hasher();
        h.update(body);
        h.finish()
    };
    for (a, v) in &e.headers {
        if sum(*a) != *v {
            return Err(mismatch(*a));
        }
    }
    if let (Some(a), Some(d)) = (e.trailer, decoder)
        && let Some(v) = d.trailer(a.header())
        && sum(a) != v
    {
        return Err(mismatch(a));
    }
    if let Some(m) = &e.md5
        && *m != hex::encode(<md5::Md5 as md5::Digest>::digest(body))
    {
        return Err(S3Error::bad_digest(
            "The Content-MD5 you specified did not match what we received.",
        ));
    }
    Ok(())
}
