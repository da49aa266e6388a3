//! S3's REST protocol (rest-xml): addressing, routing to operations, and answers.
//!
//! A request arrives with its head authenticated by the front door and its body unread
//! ([`S3Request`]); bodies are streamed to disk by [`ingest`] and back out of it by
//! [`body::FileBody`], never held whole. The bucket comes from the host
//! (`<bucket>.s3.localhost`, `<bucket>.s3.<region>.localhost`) or the first path segment; the
//! key is the rest of the path, percent-decoded as bytes, and must be UTF-8 (keys are opaque
//! to the store: `..` is a key like any other and never names a file).

pub mod body;
mod buckets;
pub mod ingest;
mod multipart;
mod objects;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::error::S3Error;
use crate::notify::Notifier;
use crate::store::{Bucket, ObjectStore};
use crate::xml::esc;

pub use body::S3Body;

/// Checks the body's SHA-256 (hex) against what the signature covers; given by the front door.
pub type VerifyBody = Box<dyn FnOnce(&str) -> Result<(), S3Error> + Send>;

/// A request for the object store, authenticated as far as its head allows.
pub struct S3Request<B> {
    pub method: Method,
    /// The path as on the wire (percent-encoded).
    pub raw_path: String,
    pub raw_query: String,
    pub headers: HeaderMap,
    pub body: B,
    pub request_id: String,
    /// The caller's account.
    pub account: String,
    /// Whether the request announces a body.
    pub has_body: bool,
    /// Completes authentication with the body's hash (when the signature covers the body).
    pub verify: Option<VerifyBody>,
    /// Checks each chunk's signature of a signed aws-chunked body.
    pub chunk_verify: Option<crate::chunked::ChunkVerify>,
    /// The caller's address, for notification records.
    pub source_ip: String,
}

/// The S3 service of a node.
pub struct S3Service {
    pub store: Arc<ObjectStore>,
    pub region: String,
    /// Where bucket notifications go, set once by the binary.
    pub notifier: OnceLock<Arc<dyn Notifier>>,
}

impl S3Service {
    pub fn new(store: Arc<ObjectStore>, region: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            store,
            region: region.into(),
            notifier: OnceLock::new(),
        })
    }
}

/// The parsed address and the bits every operation needs.
pub(crate) struct Ctx {
    pub method: Method,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub request_id: String,
    pub account: String,
    pub source_ip: String,
}

impl Ctx {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn bucket(&self) -> &str {
        self.bucket.as_deref().unwrap_or_default()
    }

    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or_default()
    }
}

/// What the front door needs to know about a request before routing it: whether its `Host`
/// names a bucket the virtual-host way.
pub fn host_bucket(host: &str) -> Option<String> {
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let host = host.to_ascii_lowercase();
    let rest = host.strip_suffix(".localhost")?;
    let (bucket, tail) = rest.split_once(".s3")?;
    if bucket.is_empty() || !(tail.is_empty() || tail.starts_with('.')) {
        return None;
    }
    Some(bucket.to_string())
}

/// Percent-decodes a query string into pairs (`+` is kept as it is, as S3 does).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    let dec = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

/// What `encoding-type=url` leaves alone.
const URL_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// A key as S3 writes it under `encoding-type=url`.
pub fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, URL_ENCODE).to_string()
}

/// A key as it appears in event records: form-encoded (`+` for spaces), as S3 sends it.
pub fn event_key(s: &str) -> String {
    utf8_percent_encode(s, URL_ENCODE)
        .to_string()
        .replace("%20", "+")
}

pub(crate) fn invalid_uri() -> S3Error {
    S3Error::new("InvalidURI", 400, "Couldn't parse the specified URI.")
}

/// Splits the address into bucket and key.
fn address(
    raw_path: &str,
    host: Option<&str>,
) -> Result<(Option<String>, Option<String>), S3Error> {
    let path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    let (bucket, key_raw) = match host.and_then(host_bucket) {
        Some(b) => (Some(b), Some(path)),
        None => match path.split_once('/') {
            Some((b, k)) => (Some(b.to_string()), Some(k)),
            None if path.is_empty() => (None, None),
            None => (Some(path.to_string()), None),
        },
    };
    let bucket = bucket
        .map(|b| {
            percent_decode_str(&b)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| invalid_uri())
        })
        .transpose()?;
    let key = match key_raw.filter(|k| !k.is_empty()) {
        None => None,
        Some(k) => {
            let bytes: Vec<u8> = percent_decode_str(k).collect();
            let key = String::from_utf8(bytes).map_err(|_| invalid_uri())?;
            if key.len() > crate::store::MAX_KEY_BYTES {
                return Err(S3Error::new("KeyTooLongError", 400, "Your key is too long"));
            }
            Some(key)
        }
    };
    Ok((bucket, key))
}

