//! Where groups and streams live on disk, and the names CloudWatch Logs accepts.
//!
//! `<logs>/<account>/<group dir>/<stream file>`. A group named `/aws/lambda/<function>` lives in
//! the directory `<function>`: the layout the engine has always written, so `updraft logs` and
//! older data directories keep working. Every other group lives in `~<encoded name>`; function
//! names never contain `~`, so the two forms cannot collide. Stream files (and the encoded part
//! of a group directory) keep `A-Z a-z 0-9 . _ -` and write every other byte as `%XX`; a stream
//! file ends in `.log`. Both mappings are reversible, so the directory listing alone names every
//! group and stream.

/// The prefix of the groups Lambda writes.
pub const LAMBDA_PREFIX: &str = "/aws/lambda/";
/// A group's metadata file (creation time, retention); never a stream (no `.log`).
pub const GROUP_META: &str = ".group.json";

fn keep_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'
}

fn encode(s: &str, out: &mut String) {
    use std::fmt::Write;
    for &b in s.as_bytes() {
        if keep_byte(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn decode(enc: &str) -> Option<String> {
    let bytes = enc.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = enc.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if keep_byte(bytes[i]) {
            out.push(bytes[i]);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// A function name as Lambda allows it (and as the engine names a directory).
fn function_like(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 170
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `[\.\-_/#A-Za-z0-9]{1,512}`, CloudWatch's rule for group names.
pub fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/' | b'#'))
}

/// `[^:*]{1,512}`, CloudWatch's rule for stream names.
pub fn valid_stream_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 512 && !name.contains([':', '*'])
}

/// The directory (one path component) of group `name`.
pub fn group_dir(name: &str) -> String {
    if let Some(f) = name.strip_prefix(LAMBDA_PREFIX)
        && function_like(f)
    {
        return f.to_string();
    }
    let mut out = String::with_capacity(name.len() + 16);
    out.push('~');
    encode(name, &mut out);
    out
}

/// The group a directory holds, `None` for anything else.
pub fn group_name_from_dir(dir: &str) -> Option<String> {
    match dir.strip_prefix('~') {
        Some(enc) => decode(enc).filter(|n| valid_group_name(n)),
        None => function_like(dir).then(|| format!("{LAMBDA_PREFIX}{dir}")),
    }
}

/// The file of stream `name`.
pub fn stream_file(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 16);
    encode(name, &mut out);
    out.push_str(".log");
    out
}

/// The stream a file holds, `None` if it is not a stream file.
pub fn stream_name_from_file(file: &str) -> Option<String> {
    decode(file.strip_suffix(".log")?)
}

/// Twelve digits, as an account id is (and as a directory name must be).
pub fn valid_account(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_groups_keep_the_engine_layout() {
        assert_eq!(group_dir("/aws/lambda/my-fn_1"), "my-fn_1");
        assert_eq!(
            group_name_from_dir("my-fn_1").as_deref(),
            Some("/aws/lambda/my-fn_1")
        );
        assert_eq!(group_dir("/aws/lambda/a/b"), "~%2Faws%2Flambda%2Fa%2Fb");
        for g in ["app", "/custom/group#1", "/aws/lambda/x.y", "a..b"] {
            let d = group_dir(g);
            assert!(d.starts_with('~') && !d.contains('/'), "{d}");
            assert_eq!(group_name_from_dir(&d).as_deref(), Some(g));
        }
        assert_eq!(group_name_from_dir(".."), None);
        assert_eq!(group_name_from_dir("~%2"), None);
        assert_eq!(group_name_from_dir("~.."), Some("..".into()));
    }

    #[test]
    fn stream_files_round_trip_and_match_the_engine() {
        let s = "2024/05/01/[$LATEST]0123456789abcdef";
        assert_eq!(
            stream_file(s),
            "2024%2F05%2F01%2F%5B%24LATEST%5D0123456789abcdef.log"
        );
        assert_eq!(stream_name_from_file(&stream_file(s)).as_deref(), Some(s));
        assert_eq!(stream_name_from_file(GROUP_META), None);
        assert_eq!(stream_name_from_file("a/b.log"), None);
    }

    #[test]
    fn names() {
        assert!(valid_group_name("/aws/lambda/f"));
        assert!(!valid_group_name("a b"));
        assert!(!valid_group_name(""));
        assert!(valid_stream_name("2024/01/01/[$LATEST]ab"));
        assert!(!valid_stream_name("a:b"));
        assert!(valid_account("123456789012"));
        assert!(!valid_account("../12345678"));
    }
}
