//! Function URLs' payload format 2.0, both ways (the first input byte chooses, so that JSON seeds
//! for the answer side are plain files behind one zero byte):
//! - `interpret_answer` reads what a function returned (the function is the tenant's code, so its
//!   answer is hostile to the front door): never panics, and any answer it accepts has an HTTP
//!   status;
//! - `request_event` turns a request from anyone on the network into the function's event: never
//!   panics, and always yields a JSON object.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use updraft_api::payload_v2::{HttpRequest, IamCaller, interpret_answer, request_event};

#[derive(Debug, Arbitrary)]
struct Request<'a> {
    method: &'a str,
    raw_path: &'a str,
    raw_query: &'a str,
    /// Raw header names and values; those HTTP cannot carry are left out, as hyper would refuse them.
    headers: Vec<(&'a [u8], &'a [u8])>,
    body: &'a [u8],
    source_ip: &'a str,
    url_id: &'a str,
    domain_name: &'a str,
    request_id: &'a str,
    iam: Option<(String, String)>,
    unix_time: i64,
}

fuzz_target!(|data: &[u8]| match data.split_first() {
    None => {}
    Some((0, payload)) => {
        if let Ok(a) = interpret_answer(payload) {
            assert!((100..=599).contains(&a.status), "status {}", a.status);
        }
    }
    Some((_, rest)) => {
        let Ok(r) = Request::arbitrary_take_rest(Unstructured::new(rest)) else {
            return;
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &r.headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                headers.append(n, v);
            }
        }
        let iam = r.iam.map(|(access_key, account_id)| IamCaller {
            access_key,
            account_id,
        });
        let time = time::OffsetDateTime::from_unix_timestamp(r.unix_time)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let event = request_event(&HttpRequest {
            method: r.method,
            raw_path: r.raw_path,
            raw_query: r.raw_query,
            headers: &headers,
            body: r.body,
            source_ip: r.source_ip,
            url_id: r.url_id,
            domain_name: r.domain_name,
            request_id: r.request_id,
            iam: iam.as_ref(),
            time,
        });
        assert!(event.is_object());
    }
});