impl S3Service {
    /// Serves one S3 request.
    pub async fn handle<B>(self: &Arc<Self>, req: S3Request<B>) -> http::Response<S3Body>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let head = req.method == Method::HEAD;
        let request_id = req.request_id.clone();
        let resource = percent_decode_str(req.raw_path.split('?').next().unwrap_or("/"))
            .decode_utf8_lossy()
            .into_owned();
        let mut resp = match self.route(req).await {
            Ok(r) => r,
            Err(e) => error_response(&e, &resource, &request_id, head),
        };
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert("x-amz-request-id", v.clone());
            h.insert("x-amz-id-2", v);
        }
        h.insert("server", HeaderValue::from_static("UpdraftS3"));
        resp
    }

    async fn route<B>(
        self: &Arc<Self>,
        req: S3Request<B>,
    ) -> Result<http::Response<S3Body>, S3Error>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let host = req.headers.get("host").and_then(|h| h.to_str().ok());
        let (bucket, key) = address(&req.raw_path, host)?;
        let ctx = Ctx {
            method: req.method.clone(),
            bucket,
            key,
            query: parse_query(&req.raw_query),
            headers: req.headers,
            request_id: req.request_id,
            account: req.account,
            source_ip: req.source_ip,
        };
        let body = Incoming {
            body: req.body,
            has_body: req.has_body,
            verify: req.verify,
            chunk_verify: req.chunk_verify,
        };
        let m = &ctx.method;
        match (&ctx.bucket, &ctx.key) {
            (None, _) if *m == Method::GET => {
                body.empty().await?;
                buckets::list_buckets(self, &ctx).await
            }
            (None, _) => Err(S3Error::new(
                "MethodNotAllowed",
                405,
                "The specified method is not allowed against this resource.",
            )),
            (Some(_), None) => buckets::route(self, &ctx, body).await,
            (Some(_), Some(_)) => {
                if (*m == Method::POST && ctx.has("uploads")) || ctx.has("uploadId") {
                    multipart::route(self, &ctx, body).await
                } else {
                    objects::route(self, &ctx, body).await
                }
            }
        }
    }

    /// The bucket, if the caller may do `action` on it (`key`: on that object in it).
    pub(crate) async fn authorize(
        self: &Arc<Self>,
        ctx: &Ctx,
        action: &str,
        key: Option<&str>,
    ) -> Result<Bucket, S3Error> {
        self.authorize_in(&ctx.account, ctx.bucket(), action, key)
            .await
    }

    /// [`authorize`](Self::authorize) for any bucket (a copy's source): the owner may do
    /// anything; another account what the bucket policy grants it.
    pub(crate) async fn authorize_in(
        self: &Arc<Self>,
        account: &str,
        bucket: &str,
        action: &str,
        key: Option<&str>,
    ) -> Result<Bucket, S3Error> {
        let name = bucket.to_string();
        let bucket = self.blocking(move |s| s.bucket(&name)).await?;
        if bucket.account == account {
            return Ok(bucket);
        }
        let arn = match key {
            Some(k) => format!("arn:aws:s3:::{}/{k}", bucket.name),
            None => format!("arn:aws:s3:::{}", bucket.name),
        };
        match &bucket.policy {
            Some(p) if crate::policy::allows(p, account, action, &arn) => Ok(bucket),
            _ => Err(S3Error::access_denied()),
        }
    }

    /// Runs a store call on the blocking pool.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ObjectStore) -> Result<T, S3Error> + Send + 'static,
    ) -> Result<T, S3Error> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| S3Error::internal(format!("blocking task: {e}")))?
    }
}

/// A request body, unread.
pub(crate) struct Incoming<B> {
    pub body: B,
    pub has_body: bool,
    pub verify: Option<VerifyBody>,
    pub chunk_verify: Option<crate::chunked::ChunkVerify>,
}

impl<B> Incoming<B> {
    /// The decoder an aws-chunked body needs (checking chunk signatures when it is signed).
    pub fn decoder(&mut self) -> crate::chunked::ChunkDecoder {
        match self.chunk_verify.take() {
            Some(v) => crate::chunked::ChunkDecoder::signed(v),
            None => crate::chunked::ChunkDecoder::new(),
        }
    }
}

/// Largest XML document accepted in a request body.
const MAX_XML_BODY: usize = 2 * 1024 * 1024;

