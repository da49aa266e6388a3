//! The canonical request: the one byte string both sides hash, so every rule here must agree with
//! what AWS SDKs (botocore, the Go, JavaScript and Java SDKs) compute for the same request.

use std::collections::BTreeMap;

use percent_encoding::percent_decode;

/// How the path becomes the canonical URI. Chosen from the service in the credential scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEncoding {
    /// Every service except S3: remove `.`/`..` and empty segments, then URI-encode the (already
    /// encoded) wire path once more, so `%3A` on the wire becomes `%253A`.
    Double,
    /// S3: the path encoded once and not normalised. Valid `%XX` escapes on the wire are kept as they
    /// are; any other byte outside the unreserved set is encoded.
    Single,
}

impl PathEncoding {
    pub fn for_service(service: &str) -> Self {
        if service == "s3" {
            PathEncoding::Single
        } else {
            PathEncoding::Double
        }
    }
}

/// RFC 3986 unreserved characters, the only bytes SigV4 leaves unencoded.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn push_encoded(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0f)]));
}

/// Encodes every byte outside the unreserved set (and outside `keep`) as `%XX` with upper-case hex.
fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            push_encoded(&mut out, b);
        }
    }
    out
}

/// RFC 3986 dot-segment removal plus collapsing of empty segments, as AWS services expect:
/// `//a/./b/../c/` becomes `/a/c/`.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// The canonical URI of a wire path.
pub fn canonical_uri(path: &str, encoding: PathEncoding) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    match encoding {
        PathEncoding::Double => {
            let normalized = normalize_path(path);
            if normalized.is_empty() {
                return "/".to_owned();
            }
            uri_encode(normalized.as_bytes(), true)
        }
        PathEncoding::Single => {
            let bytes = path.as_bytes();
            let mut out = String::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                let b = bytes[i];
                if b == b'%'
                    && i + 2 < bytes.len()
                    && bytes[i + 1].is_ascii_hexdigit()
                    && bytes[i + 2].is_ascii_hexdigit()
                {
                    out.push_str(&path[i..i + 3]);
                    i += 3;
                    continue;
                }
                if is_unreserved(b) || b == b'/' {
                    out.push(char::from(b));
                } else {
                    push_encoded(&mut out, b);
                }
                i += 1;
            }
            out
        }
    }
}

/// Decodes one query component: `%XX` escapes and `+` as a space (as form encoding and the Go SDK do).
/// Malformed escapes stay literal.
fn decode_query_component(s: &str) -> Vec<u8> {
    let plus_as_space: Vec<u8> = s
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&plus_as_space).collect()
}

/// A decoded query parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryParam {
    pub(crate) name: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

impl QueryParam {
    pub(crate) fn name_is(&self, name: &str) -> bool {
        self.name == name.as_bytes()
    }
}

/// Splits a raw query string into decoded parameters in order; empty `&&` pieces are skipped and a
/// name without `=` has an empty value.
pub(crate) fn parse_query(raw: &str) -> Vec<QueryParam> {
    raw.split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            QueryParam {
                name: decode_query_component(name),
                value: decode_query_component(value),
            }
        })
        .collect()
}

