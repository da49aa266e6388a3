//! The queue service's domain types: a queue's settings, a message and its attributes, and the
//! checks SQS applies to them (names, attribute ranges, allowed characters, sizes).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::QueueError;

/// Largest message (body plus attributes) any queue accepts, and the default.
pub const MAX_MESSAGE_SIZE: u64 = 1024 * 1024;

/// One message attribute (user-set or system).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrValue {
    /// `String`, `Number` or `Binary`, optionally followed by `.` and a custom label.
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<Vec<u8>>,
}

impl AttrValue {
    /// Bytes the attribute counts towards the message size (name, type and value).
    pub fn size(&self, name: &str) -> usize {
        name.len()
            + self.data_type.len()
            + self.string.as_ref().map_or(0, |s| s.len())
            + self.binary.as_ref().map_or(0, |b| b.len())
    }

    /// Checks the attribute as SQS does.
    pub fn validate(&self, name: &str) -> Result<(), QueueError> {
        let bad = |why: &str| {
            Err(QueueError::InvalidParameterValue(format!(
                "Message (user) attribute '{name}' {why}"
            )))
        };
        if name.is_empty()
            || name.len() > 256
            || name.starts_with('.')
            || name.ends_with('.')
            || name.contains("..")
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(QueueError::InvalidParameterValue(format!(
                "Message (user) attribute name '{name}' is invalid."
            )));
        }
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("aws.") || lower.starts_with("amazon.") {
            return Err(QueueError::InvalidParameterValue(format!(
                "Message (user) attribute name '{name}' is reserved for use by AWS."
            )));
        }
        let base = self.data_type.split('.').next().unwrap_or("");
        match base {
            "String" | "Number" => {
                let Some(s) = &self.string else {
                    return bad(
                        "must contain a non-empty value of message attribute type 'String'.",
                    );
                };
                if s.is_empty() {
                    return bad(
                        "must contain a non-empty value of message attribute type 'String'.",
                    );
                }
                if self.binary.is_some() {
                    return bad("has both StringValue and BinaryValue.");
                }
                check_chars(s).map_err(|_| {
                    QueueError::InvalidParameterValue(format!(
                        "Message (user) attribute '{name}' value contains invalid characters."
                    ))
                })?;
                if base == "Number" && !is_number(s) {
                    return bad(&format!("has value '{s}' that is not a valid number."));
                }
                Ok(())
            }
            "Binary" => match &self.binary {
                Some(b) if !b.is_empty() && self.string.is_none() => Ok(()),
                _ => bad("must contain a non-empty value of message attribute type 'Binary'."),
            },
            _ => Err(QueueError::InvalidParameterValue(format!(
                "The type of message (user) attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
            ))),
        }
    }
}

fn is_number(s: &str) -> bool {
    let t = s.trim_start_matches(['-', '+']);
    !t.is_empty() && t.len() <= 40 && t.parse::<f64>().is_ok_and(f64::is_finite)
}

/// Checks a text against SQS's allowed characters (`#x9 | #xA | #xD | #x20-#xD7FF |
/// #xE000-#xFFFD | #x10000-#x10FFFF`).
pub fn check_chars(s: &str) -> Result<(), QueueError> {
    for c in s.chars() {
        let u = c as u32;
        let ok =
            matches!(u, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
        if !ok {
            return Err(QueueError::InvalidMessageContents(format!(
                "Invalid binary character '#x{u:X}' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"
            )));
        }
    }
    Ok(())
}

/// A queue's redrive policy (dead-letter queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    pub dead_letter_target_arn: String,
    pub max_receive_count: u32,
}

/// A queue's settings, parsed from its attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QueueConfig {
    /// Attributes as set (names → values); defaults fill in the rest when read.
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub created: u64,
    pub modified: u64,
}

/// Attributes a queue can be created or updated with, and their defaults.
const SETTABLE: &[(&str, Option<&str>)] = &[
    ("DelaySeconds", Some("0")),
    ("MaximumMessageSize", Some("1048576")),
    ("MessageRetentionPeriod", Some("345600")),
    ("ReceiveMessageWaitTimeSeconds", Some("0")),
    ("VisibilityTimeout", Some("30")),
    ("Policy", None),
    ("RedrivePolicy", None),
    ("RedriveAllowPolicy", None),
    ("KmsMasterKeyId", None),
    ("KmsDataKeyReusePeriodSeconds", None),
    ("SqsManagedSseEnabled", None),
    ("FifoQueue", None),
    ("ContentBasedDeduplication", None),
    ("DeduplicationScope", None),
    ("FifoThroughputLimit", None),
];

