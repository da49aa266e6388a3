//! The stored shapes of buses, rules and targets (JSON documents in the store), and ARNs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Name of the bus every account has.
pub const DEFAULT_BUS: &str = "default";

/// An event bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bus {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub created_ms: i64,
    pub modified_ms: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A rule with its targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub bus: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub event_pattern: Option<String>,
    #[serde(default)]
    pub schedule_expression: Option<String>,
    /// `ENABLED`, `DISABLED` or `ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`.
    pub state: String,
    #[serde(default)]
    pub role_arn: Option<String>,
    pub created_by: String,
    /// When the schedule was last set or enabled: `rate(…)` periods count from here, so a
    /// restart keeps the rhythm.
    pub anchor_ms: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub targets: Vec<Target>,
}

impl Rule {
    pub fn enabled(&self) -> bool {
        self.state != "DISABLED"
    }
}

/// A rule's target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub id: String,
    pub arn: String,
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub input_path: Option<String>,
    #[serde(default)]
    pub input_transformer: Option<InputTransformerDoc>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub max_age_secs: Option<u32>,
}

/// `InputTransformer` as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputTransformerDoc {
    #[serde(default)]
    pub paths: Vec<(String, String)>,
    pub template: String,
}

/// What kind of resource a target ARN names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// A Lambda function (possibly qualified).
    Function,
    /// An event bus: (account, bus name).
    Bus(String, String),
    /// An SQS queue: the event becomes one message.
    Queue,
    Other,
}

/// Classifies a target ARN.
pub fn target_kind(arn: &str) -> TargetKind {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "lambda", _, _, rest] if rest.starts_with("function:") => TargetKind::Function,
        ["arn", _, "sqs", _, acct, name] if acct.len() == 12 && !name.is_empty() => {
            TargetKind::Queue
        }
        ["arn", _, "events", _, acct, rest] => match rest.strip_prefix("event-bus/") {
            Some(name) => TargetKind::Bus(acct.to_string(), name.to_string()),
            None => TargetKind::Other,
        },
        _ => TargetKind::Other,
    }
}

pub fn bus_arn(region: &str, account: &str, bus: &str) -> String {
    format!("arn:aws:events:{region}:{account}:event-bus/{bus}")
}

pub fn rule_arn(region: &str, account: &str, bus: &str, rule: &str) -> String {
    if bus == DEFAULT_BUS {
        format!("arn:aws:events:{region}:{account}:rule/{rule}")
    } else {
        format!("arn:aws:events:{region}:{account}:rule/{bus}/{rule}")
    }
}

/// A resource an ARN of this service names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Bus {
        account: String,
        bus: String,
    },
    Rule {
        account: String,
        bus: String,
        rule: String,
    },
}

/// Parses a bus or rule ARN.
pub fn parse_arn(arn: &str) -> Option<Resource> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", _, "events", _, account, rest] = parts.as_slice() else {
        return None;
    };
    let account = account.to_string();
    if let Some(bus) = rest.strip_prefix("event-bus/") {
        return Some(Resource::Bus {
            account,
            bus: bus.to_string(),
        });
    }
    let r = rest.strip_prefix("rule/")?;
    Some(match r.split_once('/') {
        Some((bus, rule)) => Resource::Rule {
            account,
            bus: bus.to_string(),
            rule: rule.to_string(),
        },
        None => Resource::Rule {
            account,
            bus: DEFAULT_BUS.to_string(),
            rule: r.to_string(),
        },
    })
}

/// A bus given by name or ARN, as its name (and the account an ARN names).
pub fn bus_name(name_or_arn: &str) -> (Option<String>, String) {
    match parse_arn(name_or_arn) {
        Some(Resource::Bus { account, bus }) => (Some(account), bus),
        _ => (None, name_or_arn.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns() {
        assert_eq!(
            rule_arn("us-east-1", "111122223333", "default", "r"),
            "arn:aws:events:us-east-1:111122223333:rule/r"
        );
        assert_eq!(
            parse_arn("arn:aws:events:us-east-1:111122223333:rule/orders/r"),
            Some(Resource::Rule {
                account: "111122223333".into(),
                bus: "orders".into(),
                rule: "r".into()
            })
        );
        assert_eq!(
            bus_name("arn:aws:events:us-east-1:111122223333:event-bus/orders"),
            (Some("111122223333".into()), "orders".into())
        );
        assert_eq!(bus_name("orders"), (None, "orders".into()));
        assert_eq!(
            target_kind("arn:aws:lambda:us-east-1:111122223333:function:f:live"),
            TargetKind::Function
        );
        assert_eq!(
            target_kind("arn:aws:sqs:us-east-1:111122223333:q"),
            TargetKind::Queue
        );
        assert_eq!(
            target_kind("arn:aws:sns:us-east-1:111122223333:t"),
            TargetKind::Other
        );
    }
}