impl<B> Incoming<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    /// Reads a small body (an XML document) whole, and completes its authentication.
    pub async fn small(mut self, headers: &HeaderMap) -> Result<Bytes, S3Error> {
        let mut buf = Vec::new();
        let chunked = ingest::is_chunked(headers);
        let mut dec = self.decoder();
        while let Some(frame) = ingest::next_frame(&mut self.body).await? {
            if let Ok(data) = frame.into_data() {
                if chunked {
                    dec.feed(&data, &mut |d| {
                        buf.extend_from_slice(d);
                        Ok(())
                    })?;
                } else {
                    buf.extend_from_slice(&data);
                }
                if buf.len() > MAX_XML_BODY {
                    return Err(S3Error::new(
                        "MaxMessageLengthExceeded",
                        400,
                        "Your request was too big.",
                    ));
                }
            }
        }
        if chunked {
            dec.finish()?;
        }
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&buf));
        if let Some(v) = self.verify.take() {
            v(&sha)?;
        }
        ingest::check_small_checksums(headers, &buf, chunked.then_some(&dec))?;
        Ok(Bytes::from(buf))
    }

    /// Requires no body, and completes authentication over the empty one.
    pub async fn empty(mut self) -> Result<(), S3Error> {
        if self.has_body {
            let _ = self.small(&HeaderMap::new()).await?;
            return Ok(());
        }
        if let Some(v) = self.verify.take() {
            v(crate::EMPTY_SHA256)?;
        }
        Ok(())
    }
}

/// S3's `<Error>` document (none for HEAD).
pub fn error_response(
    e: &S3Error,
    resource: &str,
    request_id: &str,
    head: bool,
) -> http::Response<S3Body> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut doc = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>");
    doc.push_str(&format!(
        "<Code>{}</Code><Message>{}</Message>",
        e.code,
        esc(&e.message)
    ));
    for (k, v) in &e.extra {
        doc.push_str(&format!("<{k}>{}</{k}>", esc(v)));
    }
    doc.push_str(&format!(
        "<Resource>{}</Resource><RequestId>{}</RequestId><HostId>{}</HostId></Error>",
        esc(e.resource.as_deref().unwrap_or(resource)),
        esc(request_id),
        esc(request_id)
    ));
    let mut resp = if head {
        http::Response::new(body::empty())
    } else {
        http::Response::new(body::full(doc))
    };
    *resp.status_mut() = status;
    if !head {
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/xml"));
    }
    for (k, v) in &e.headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            resp.headers_mut().insert(*k, v);
        }
    }
    resp
}

/// A `200` XML answer.
pub(crate) fn xml_response(doc: String) -> http::Response<S3Body> {
    let mut resp = http::Response::new(body::full(doc));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    resp
}

pub(crate) fn status_only(status: StatusCode) -> http::Response<S3Body> {
    let mut resp = http::Response::new(body::empty());
    *resp.status_mut() = status;
    resp
}

pub(crate) fn set_header(resp: &mut http::Response<S3Body>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// `2024-05-17T10:00:00.000Z`, as S3's XML writes times.
pub fn iso8601(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

const HTTP_DATE: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// An HTTP date (`Last-Modified`).
pub fn http_date(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(HTTP_DATE).unwrap_or_default()
}

/// Parses an HTTP date into milliseconds; `None` when it is not one (the header is then ignored).
pub fn parse_http_date(s: &str) -> Option<i64> {
    let t = time::PrimitiveDateTime::parse(s.trim(), HTTP_DATE).ok()?;
    Some(t.assume_utc().unix_timestamp() * 1000)
}

/// The owner element's canonical id for an account.
pub(crate) fn owner_id(account: &str) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(account.as_bytes()))
}

/// The bucket, when the caller owns it (configuration is the owner's alone).
pub(crate) async fn owned_bucket(svc: &Arc<S3Service>, ctx: &Ctx) -> Result<Bucket, S3Error> {
    buckets::owned(svc, ctx).await
}

pub(crate) fn owner_xml(account: &str) -> String {
    format!(
        "<Owner><ID>{}</ID><DisplayName>{}</DisplayName></Owner>",
        owner_id(account),
        esc(account)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosts() {
        assert_eq!(
            host_bucket("photos.s3.localhost:9000").as_deref(),
            Some("photos")
        );
        assert_eq!(
            host_bucket("my.bucket.s3.us-east-1.localhost").as_deref(),
            Some("my.bucket")
        );
        assert_eq!(host_bucket("localhost:9000"), None);
        assert_eq!(host_bucket("s3.localhost"), None);
        assert_eq!(host_bucket("abc.lambda-url.us-east-1.localhost"), None);
    }

    #[test]
    fn addresses_keep_keys_opaque() {
        let (b, k) = address("/bk/a/../b%20c//d", None).unwrap();
        assert_eq!(
            (b.as_deref(), k.as_deref()),
            (Some("bk"), Some("a/../b c//d"))
        );
        assert_eq!(address("/bk/%FF", None).unwrap_err().code, "InvalidURI");
        let long = "k".repeat(1025);
        assert_eq!(
            address(&format!("/bk/{long}"), None).unwrap_err().code,
            "KeyTooLongError"
        );
        let (b, k) = address("/x/y", Some("vb.s3.localhost")).unwrap();
        assert_eq!((b.as_deref(), k.as_deref()), (Some("vb"), Some("x/y")));
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        let d = http_date(1_700_000_000_000);
        assert_eq!(d, "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(parse_http_date(&d), Some(1_700_000_000_000));
        assert_eq!(event_key("a b/c+d"), "a+b/c%2Bd");
    }
}
