//! The MD5 digests SQS returns with a message, so that clients can check what was stored.
//!
//! `MD5OfMessageAttributes` (and `MD5OfMessageSystemAttributes`) is MD5 over the attributes
//! sorted by name, each encoded as: name (4-byte big-endian length + UTF-8), data type (same),
//! a transport byte (1 for `String`/`Number` values, 2 for `Binary`), then the value (4-byte
//! length + bytes). This is the encoding the AWS SDKs recompute when they check an answer.

use md5::{Digest, Md5};

use crate::model::AttrValue;

/// Lower-case hex MD5 of a message body.
pub fn md5_of_body(body: &str) -> String {
    hex::encode(Md5::digest(body.as_bytes()))
}

/// Lower-case hex MD5 of message attributes; `None` when there are none.
pub fn md5_of_attributes<'a>(
    attrs: impl IntoIterator<Item = (&'a String, &'a AttrValue)>,
) -> Option<String> {
    let mut sorted: Vec<(&String, &AttrValue)> = attrs.into_iter().collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Md5::new();
    let field = |h: &mut Md5, bytes: &[u8]| {
        h.update((bytes.len() as u32).to_be_bytes());
        h.update(bytes);
    };
    for (name, v) in sorted {
        field(&mut h, name.as_bytes());
        field(&mut h, v.data_type.as_bytes());
        if let Some(b) = &v.binary {
            h.update([2u8]);
            field(&mut h, b);
        } else {
            h.update([1u8]);
            field(&mut h, v.string.as_deref().unwrap_or("").as_bytes());
        }
    }
    Some(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn s(t: &str, v: &str) -> AttrValue {
        AttrValue {
            data_type: t.into(),
            string: Some(v.into()),
            binary: None,
        }
    }

    /// The body digest of the `aws sqs send-message` example in the AWS CLI's documentation
    /// (shown there with its middle elided).
    #[test]
    fn body_digest_matches_the_aws_cli_example() {
        let body = md5_of_body("Information about the largest city in Any Region.");
        assert!(
            body.starts_with("51b0a325") && body.ends_with("39163aa0"),
            "{body}"
        );
    }

    /// A Number attribute, whose digest moto's SQS test suite checks against the same value.
    #[test]
    fn attribute_digest_of_a_number() {
        let mut attrs = BTreeMap::new();
        attrs.insert("timestamp".to_string(), s("Number", "1493147359900"));
        assert_eq!(
            md5_of_attributes(&attrs).as_deref(),
            Some("235c5c510d26fb653d073faed50ae77c")
        );
    }

    /// A binary attribute takes transport byte 2; a string of the same bytes another digest.
    #[test]
    fn binary_and_string_differ() {
        let mut a = BTreeMap::new();
        a.insert(
            "x".to_string(),
            AttrValue {
                data_type: "Binary".into(),
                string: None,
                binary: Some(b"v".to_vec()),
            },
        );
        let mut b = BTreeMap::new();
        b.insert("x".to_string(), s("Binary", "v"));
        assert_ne!(md5_of_attributes(&a), md5_of_attributes(&b));
    }

    #[test]
    fn order_of_insertion_does_not_matter_and_none_is_none() {
        let a = [
            ("b".to_string(), s("String", "2")),
            ("a".to_string(), s("String", "1")),
        ];
        let b = [
            ("a".to_string(), s("String", "1")),
            ("b".to_string(), s("String", "2")),
        ];
        assert_eq!(
            md5_of_attributes(a.iter().map(|(k, v)| (k, v))),
            md5_of_attributes(b.iter().map(|(k, v)| (k, v)))
        );
        assert_eq!(md5_of_attributes(std::iter::empty()), None);
    }
}
