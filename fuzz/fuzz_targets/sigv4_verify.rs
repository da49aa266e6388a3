//! SigV4 verification at the front door, on requests anyone can send.
//!
//! Three kinds of input, chosen by the first bytes:
//! - `Raw`: method, path, query, headers and body hash exactly as a client could send them, verified
//!   against a fixed clock and key. Must never panic.
//! - `Shaped`: the same, but with an `Authorization` header (or a presigned query) assembled from
//!   fuzzed parts, so that the fuzzer reaches the checks behind the header parser quickly.
//! - `RoundTrip`: a valid request is signed (header or presigned) and must then verify, with the
//!   signer's key, region, service and payload hash; changing its method or its body must then
//!   make verification fail.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode;
use time::{Duration, OffsetDateTime};
use updraft_sigv4::{
    Credentials, MAX_PRESIGN_EXPIRES_SECS, RequestParts, SigningParams, presign, sha256_hex,
    sign_headers, verify,
};

/// The server's clock for every input: 2015-08-30T12:36:00Z, the date of AWS's test suite.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_440_938_160).expect("fixed time is in range")
}

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Every key is known except `UNKNOWN`, so most inputs get as far as the signature check.
fn secret_for(id: &str) -> Option<String> {
    (id != "UNKNOWN").then(|| format!("{SECRET}{id}"))
}

#[derive(Debug, Arbitrary)]
enum Input {
    Raw(Raw),
    Shaped(Shaped),
    RoundTrip(RoundTrip),
}

#[derive(Debug, Arbitrary)]
struct Raw {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body_sha256_hex: String,
}

#[derive(Debug, Arbitrary)]
struct Shaped {
    raw: Raw,
    presigned: bool,
    access_key_id: String,
    /// Seconds from the server's clock; the date is written in the scope and `x-amz-date`.
    skew_secs: i32,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
    expires: String,
    /// When set, the scope date is this string rather than the request's date.
    scope_date: Option<String>,
}

#[derive(Debug, Arbitrary)]
struct RoundTrip {
    presigned: bool,
    method: String,
    path: String,
    query: String,
    host: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    access_key_id: String,
    region: String,
    service: String,
    /// Seconds from the server's clock, folded into the accepted 15 minutes either way.
    skew_secs: i16,
    expires_secs: u32,
    tampered_method: String,
    tampered_body: Vec<u8>,
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(raw) => verify_raw(&raw),
        Input::Shaped(shaped) => verify_shaped(shaped),
        Input::RoundTrip(rt) => round_trip(rt),
    }
});

fn verify_raw(raw: &Raw) {
    let req = RequestParts {
        method: &raw.method,
        path: &raw.path,
        query: &raw.query,
        headers: &raw.headers,
    };
    if let Err(e) = verify(&req, &raw.body_sha256_hex, now(), secret_for) {
        // The error is turned into an answer on every failed request: that must not panic either.
        let _ = (e.aws_error_code(), e.http_status(), e.aws_message());
        let _ = (e.s3_error_code(), e.s3_http_status(), e.to_string());
    }
}

