//! Signing: the key derivation and string to sign shared with verification, and the two client entry
//! points, [`sign_headers`] (an `Authorization` header) and [`presign`] (a presigned query).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::canonical::{
    PathEncoding, QueryParam, canonical_headers, canonical_query, canonical_request, canonical_uri,
    encode_query_component, header_count, header_value, parse_query, sorted_header_names,
};
use crate::{
    ALGORITHM, Credentials, MAX_PRESIGN_EXPIRES_SECS, PayloadHash, RequestParts, UNSIGNED_PAYLOAD,
    amz_date, sha256_hex,
};

/// Who signs, for which region and service, at what time.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    pub credentials: &'a Credentials,
    /// e.g. `us-east-1`.
    pub region: &'a str,
    /// e.g. `lambda` or `s3`; also selects the [`PathEncoding`].
    pub service: &'a str,
    /// The signing time; any offset, converted to UTC.
    pub time: OffsetDateTime,
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("request has no host header")]
    MissingHost,
    #[error("access key id {0:?} cannot appear in a credential scope")]
    InvalidAccessKeyId(String),
    #[error("region {0:?} cannot appear in a credential scope")]
    InvalidRegion(String),
    #[error("service {0:?} cannot appear in a credential scope")]
    InvalidService(String),
    #[error("signing time {0} is outside the years 0000 to 9999")]
    TimeOutOfRange(OffsetDateTime),
    #[error("presigned expiry of {0} seconds is outside 1..=604800")]
    InvalidExpires(u32),
    #[error("query already carries the presigned parameter {0}")]
    AlreadyPresigned(String),
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length (long ones are hashed), so this constructor cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `kSigning` from the secret and the scope: HMAC chained over date, region, service, `aws4_request`.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// `date/region/service/aws4_request`.
pub(crate) fn credential_scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Lower-case hex HMAC of the string to sign.
pub(crate) fn signature(key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

/// Headers a client must not sign: ones this crate writes itself, and ones proxies and HTTP stacks
/// add or rewrite in transit (the same set botocore leaves out, plus `connection`).
fn never_signed(lower_name: &str) -> bool {
    matches!(
        lower_name,
        "authorization"
            | "x-amz-date"
            | "user-agent"
            | "expect"
            | "transfer-encoding"
            | "connection"
            | "x-amzn-trace-id"
    )
}

fn scope_part_is_valid(part: &str) -> bool {
    // Anything the verifier's Authorization parser treats as structure (`/`, `,`, `=`) or trims
    // (whitespace) would make a request that signs but can never verify.
    !part.is_empty()
        && !part
            .chars()
            .any(|c| matches!(c, '/' | ',' | '=') || c.is_whitespace() || c.is_control())
}

/// Checks the parts that go into a credential scope and returns (`x-amz-date`, scope date).
fn check_params(params: &SigningParams) -> Result<(String, String), SignError> {
    let id = &params.credentials.access_key_id;
    if !scope_part_is_valid(id) {
        return Err(SignError::InvalidAccessKeyId(id.clone()));
    }
    if !scope_part_is_valid(params.region) {
        return Err(SignError::InvalidRegion(params.region.to_owned()));
    }
    if !scope_part_is_valid(params.service) {
        return Err(SignError::InvalidService(params.service.to_owned()));
    }
    let amz_date =
        amz_date::format_basic(params.time).ok_or(SignError::TimeOutOfRange(params.time))?;
    let date = amz_date[..8].to_owned();
    Ok((amz_date, date))
}

/// Signs a request whose body is `body`; see [`sign_headers_with_payload`].
pub fn sign_headers(
    req: &RequestParts,
    body: &[u8],
    params: &SigningParams,
) -> Result<Vec<(String, String)>, SignError> {
    let hash = sha256_hex(body);
    sign_headers_with_payload(req, PayloadHash::Hex(&hash), params)
}

/// Signs a request with header authentication and returns the headers to add, lower-case:
/// `authorization`, `x-amz-date` and `x-amz-content-sha256`.
///
/// `req.path` and `req.query` must be exactly what will be sent. `req.headers` must include `host`
/// (with the port when it is not the scheme's default); every header given is signed except
/// `authorization`, `x-amz-date`, `x-amz-content-sha256` (replaced by the returned ones) and those
/// rewritten in transit (`user-agent`, `expect`, `transfer-encoding`, `connection`, `x-amzn-trace-id`).
pub fn sign_headers_with_payload(
    req: &RequestParts,
    payload: PayloadHash,
    params: &SigningParams,
) -> Result<Vec<(String, String)>, SignError> {
    let (amz_date, date) = check_params(params)?;
    if header_count(req.headers, "host") == 0 {
        return Err(SignError::MissingHost);
    }
    let payload = payload.as_str().to_owned();

    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(name, _)| {
            let lower = name.to_ascii_lowercase();
            !never_signed(&lower) && lower != "x-amz-content-sha256"
        })
        .cloned()
        .collect();
    headers.push(("x-amz-date".to_owned(), amz_date.clone()));
    headers.push(("x-amz-content-sha256".to_owned(), payload.clone()));
    let signed = sorted_header_names(&headers, |_| false);
    let signed_line = signed.join(";");

    let creq = canonical_request(
        req.method,
        &canonical_uri(req.path, PathEncoding::for_service(params.service)),
        &canonical_query(&parse_query(req.query)),
        &canonical_headers(&headers, &signed),
        &signed_line,
        &payload,
    );
    let scope = credential_scope(&date, params.region, params.service);
    let key = signing_key(
        &params.credentials.secret_access_key,
        &date,
        params.region,
        params.service,
    );
    let sig = signature(&key, &string_to_sign(&amz_date, &scope, &creq));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_line}, Signature={sig}",
        params.credentials.access_key_id
    );
    Ok(vec![
        ("authorization".to_owned(), authorization),
        ("x-amz-date".to_owned(), amz_date),
        ("x-amz-content-sha256".to_owned(), payload),
    ])
}