/// The canonical query string: each name and value re-encoded with the unreserved set, sorted by name
/// and then by value, joined with `&`.
pub(crate) fn canonical_query<'a>(params: impl IntoIterator<Item = &'a QueryParam>) -> String {
    let mut encoded: Vec<(String, String)> = params
        .into_iter()
        .map(|p| (uri_encode(&p.name, false), uri_encode(&p.value, false)))
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (name, value)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Encodes a query component for a URL the way the canonical query does, so what is sent is what was
/// signed.
pub(crate) fn encode_query_component(s: &str) -> String {
    uri_encode(s.as_bytes(), false)
}

/// Trims a header value and folds inner runs of whitespace into one space.
fn fold_header_value(value: &str) -> String {
    value.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// All values of a header (case-insensitive name), folded and joined with `,` in arrival order;
/// `None` when the header is absent.
pub(crate) fn header_value(headers: &[(String, String)], name: &str) -> Option<String> {
    let mut joined: Option<String> = None;
    for (n, v) in headers {
        if n.eq_ignore_ascii_case(name) {
            let folded = fold_header_value(v);
            match joined.as_mut() {
                Some(j) => {
                    j.push(',');
                    j.push_str(&folded);
                }
                None => joined = Some(folded),
            }
        }
    }
    joined
}

/// How many times a header occurs.
pub(crate) fn header_count(headers: &[(String, String)], name: &str) -> usize {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .count()
}

/// The canonical headers block: `name:value\n` for each signed name, in the order given. A signed header
/// missing from the request contributes an empty value, so the signature simply will not match.
pub(crate) fn canonical_headers(headers: &[(String, String)], signed: &[String]) -> String {
    let mut out = String::new();
    for name in signed {
        out.push_str(name);
        out.push(':');
        out.push_str(&header_value(headers, name).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// The lower-case names of `headers`, sorted and without repeats, skipping those `exclude` rejects.
pub(crate) fn sorted_header_names(
    headers: &[(String, String)],
    exclude: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut names: BTreeMap<String, ()> = BTreeMap::new();
    for (n, _) in headers {
        let lower = n.to_ascii_lowercase();
        if !exclude(&lower) {
            names.insert(lower, ());
        }
    }
    names.into_keys().collect()
}

/// The canonical request string: method, URI, query, headers, signed header list, payload hash.
pub(crate) fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_encoding_encodes_the_wire_path_again() {
        assert_eq!(
            canonical_uri(
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/invocations",
                PathEncoding::Double
            ),
            "/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-east-1%253A123456789012%253Afunction%253Af/invocations"
        );
        // A client that leaves ':' raw on the wire signs it encoded once.
        assert_eq!(
            canonical_uri("/functions/arn:aws:lambda", PathEncoding::Double),
            "/functions/arn%3Aaws%3Alambda"
        );
    }

    #[test]
    fn double_encoding_normalises() {
        for (path, want) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/./example", "/example"),
            ("//example//", "/example/"),
            ("/a/b/../c/./d/", "/a/c/d/"),
            ("/../a", "/a"),
        ] {
            assert_eq!(canonical_uri(path, PathEncoding::Double), want, "{path}");
        }
    }

    #[test]
    fn single_encoding_keeps_escapes_and_does_not_normalise() {
        assert_eq!(
            canonical_uri("/bucket/my%20code%3Av1.zip", PathEncoding::Single),
            "/bucket/my%20code%3Av1.zip"
        );
        assert_eq!(
            canonical_uri("/bucket//a/./b/../c", PathEncoding::Single),
            "/bucket//a/./b/../c"
        );
        assert_eq!(
            canonical_uri("/bucket/a b:c", PathEncoding::Single),
            "/bucket/a%20b%3Ac"
        );
        // A '%' that starts no escape is itself encoded.
        assert_eq!(
            canonical_uri("/bucket/100%/x%4", PathEncoding::Single),
            "/bucket/100%25/x%254"
        );
        assert_eq!(canonical_uri("", PathEncoding::Single), "/");
    }

    #[test]
    fn service_selects_encoding() {
        assert_eq!(PathEncoding::for_service("s3"), PathEncoding::Single);
        assert_eq!(PathEncoding::for_service("lambda"), PathEncoding::Double);
        assert_eq!(PathEncoding::for_service("S3"), PathEncoding::Double);
    }

    #[test]
    fn query_is_decoded_reencoded_and_sorted() {
        let params = parse_query("b=2&a=%7e&A=x+y&a=1&empty&&c=%2F%2f&d=a%20b");
        assert_eq!(
            canonical_query(&params),
            "A=x%20y&a=1&a=~&b=2&c=%2F%2F&d=a%20b&empty="
        );
    }

    #[test]
    fn query_sorts_by_name_before_value() {
        // Joined strings would put "Param-3=" before "Param=" ('-' < '='); names sort first.
        let params = parse_query("Param-3=Value3&Param=Value2&%E1%88%B4=Value1");
        assert_eq!(
            canonical_query(&params),
            "%E1%88%B4=Value1&Param=Value2&Param-3=Value3"
        );
    }

    #[test]
    fn query_encodes_reserved_characters() {
        let params = parse_query("k=%24LATEST&x=a/b:c");
        assert_eq!(canonical_query(&params), "k=%24LATEST&x=a%2Fb%3Ac");
        assert_eq!(canonical_query(&parse_query("")), "");
    }

    #[test]
    fn header_values_are_folded_and_joined() {
        let headers = vec![
            ("My-Header1".to_owned(), " value4 ".to_owned()),
            ("my-header1".to_owned(), "value1".to_owned()),
            ("My-Header2".to_owned(), "\"a   b \t c\"".to_owned()),
        ];
        assert_eq!(
            header_value(&headers, "my-header1").as_deref(),
            Some("value4,value1")
        );
        assert_eq!(
            header_value(&headers, "MY-HEADER2").as_deref(),
            Some("\"a b c\"")
        );
        assert_eq!(header_value(&headers, "absent"), None);
        assert_eq!(header_count(&headers, "my-header1"), 2);
        assert_eq!(
            canonical_headers(&headers, &["my-header1".to_owned(), "x".to_owned()]),
            "my-header1:value4,value1\nx:\n"
        );
    }

    #[test]
    fn header_names_sorted_without_repeats() {
        let headers = vec![
            ("X-Amz-Date".to_owned(), "d".to_owned()),
            ("Host".to_owned(), "h".to_owned()),
            ("host".to_owned(), "h".to_owned()),
            ("User-Agent".to_owned(), "u".to_owned()),
        ];
        assert_eq!(
            sorted_header_names(&headers, |n| n == "user-agent"),
            vec!["host".to_owned(), "x-amz-date".to_owned()]
        );
    }
}
