//! A mapping's settings and state, and Lambda's checks of what a caller asks for.

use serde::{Deserialize, Serialize};
use updraft_pattern::Pattern;

use crate::MappingError;

/// Lambda's default batch size for a queue.
pub const DEFAULT_BATCH_SIZE: u32 = 10;
/// Largest batch of a standard queue (above 10 needs a batching window).
pub const MAX_BATCH_SIZE: u32 = 10_000;
/// Largest batch of a FIFO queue.
pub const MAX_FIFO_BATCH_SIZE: u32 = 10;
/// Longest batching window, seconds.
pub const MAX_WINDOW_SECONDS: u32 = 300;
/// `ScalingConfig.MaximumConcurrency` bounds.
pub const MIN_CONCURRENCY: u32 = 2;
pub const MAX_CONCURRENCY: u32 = 1_000;
/// Filters one mapping may carry (Lambda's default quota).
pub const MAX_FILTERS: usize = 5;
/// The only response type Lambda knows.
pub const REPORT_BATCH_ITEM_FAILURES: &str = "ReportBatchItemFailures";

/// Where a mapping is in Lambda's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MappingState {
    Creating,
    Enabling,
    Enabled,
    Disabling,
    Disabled,
    Updating,
    Deleting,
}

impl MappingState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "Creating",
            Self::Enabling => "Enabling",
            Self::Enabled => "Enabled",
            Self::Disabling => "Disabling",
            Self::Disabled => "Disabled",
            Self::Updating => "Updating",
            Self::Deleting => "Deleting",
        }
    }

    /// Whether the mapping is between two settled states (updates and deletes wait for it).
    pub fn transitional(self) -> bool {
        !matches!(self, Self::Enabled | Self::Disabled)
    }

    /// The settled state a transitional one ends in.
    pub fn settled(self, enabled: bool) -> Self {
        match self {
            Self::Deleting => Self::Deleting,
            _ if enabled => Self::Enabled,
            _ => Self::Disabled,
        }
    }
}

/// One event source mapping, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    pub uuid: String,
    pub account_id: String,
    pub event_source_arn: String,
    /// The function's ARN, with the qualifier the caller named (an alias or a version), if any.
    pub function_arn: String,
    pub batch_size: u32,
    pub window_seconds: u32,
    pub report_batch_item_failures: bool,
    pub maximum_concurrency: Option<u32>,
    /// `FilterCriteria.Filters[].Pattern`, as given (each parses as an event pattern).
    pub filters: Vec<String>,
    /// What the caller asked for; the state follows it.
    pub enabled: bool,
    pub state: MappingState,
    pub state_reason: String,
    /// Milliseconds since the epoch of the last change of settings or state.
    pub last_modified_ms: u64,
    pub last_result: String,
}

/// What `CreateEventSourceMapping` asks for (SQS parameters only; the front door refuses the
/// stream and broker ones).
#[derive(Debug, Clone, Default)]
pub struct MappingInput {
    pub event_source_arn: String,
    pub function_arn: String,
    /// The function's timeout, seconds: the queue's visibility timeout may not be shorter.
    pub function_timeout: u32,
    pub enabled: Option<bool>,
    pub batch_size: Option<u32>,
    pub window_seconds: Option<u32>,
    pub function_response_types: Option<Vec<String>>,
    pub maximum_concurrency: Option<Option<u32>>,
    pub filters: Option<Vec<String>>,
}

/// What `UpdateEventSourceMapping` asks for; `None` keeps a setting.
#[derive(Debug, Clone, Default)]
pub struct MappingUpdate {
    /// A new function and its timeout, seconds.
    pub function: Option<(String, u32)>,
    pub enabled: Option<bool>,
    pub batch_size: Option<u32>,
    pub window_seconds: Option<u32>,
    pub function_response_types: Option<Vec<String>>,
    /// `Some(None)`: an empty `ScalingConfig` removes the limit.
    pub maximum_concurrency: Option<Option<u32>>,
    /// `Some(vec![])`: an empty `FilterCriteria` removes the filters.
    pub filters: Option<Vec<String>>,
}

/// AWS's model-validation wording for a number outside its range.
fn range_error(field: &str, value: u32, min: u32, max: u32) -> MappingError {
    let constraint = if value < min {
        format!("greater than or equal to {min}")
    } else {
        format!("less than or equal to {max}")
    };
    MappingError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must have value {constraint}"
    ))
}

/// Checks settings as a whole, the way Lambda does for an SQS source.
pub fn check(m: &Mapping, fifo: bool) -> Result<(), MappingError> {
    if !(1..=MAX_BATCH_SIZE).contains(&m.batch_size) {
        return Err(range_error("batchSize", m.batch_size, 1, MAX_BATCH_SIZE));
    }
    if m.window_seconds > MAX_WINDOW_SECONDS {
        return Err(range_error(
            "maximumBatchingWindowInSeconds",
            m.window_seconds,
            0,
            MAX_WINDOW_SECONDS,
        ));
    }
    if let Some(c) = m.maximum_concurrency
        && !(MIN_CONCURRENCY..=MAX_CONCURRENCY).contains(&c)
    {
        return Err(range_error(
            "scalingConfig.maximumConcurrency",
            c,
            MIN_CONCURRENCY,
            MAX_CONCURRENCY,
        ));
    }
    if fifo {
        if m.batch_size > MAX_FIFO_BATCH_SIZE {
            return Err(MappingError::Invalid(format!(
                "BatchSize must be between 1 and {MAX_FIFO_BATCH_SIZE} for a FIFO queue; {} was given",
                m.batch_size
            )));
        }
        if m.window_seconds > 0 {
            return Err(MappingError::Invalid(
                "Batching window is not supported for FIFO queues".into(),
            ));
        }
    } else if m.batch_size > 10 && m.window_seconds == 0 {
        return Err(MappingError::Invalid(
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
                .into(),
        ));
    }
    check_filters(&m.filters)?;
    Ok(())
}