/// The query parameters that carry a presigned signature.
pub(crate) const PRESIGN_PARAMS: [&str; 6] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
];

/// Presigns a request valid for `expires_secs` seconds (1..=604800) from `params.time`.
///
/// Returns the encoded `X-Amz-*` parameters to append to the URL's query: after `?` when `req.query`
/// is empty, otherwise after `req.query` and a `&`. Unless the headers carry `x-amz-content-sha256`,
/// the payload is `UNSIGNED-PAYLOAD` for `s3` and the hash of an empty body for other services (as the
/// AWS SDKs presign). Every header given is signed (with the exclusions of
/// [`sign_headers_with_payload`]); for a link a browser will open, pass only `host`.
pub fn presign(
    req: &RequestParts,
    expires_secs: u32,
    params: &SigningParams,
) -> Result<String, SignError> {
    let (amz_date, date) = check_params(params)?;
    if !(1..=MAX_PRESIGN_EXPIRES_SECS).contains(&expires_secs) {
        return Err(SignError::InvalidExpires(expires_secs));
    }
    if header_count(req.headers, "host") == 0 {
        return Err(SignError::MissingHost);
    }
    let mut query = parse_query(req.query);
    if let Some(p) = query
        .iter()
        .find(|p| PRESIGN_PARAMS.iter().any(|name| p.name_is(name)))
    {
        return Err(SignError::AlreadyPresigned(
            String::from_utf8_lossy(&p.name).into_owned(),
        ));
    }

    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(name, _)| !never_signed(&name.to_ascii_lowercase()))
        .cloned()
        .collect();
    let signed = sorted_header_names(&headers, |_| false);
    let signed_line = signed.join(";");
    // What the AWS SDKs' presigners sign: S3 leaves the payload unsigned, other services sign the
    // (empty) body of the GET a link stands for.
    let payload = header_value(&headers, "x-amz-content-sha256").unwrap_or_else(|| {
        if params.service == "s3" {
            UNSIGNED_PAYLOAD.to_owned()
        } else {
            sha256_hex(b"")
        }
    });

    let scope = credential_scope(&date, params.region, params.service);
    let credential = format!("{}/{scope}", params.credentials.access_key_id);
    let expires = expires_secs.to_string();
    let added: [(&str, &str); 5] = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", &credential),
        ("X-Amz-Date", &amz_date),
        ("X-Amz-Expires", &expires),
        ("X-Amz-SignedHeaders", &signed_line),
    ];
    query.extend(added.iter().map(|(name, value)| QueryParam {
        name: name.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }));

    let creq = canonical_request(
        req.method,
        &canonical_uri(req.path, PathEncoding::for_service(params.service)),
        &canonical_query(&query),
        &canonical_headers(&headers, &signed),
        &signed_line,
        &payload,
    );
    let key = signing_key(
        &params.credentials.secret_access_key,
        &date,
        params.region,
        params.service,
    );
    let sig = signature(&key, &string_to_sign(&amz_date, &scope, &creq));

    let mut out = String::new();
    for (name, value) in added {
        out.push_str(name);
        out.push('=');
        out.push_str(&encode_query_component(value));
        out.push('&');
    }
    out.push_str("X-Amz-Signature=");
    out.push_str(&sig);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn creds() -> Credentials {
        Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    }

    #[test]
    fn signing_key_matches_the_documented_example() {
        // AWS documents this derived key for the example secret, 20150830/us-east-1/iam.
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn sign_headers_requires_host() {
        let creds = creds();
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "lambda",
            time: datetime!(2015-08-30 12:36:00 UTC),
        };
        let req = RequestParts {
            method: "GET",
            path: "/",
            query: "",
            headers: &[],
        };
        assert_eq!(
            sign_headers(&req, b"", &params),
            Err(SignError::MissingHost)
        );
    }

    #[test]
    fn sign_headers_rejects_bad_scope_parts() {
        let creds = creds();
        let headers = vec![("host".to_owned(), "h".to_owned())];
        let req = RequestParts {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
        };
        let params = SigningParams {
            credentials: &creds,
            region: "us/east",
            service: "lambda",
            time: datetime!(2015-08-30 12:36:00 UTC),
        };
        assert_eq!(
            sign_headers(&req, b"", &params),
            Err(SignError::InvalidRegion("us/east".into()))
        );
        let params = SigningParams {
            region: "us-east-1",
            service: "",
            ..params
        };
        assert_eq!(
            sign_headers(&req, b"", &params),
            Err(SignError::InvalidService(String::new()))
        );
    }

    #[test]
    fn sign_headers_returns_three_headers_and_ignores_caller_copies() {
        let creds = creds();
        let headers = vec![
            ("Host".to_owned(), "example.amazonaws.com".to_owned()),
            ("X-Amz-Date".to_owned(), "19990101T000000Z".to_owned()),
            ("User-Agent".to_owned(), "updraft".to_owned()),
        ];
        let req = RequestParts {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
        };
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "service",
            time: datetime!(2015-08-30 12:36:00 UTC),
        };
        let added = sign_headers(&req, b"", &params).expect("signs");
        let names: Vec<&str> = added.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["authorization", "x-amz-date", "x-amz-content-sha256"]
        );
        assert_eq!(added[1].1, "20150830T123600Z");
        assert_eq!(added[2].1, sha256_hex(b""));
        assert!(
            added[0]
                .1
                .contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date, "),
            "{}",
            added[0].1
        );
    }

    #[test]
    fn presign_validates_expiry_and_existing_params() {
        let creds = creds();
        let headers = vec![("host".to_owned(), "h".to_owned())];
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "s3",
            time: datetime!(2015-08-30 12:36:00 UTC),
        };
        let req = RequestParts {
            method: "GET",
            path: "/b/k",
            query: "",
            headers: &headers,
        };
        assert_eq!(presign(&req, 0, &params), Err(SignError::InvalidExpires(0)));
        assert_eq!(
            presign(&req, 604_801, &params),
            Err(SignError::InvalidExpires(604_801))
        );
        assert!(presign(&req, 604_800, &params).is_ok());
        let req = RequestParts {
            query: "X-Amz-Signature=abc",
            ..req
        };
        assert_eq!(
            presign(&req, 60, &params),
            Err(SignError::AlreadyPresigned("X-Amz-Signature".into()))
        );
    }

    #[test]
    fn presign_output_shape() {
        let creds = creds();
        let headers = vec![("host".to_owned(), "h".to_owned())];
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "s3",
            time: datetime!(2015-08-30 12:36:00 UTC),
        };
        let req = RequestParts {
            method: "GET",
            path: "/b/k",
            query: "",
            headers: &headers,
        };
        let q = presign(&req, 3600, &params).expect("presigns");
        let (head, sig) = q.rsplit_once("&X-Amz-Signature=").expect("signature last");
        assert_eq!(
            head,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20150830T123600Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
        );
        assert_eq!(sig.len(), 64);
        assert!(
            sig.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    fn params<'a>(creds: &'a Credentials, region: &'a str, service: &'a str) -> SigningParams<'a> {
        SigningParams {
            credentials: creds,
            region,
            service,
            time: time::macros::datetime!(2015-08-30 12:36:00 UTC),
        }
    }

    fn sign(creds: &Credentials, region: &str, service: &str) -> Result<(), SignError> {
        let headers = vec![("host".to_string(), "example.amazonaws.com".to_string())];
        let req = RequestParts {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
        };
        sign_headers(&req, b"", &params(creds, region, service)).map(|_| ())
    }

    // Found by fuzzing: these signed but could never verify.
    #[test]
    fn scope_parts_the_verifier_would_split_or_trim_are_refused() {
        let ok = Credentials::new("AKID", "secret");
        assert!(sign(&ok, "us-east-1", "lambda").is_ok());
        assert_eq!(
            sign(&ok, ",", "6"),
            Err(SignError::InvalidRegion(",".into()))
        );
        assert_eq!(
            sign(&ok, "us-east-1", "a=b"),
            Err(SignError::InvalidService("a=b".into()))
        );
        let vt = Credentials::new("\u{b}", "secret");
        assert!(matches!(
            sign(&vt, "us-east-1", "lambda"),
            Err(SignError::InvalidAccessKeyId(_))
        ));
        assert!(matches!(
            sign(&ok, "\0", "lambda"),
            Err(SignError::InvalidRegion(_))
        ));
    }
}
