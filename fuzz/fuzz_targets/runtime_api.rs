//! The engine's Runtime API, which the function's own processes call from inside the sandbox: the
//! routing of a request head (method, path, headers) with the very function the server uses, and
//! the decoding of the error trailers of a streamed response. Must never panic, and a route must
//! name an invocation id that is a single non-empty path segment of the request.
#![no_main]

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use updraft_engine::{RuntimeRoute, runtime_route, trailer_error};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    method: &'a [u8],
    path: &'a str,
    /// Raw header names and values; those HTTP cannot carry are left out, as hyper would refuse them.
    headers: Vec<(&'a [u8], &'a [u8])>,
    trailers: Vec<(&'a [u8], &'a [u8])>,
}

fn header_map(raw: &[(&[u8], &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in raw {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    map
}

fuzz_target!(|input: Input| {
    let headers = header_map(&input.headers);
    if let Ok(method) = Method::from_bytes(input.method) {
        match runtime_route(&method, input.path, &headers) {
            Ok(RuntimeRoute::Response { id, .. }) | Ok(RuntimeRoute::Error(id)) => {
                assert!(!id.is_empty() && !id.contains('/'), "id {id:?}");
                assert!(input.path.contains(&format!("/{id}/")), "id {id:?}");
            }
            Ok(RuntimeRoute::Next) => assert_eq!(method, Method::GET),
            Ok(RuntimeRoute::InitError) => assert_eq!(method, Method::POST),
            Err(status) => assert!(status.is_client_error(), "status {status}"),
        }
    }
    if let Some(e) = trailer_error(&header_map(&input.trailers)) {
        assert!(!e.body.is_empty(), "an error with an empty body");
    }
});