/// Lambda refuses a queue whose messages would reappear while the function may still run.
pub fn check_visibility(
    visibility_timeout: u32,
    function_timeout: u32,
) -> Result<(), MappingError> {
    if visibility_timeout < function_timeout {
        return Err(MappingError::Invalid(format!(
            "Queue visibility timeout: {visibility_timeout} seconds is less than Function timeout: {function_timeout} seconds"
        )));
    }
    Ok(())
}

/// `FunctionResponseTypes`: only `ReportBatchItemFailures`.
pub fn response_types(types: &[String]) -> Result<bool, MappingError> {
    for t in types {
        if t != REPORT_BATCH_ITEM_FAILURES {
            return Err(MappingError::Validation(format!(
                "1 validation error detected: Value '[{t}]' at 'functionResponseTypes' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [{REPORT_BATCH_ITEM_FAILURES}]]"
            )));
        }
    }
    Ok(!types.is_empty())
}

/// Each filter must be an event pattern the matcher accepts.
pub fn check_filters(filters: &[String]) -> Result<(), MappingError> {
    if filters.len() > MAX_FILTERS {
        return Err(MappingError::Invalid(format!(
            "The number of filters ({}) exceeds the limit of {MAX_FILTERS} per event source mapping",
            filters.len()
        )));
    }
    for f in filters {
        Pattern::parse(f).map_err(|e| {
            MappingError::Invalid(format!("Invalid filter pattern definition. {}", e.0))
        })?;
    }
    Ok(())
}

/// `arn:aws:sqs:<region>:<account>:<name>` → (region, account, name).
pub fn parse_queue_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() != 6 || parts[0] != "arn" || !parts[1].starts_with("aws") || parts[2] != "sqs" {
        return None;
    }
    if parts[3].is_empty() || parts[4].len() != 12 || parts[5].is_empty() {
        return None;
    }
    Some((parts[3], parts[4], parts[5]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> Mapping {
        Mapping {
            uuid: "u".into(),
            account_id: "111122223333".into(),
            event_source_arn: "arn:aws:sqs:us-east-1:111122223333:q".into(),
            function_arn: "arn:aws:lambda:us-east-1:111122223333:function:f".into(),
            batch_size: 10,
            window_seconds: 0,
            report_batch_item_failures: false,
            maximum_concurrency: None,
            filters: vec![],
            enabled: true,
            state: MappingState::Creating,
            state_reason: "USER_INITIATED".into(),
            last_modified_ms: 0,
            last_result: "No records processed".into(),
        }
    }

    #[test]
    fn batch_limits() {
        let mut m = mapping();
        check(&m, false).unwrap();
        m.batch_size = 0;
        assert!(matches!(check(&m, false), Err(MappingError::Validation(_))));
        m.batch_size = 100;
        let e = check(&m, false).unwrap_err().to_string();
        assert!(e.contains("Maximum batch window"), "{e}");
        m.window_seconds = 1;
        check(&m, false).unwrap();
        assert!(matches!(check(&m, true), Err(MappingError::Invalid(_))));
        m.batch_size = 10_001;
        assert!(matches!(check(&m, false), Err(MappingError::Validation(_))));
        m.batch_size = 10;
        m.window_seconds = 301;
        assert!(matches!(check(&m, false), Err(MappingError::Validation(_))));
    }

    #[test]
    fn concurrency_and_filters() {
        let mut m = mapping();
        for (c, ok) in [(1, false), (2, true), (1000, true), (1001, false)] {
            m.maximum_concurrency = Some(c);
            assert_eq!(check(&m, false).is_ok(), ok, "{c}");
        }
        m.maximum_concurrency = None;
        m.filters = vec![r#"{"body":{"k":["v"]}}"#.into()];
        check(&m, false).unwrap();
        m.filters = vec!["{not json".into()];
        assert!(matches!(check(&m, false), Err(MappingError::Invalid(_))));
        m.filters = vec![r#"{"a":[1]}"#.into(); 6];
        assert!(matches!(check(&m, false), Err(MappingError::Invalid(_))));
    }

    #[test]
    fn arns_and_types() {
        assert_eq!(
            parse_queue_arn("arn:aws:sqs:us-east-1:111122223333:q.fifo"),
            Some(("us-east-1", "111122223333", "q.fifo"))
        );
        assert_eq!(
            parse_queue_arn("arn:aws:sns:us-east-1:111122223333:q"),
            None
        );
        assert_eq!(parse_queue_arn("arn:aws:sqs:us-east-1:1:q"), None);
        assert!(response_types(&["ReportBatchItemFailures".into()]).unwrap());
        assert!(!response_types(&[]).unwrap());
        assert!(response_types(&["Other".into()]).is_err());
        assert_eq!(
            MappingState::Updating.settled(false),
            MappingState::Disabled
        );
        assert!(MappingState::Creating.transitional());
    }
}