/// Attributes only FIFO queues have.
const FIFO_ONLY: &[&str] = &[
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// Read-only attributes GetQueueAttributes also knows.
pub const COMPUTED: &[&str] = &[
    "QueueArn",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
];

/// Whether `name` is a queue attribute (settable or read-only).
pub fn is_attribute_name(name: &str) -> bool {
    name == "All" || SETTABLE.iter().any(|(n, _)| *n == name) || COMPUTED.contains(&name)
}

/// Checks a queue name (80 characters of `[A-Za-z0-9_-]`, `.fifo` for FIFO queues).
pub fn check_queue_name(name: &str, fifo: bool) -> Result<(), QueueError> {
    let stem = name.strip_suffix(".fifo").unwrap_or(name);
    let ok = !stem.is_empty()
        && name.len() <= 80
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(QueueError::InvalidParameterValue(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
                .into(),
        ));
    }
    if fifo != name.ends_with(".fifo") {
        return Err(QueueError::InvalidParameterValue(
            "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length."
                .into(),
        ));
    }
    Ok(())
}

fn bad_value(name: &str) -> QueueError {
    QueueError::InvalidAttributeValue(format!("Invalid value for the parameter {name}."))
}

fn int_in(name: &str, v: &str, lo: u64, hi: u64) -> Result<(), QueueError> {
    match v.trim().parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(()),
        _ => Err(bad_value(name)),
    }
}

fn boolean(name: &str, v: &str) -> Result<(), QueueError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "false" => Ok(()),
        _ => Err(bad_value(name)),
    }
}

/// Checks one attribute being set on a queue (FIFO or not).
pub fn check_attribute(
    name: &str,
    value: &str,
    fifo: bool,
    creating: bool,
) -> Result<(), QueueError> {
    if !SETTABLE.iter().any(|(n, _)| *n == name) {
        return Err(QueueError::InvalidAttributeName(name.to_string()));
    }
    if FIFO_ONLY.contains(&name) && !fifo {
        return Err(QueueError::InvalidAttributeName(name.to_string()));
    }
    match name {
        "DelaySeconds" => int_in(name, value, 0, 900),
        "MaximumMessageSize" => int_in(name, value, 1024, MAX_MESSAGE_SIZE),
        "MessageRetentionPeriod" => int_in(name, value, 60, 1_209_600),
        "ReceiveMessageWaitTimeSeconds" => int_in(name, value, 0, 20),
        "VisibilityTimeout" => int_in(name, value, 0, 43_200),
        "KmsDataKeyReusePeriodSeconds" => int_in(name, value, 60, 86_400),
        "SqsManagedSseEnabled" | "ContentBasedDeduplication" => boolean(name, value),
        "FifoQueue" => {
            if !creating {
                return Err(bad_value(name));
            }
            boolean(name, value)?;
            if value.eq_ignore_ascii_case("false") && fifo {
                return Err(bad_value(name));
            }
            Ok(())
        }
        "DeduplicationScope" => match value {
            "messageGroup" | "queue" => Ok(()),
            _ => Err(bad_value(name)),
        },
        "FifoThroughputLimit" => match value {
            "perQueue" | "perMessageGroupId" => Ok(()),
            _ => Err(bad_value(name)),
        },
        "RedrivePolicy" => {
            if value.is_empty() {
                return Ok(());
            }
            parse_redrive(value).map(|_| ())
        }
        "RedriveAllowPolicy" => {
            if value.is_empty() {
                return Ok(());
            }
            let v: serde_json::Value = serde_json::from_str(value).map_err(|_| bad_value(name))?;
            match v.get("redrivePermission").and_then(|p| p.as_str()) {
                Some("allowAll" | "denyAll") => Ok(()),
                Some("byQueue") => match v.get("sourceQueueArns").and_then(|a| a.as_array()) {
                    Some(a)
                        if !a.is_empty() && a.len() <= 10 && a.iter().all(|x| x.is_string()) =>
                    {
                        Ok(())
                    }
                    _ => Err(bad_value(name)),
                },
                _ => Err(bad_value(name)),
            }
        }
        "Policy" => {
            if value.is_empty() {
                return Ok(());
            }
            serde_json::from_str::<serde_json::Value>(value)
                .map(|_| ())
                .map_err(|_| bad_value(name))
        }
        _ => Ok(()),
    }
}

/// Parses a `RedrivePolicy` document.
pub fn parse_redrive(value: &str) -> Result<Redrive, QueueError> {
    let v: serde_json::Value =
        serde_json::from_str(value).map_err(|_| bad_value("RedrivePolicy"))?;
    let arn = v
        .get("deadLetterTargetArn")
        .and_then(|a| a.as_str())
        .ok_or_else(|| {
            QueueError::InvalidParameterValue(
                "Value {} for parameter RedrivePolicy is invalid. Reason: Redrive policy is not a valid JSON map.".into(),
            )
        })?;
    let count = match v.get("maxReceiveCount") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let Some(count) = count.filter(|c| (1..=1000).contains(c)) else {
        return Err(QueueError::InvalidParameterValue(format!(
            "Value {value} for parameter RedrivePolicy is invalid. Reason: Invalid value for maxReceiveCount: {}, valid values are from 1 to 1000 both inclusive.",
            v.get("maxReceiveCount")
                .map(|c| c.to_string())
                .unwrap_or_default()
        )));
    };
    if parse_arn(arn).is_none() {
        return Err(QueueError::InvalidParameterValue(format!(
            "Value {value} for parameter RedrivePolicy is invalid. Reason: Invalid value for deadLetterTargetArn."
        )));
    }
    Ok(Redrive {
        dead_letter_target_arn: arn.to_string(),
        max_receive_count: count as u32,
    })
}

