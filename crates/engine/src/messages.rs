//! Texts the platform produces when a function fails, worded exactly as Lambda words them, so that
//! clients and tests written against Lambda see the same payloads and log lines.

use std::time::SystemTime;

use bytes::Bytes;
use updraft_sandbox::ExitInfo;

#[cfg(test)]
use crate::runtime_api::MAX_PAYLOAD_BYTES;

/// A JSON object with string members in the given order.
pub(crate) fn error_json(members: &[(&str, &str)]) -> Bytes {
    let mut out = String::from("{");
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_string(k));
        out.push(':');
        out.push_str(&json_string(v));
    }
    out.push('}');
    Bytes::from(out)
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// `2019-05-23T18:03:52.467Z`: UTC with milliseconds, as Lambda stamps platform messages.
pub(crate) fn rfc3339_millis(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    dt.format(&fmt).unwrap_or_default()
}

/// `Task timed out after 3.00 seconds` preceded by the time and the request id: both the log line
/// and the `errorMessage` of the payload returned for a timed-out invocation.
pub(crate) fn timeout_message(at: SystemTime, request_id: &str, timeout_s: u32) -> String {
    format!(
        "{} {request_id} Task timed out after {:.2} seconds",
        rfc3339_millis(at),
        f64::from(timeout_s)
    )
}

/// Payload of a timed-out invocation.
pub(crate) fn timeout_payload(message: &str) -> Bytes {
    error_json(&[("errorMessage", message)])
}

/// How a process ended, in the words Go's `os.ProcessState` uses (Lambda's platform is written in
/// Go): `exit status 1`, `signal: killed`, `signal: segmentation fault`.
pub(crate) fn describe_exit(info: &ExitInfo) -> String {
    if let Some(sig) = info.signal {
        return format!("signal: {}", signal_name(sig));
    }
    match info.code {
        Some(code) => format!("exit status {code}"),
        None => "exit status unknown".to_string(),
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        1 => "hangup".into(),
        2 => "interrupt".into(),
        3 => "quit".into(),
        4 => "illegal instruction".into(),
        5 => "trace/breakpoint trap".into(),
        6 => "aborted".into(),
        7 => "bus error".into(),
        8 => "floating point exception".into(),
        9 => "killed".into(),
        10 => "user defined signal 1".into(),
        11 => "segmentation fault".into(),
        12 => "user defined signal 2".into(),
        13 => "broken pipe".into(),
        14 => "alarm clock".into(),
        15 => "terminated".into(),
        n => format!("signal {n}"),
    }
}

/// Error type of an environment out of memory, from the cgroup or from the runtime itself.
pub(crate) const OUT_OF_MEMORY: &str = "Runtime.OutOfMemory";

/// Payload of an invocation whose runtime exited: `Runtime.ExitError`, or `Runtime.OutOfMemory`
/// when the environment's memory limit killed it (as Lambda reports it).
pub(crate) fn exit_payload(request_id: &str, info: &ExitInfo, oom: bool) -> (Bytes, &'static str) {
    let error_type = if oom {
        OUT_OF_MEMORY
    } else {
        "Runtime.ExitError"
    };
    let message = format!(
        "RequestId: {request_id} Error: Runtime exited with error: {}",
        describe_exit(info)
    );
    (
        error_json(&[("errorType", error_type), ("errorMessage", &message)]),
        error_type,
    )
}

/// Payload of an invocation whose runtime did not finish its init phase in time.
pub(crate) fn init_timeout_payload(request_id: &str, limit_s: f64) -> Bytes {
    let message = format!(
        "RequestId: {request_id} Error: Runtime failed to initialize within {limit_s:.2} seconds"
    );
    error_json(&[
        ("errorType", "Runtime.InitError"),
        ("errorMessage", &message),
    ])
}

/// Error type of a response that exceeded [`crate::MAX_PAYLOAD_BYTES`].
pub(crate) const RESPONSE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";

/// Payload of an invocation whose response exceeded [`crate::MAX_PAYLOAD_BYTES`].
#[cfg(test)]
pub(crate) fn response_too_large_payload() -> Bytes {
    response_too_large_payload_of(MAX_PAYLOAD_BYTES)
}

/// Payload of an invocation whose response exceeded `limit` bytes (6 MB buffered, 20 MiB
/// streamed).
pub(crate) fn response_too_large_payload_of(limit: usize) -> Bytes {
    let message =
        format!("Response payload size exceeded maximum allowed payload size ({limit} bytes).");
    error_json(&[
        ("errorMessage", &message),
        ("errorType", RESPONSE_TOO_LARGE),
    ])
}

/// The body a runtime posted to `/error` or `/init/error`, or a minimal one in Lambda's shape when
/// the runtime posted none.
pub(crate) fn posted_error_body(body: Bytes, error_type: Option<&str>) -> Bytes {
    if body.iter().all(u8::is_ascii_whitespace) {
        error_json(&[
            ("errorMessage", ""),
            ("errorType", error_type.unwrap_or("Runtime.Unknown")),
        ])
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timeout_message_matches_lambda() {
        let at = UNIX_EPOCH + Duration::from_millis(1_558_634_632_467);
        assert_eq!(
            timeout_message(at, "4d1f6c0e-0000-4000-8000-000000000000", 3),
            "2019-05-23T18:03:52.467Z 4d1f6c0e-0000-4000-8000-000000000000 Task timed out after 3.00 seconds"
        );
        assert_eq!(
            &timeout_payload("x \"y\"")[..],
            br#"{"errorMessage":"x \"y\""}"#
        );
    }

    #[test]
    fn exit_descriptions_follow_go() {
        let code = ExitInfo {
            code: Some(1),
            signal: None,
        };
        assert_eq!(describe_exit(&code), "exit status 1");
        let killed = ExitInfo {
            code: None,
            signal: Some(9),
        };
        assert_eq!(describe_exit(&killed), "signal: killed");
        let segv = ExitInfo {
            code: None,
            signal: Some(11),
        };
        assert_eq!(describe_exit(&segv), "signal: segmentation fault");
        let (p, t) = exit_payload("r1", &code, false);
        assert_eq!(t, "Runtime.ExitError");
        assert_eq!(
            &p[..],
            br#"{"errorType":"Runtime.ExitError","errorMessage":"RequestId: r1 Error: Runtime exited with error: exit status 1"}"#
        );
        let (p, t) = exit_payload("r2", &killed, true);
        assert_eq!(t, "Runtime.OutOfMemory");
        assert!(std::str::from_utf8(&p).unwrap().contains("signal: killed"));
    }

    #[test]
    fn response_too_large_matches_lambda() {
        assert_eq!(
            &response_too_large_payload()[..],
            br#"{"errorMessage":"Response payload size exceeded maximum allowed payload size (6291556 bytes).","errorType":"Function.ResponseSizeTooLarge"}"#
        );
    }

    #[test]
    fn empty_error_bodies_get_a_shape() {
        let b = posted_error_body(Bytes::new(), Some("Custom.Err"));
        assert_eq!(&b[..], br#"{"errorMessage":"","errorType":"Custom.Err"}"#);
        let given = Bytes::from_static(b"{\"errorType\":\"X\"}");
        assert_eq!(posted_error_body(given.clone(), None), given);
    }
}