fn basic_date(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn verify_shaped(s: Shaped) {
    let Shaped { mut raw, .. } = s;
    let time = now() + Duration::seconds(i64::from(s.skew_secs));
    let amz_date = basic_date(time);
    let scope_date = s
        .scope_date
        .unwrap_or_else(|| amz_date.get(..8).unwrap_or_default().to_owned());
    let credential = format!(
        "{}/{scope_date}/{}/{}/aws4_request",
        s.access_key_id, s.region, s.service
    );
    let signed = s.signed_headers.join(";");
    if s.presigned {
        let enc = |v: &str| {
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let presigned = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={}&X-Amz-Expires={}\
             &X-Amz-SignedHeaders={}&X-Amz-Signature={}",
            enc(&credential),
            enc(&amz_date),
            enc(&s.expires),
            enc(&signed),
            enc(&s.signature)
        );
        raw.query = if raw.query.is_empty() {
            presigned
        } else {
            format!("{}&{presigned}", raw.query)
        };
    } else {
        raw.headers.push((
            "Authorization".to_owned(),
            format!(
                "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={}",
                s.signature
            ),
        ));
        raw.headers.push(("X-Amz-Date".to_owned(), amz_date));
    }
    verify_raw(&raw);
}

/// An HTTP token (methods and header names).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Bytes an HTTP/1.1 request line or header value can carry (visible ASCII, space, tab).
fn is_wire_text(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// Query parameter names, decoded as the verifier decodes them.
fn query_names(query: &str) -> impl Iterator<Item = Vec<u8>> + '_ {
    query.split('&').map(|pair| {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        let spaced: Vec<u8> = name
            .bytes()
            .map(|b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_decode(&spaced).collect()
    })
}

/// Whether a request is one a client could send and mean: anything else is no round trip.
fn is_valid(rt: &RoundTrip) -> bool {
    let presign_names: [&[u8]; 6] = [
        b"X-Amz-Algorithm",
        b"X-Amz-Credential",
        b"X-Amz-Date",
        b"X-Amz-Expires",
        b"X-Amz-SignedHeaders",
        b"X-Amz-Signature",
    ];
    is_token(&rt.method)
        && rt.path.starts_with('/')
        && is_wire_text(&rt.path)
        && !rt.path.contains(['?', '#', ' ', '\t'])
        && is_wire_text(&rt.query)
        && !rt.query.contains(['#', ' ', '\t'])
        // A query naming presigned parameters is itself a (different) authentication attempt.
        && !query_names(&rt.query).any(|n| presign_names.contains(&n.as_slice()))
        && is_wire_text(&rt.host)
        && rt
            .headers
            .iter()
            .all(|(n, v)| is_token(n) && is_wire_text(v))
}

fn round_trip(rt: RoundTrip) {
    if !is_valid(&rt) {
        return;
    }
    let creds = Credentials::new(rt.access_key_id.clone(), "");
    let Some(secret) = secret_for(&creds.access_key_id) else {
        return;
    };
    let creds = Credentials::new(rt.access_key_id.clone(), secret);
    let time = now() + Duration::seconds(i64::from(rt.skew_secs) % 900);
    let params = SigningParams {
        credentials: &creds,
        region: &rt.region,
        service: &rt.service,
        time,
    };
    // The signer replaces these (and the request must not carry a second authentication).
    let mut headers: Vec<(String, String)> = rt
        .headers
        .iter()
        .filter(|(n, _)| {
            ![
                "authorization",
                "x-amz-date",
                "x-amz-content-sha256",
                "host",
            ]
            .iter()
            .any(|r| n.eq_ignore_ascii_case(r))
        })
        .cloned()
        .collect();
    headers.push(("host".to_owned(), rt.host.clone()));

    let (query, body): (String, &[u8]) = if rt.presigned {
        let expires = rt.expires_secs % MAX_PRESIGN_EXPIRES_SECS + 1;
        // A request time up to 15 minutes ahead of the clock is fine; an expired link is not.
        let expires = expires.max(900);
        let req = RequestParts {
            method: &rt.method,
            path: &rt.path,
            query: &rt.query,
            headers: &headers,
        };
        let Ok(added) = presign(&req, expires, &params) else {
            return;
        };
        let query = if rt.query.is_empty() {
            added
        } else {
            format!("{}&{added}", rt.query)
        };
        // A presigned link stands for a request without a body.
        (query, &[])
    } else {
        let req = RequestParts {
            method: &rt.method,
            path: &rt.path,
            query: &rt.query,
            headers: &headers,
        };
        let Ok(added) = sign_headers(&req, &rt.body, &params) else {
            return;
        };
        headers.extend(added);
        (rt.query.clone(), &rt.body)
    };

    let req = RequestParts {
        method: &rt.method,
        path: &rt.path,
        query: &query,
        headers: &headers,
    };
    let body_hash = sha256_hex(body);
    let verified = match verify(&req, &body_hash, now(), secret_for) {
        Ok(v) => v,
        Err(e) => panic!("a request signed with a known key does not verify: {e}\n{e:?}"),
    };
    assert_eq!(verified.access_key_id, rt.access_key_id);
    assert_eq!(verified.region, rt.region);
    assert_eq!(verified.service, rt.service);
    assert_eq!(verified.presigned, rt.presigned);
    if !rt.presigned {
        assert_eq!(verified.payload_hash, body_hash);
    }

    if is_token(&rt.tampered_method) && rt.tampered_method != rt.method {
        let tampered = RequestParts {
            method: &rt.tampered_method,
            ..req
        };
        assert!(
            verify(&tampered, &body_hash, now(), secret_for).is_err(),
            "a request verifies with another method than the one signed"
        );
    }
    if !rt.presigned && rt.tampered_body != rt.body {
        assert!(
            verify(&req, &sha256_hex(&rt.tampered_body), now(), secret_for).is_err(),
            "a header-signed request verifies with another body than the one signed"
        );
    }
}