/// Splits `arn:aws:sqs:<region>:<account>:<name>` into (account, name).
pub fn parse_arn(arn: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[5].is_empty() {
        return None;
    }
    Some((parts[4].to_string(), parts[5].to_string()))
}

impl QueueConfig {
    /// A setting as a number, its default when unset.
    pub fn num(&self, name: &str) -> u64 {
        self.get(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// A setting's value, its default when unset.
    pub fn get(&self, name: &str) -> Option<String> {
        if let Some(v) = self.attributes.get(name) {
            return Some(v.clone());
        }
        SETTABLE
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, d)| d.map(str::to_string))
    }

    pub fn fifo(&self) -> bool {
        self.attributes
            .get("FifoQueue")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn content_dedup(&self) -> bool {
        self.attributes
            .get("ContentBasedDeduplication")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn redrive(&self) -> Option<Redrive> {
        self.attributes
            .get("RedrivePolicy")
            .filter(|v| !v.is_empty())
            .and_then(|v| parse_redrive(v).ok())
    }

    /// Every settable attribute that has a value (set or default).
    pub fn effective(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (n, _) in SETTABLE {
            if let Some(v) = self.get(n) {
                out.insert(n.to_string(), v);
            }
        }
        if self.fifo() {
            out.entry("ContentBasedDeduplication".into())
                .or_insert_with(|| "false".into());
            out.entry("DeduplicationScope".into())
                .or_insert_with(|| "queue".into());
            out.entry("FifoThroughputLimit".into())
                .or_insert_with(|| "perQueue".into());
        }
        out
    }
}

/// The stored, unchanging part of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDoc {
    pub id: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, AttrValue>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub system_attributes: BTreeMap<String, AttrValue>,
    /// Milliseconds since the epoch.
    pub sent: u64,
    pub sender_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_id: Option<String>,
    /// The ARN of the queue a dead-lettered message came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_source: Option<String>,
}

/// The part of a message a receive changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageState {
    /// Milliseconds since the epoch at which the message may be received.
    pub visible_at: u64,
    pub receive_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_receive: Option<u64>,
    /// The token the current receipt handle carries (hex); `None` before any receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_characters() {
        assert!(check_chars("tab\there, emoji 🎉, \u{E000}").is_ok());
        let err = check_chars("nul \u{0}").unwrap_err();
        assert_eq!(err.wire().shape, "InvalidMessageContents");
        assert!(check_chars("\u{FFFE}").is_err());
        assert!(check_chars("\u{1F}").is_err());
    }

    #[test]
    fn attribute_ranges() {
        assert!(check_attribute("VisibilityTimeout", "43200", false, true).is_ok());
        assert!(check_attribute("VisibilityTimeout", "43201", false, true).is_err());
        assert!(check_attribute("MaximumMessageSize", "1048577", false, true).is_err());
        assert!(check_attribute("ContentBasedDeduplication", "true", false, true).is_err());
        assert!(check_attribute("ContentBasedDeduplication", "true", true, true).is_ok());
        assert!(check_attribute("FifoQueue", "true", true, false).is_err());
        assert_eq!(
            check_attribute("Bogus", "1", false, true).unwrap_err(),
            QueueError::InvalidAttributeName("Bogus".into())
        );
    }

    #[test]
    fn redrive_policy() {
        let r = parse_redrive(
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:111122223333:dlq","maxReceiveCount":"3"}"#,
        )
        .unwrap();
        assert_eq!(r.max_receive_count, 3);
        assert!(
            parse_redrive(
                r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:d","maxReceiveCount":0}"#
            )
            .is_err()
        );
        assert!(parse_redrive(r#"{"maxReceiveCount":2}"#).is_err());
    }

    #[test]
    fn attribute_types() {
        let v = |t: &str, s: Option<&str>| AttrValue {
            data_type: t.into(),
            string: s.map(str::to_string),
            binary: None,
        };
        assert!(v("Number", Some("12.5")).validate("n").is_ok());
        assert!(v("Number.int", Some("-3")).validate("n").is_ok());
        assert!(v("Number", Some("abc")).validate("n").is_err());
        assert!(v("Blob", Some("x")).validate("n").is_err());
        assert!(v("String", Some("")).validate("n").is_err());
        assert!(v("String", Some("x")).validate("AWS.thing").is_err());
        assert!(v("Binary", None).validate("b").is_err());
    }

    #[test]
    fn queue_names() {
        assert!(check_queue_name("orders-1_x", false).is_ok());
        assert!(check_queue_name("orders.fifo", true).is_ok());
        assert!(check_queue_name("orders.fifo", false).is_err());
        assert!(check_queue_name("orders", true).is_err());
        assert!(check_queue_name("bad name", false).is_err());
        assert!(check_queue_name(&"a".repeat(81), false).is_err());
    }
}
