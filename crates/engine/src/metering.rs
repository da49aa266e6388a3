//! Metering: one usage record per finished invocation, published on a broadcast channel
//! (`Engine::subscribe_usage`) for whoever bills, aggregates or exports metrics. The engine itself
//! stores nothing: the hot path only sends a record into the channel.

/// How an invocation ended, for billing and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum UsageOutcome {
    /// The function returned a response.
    Success,
    /// The runtime reported an error (`/invocation/{id}/error`) or the response was too large.
    FunctionError,
    /// The invocation ran past its timeout and the environment was stopped.
    Timeout,
    /// The runtime exited (crash, out of memory) during the invocation.
    Crash,
    /// The environment failed its init phase (init error, exit before ready, init timeout).
    InitError,
    /// The runtime died with its cgroup at its memory limit (Lambda's `Runtime.OutOfMemory`).
    OutOfMemory,
    /// Refused before anything ran (account, reserved concurrency or node memory).
    Throttle,
}

/// What asked for an invocation; set by each caller on its [`crate::Invocation`], carried into
/// the usage record as a dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub enum InvocationSource {
    /// `Invoke` with `RequestResponse` (or `InvokeWithResponseStream`).
    #[default]
    Sync,
    /// `Invoke` with `Event`, `InvokeAsync`, destinations: the durable event path.
    Async,
    /// An event source mapping (queue poller).
    EventSource,
    /// A Function URL.
    Url,
    /// An EventBridge schedule.
    Schedule,
}

impl InvocationSource {
    pub fn as_str(self) -> &'static str {
        match self {
            InvocationSource::Sync => "sync",
            InvocationSource::Async => "async",
            InvocationSource::EventSource => "event-source",
            InvocationSource::Url => "url",
            InvocationSource::Schedule => "schedule",
        }
    }
}

impl UsageOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageOutcome::Success => "success",
            UsageOutcome::FunctionError => "function-error",
            UsageOutcome::Timeout => "timeout",
            UsageOutcome::Crash => "crash",
            UsageOutcome::InitError => "init-error",
            UsageOutcome::OutOfMemory => "oom",
            UsageOutcome::Throttle => "throttle",
        }
    }

    /// Whether Lambda's `Errors` metric counts it (function errors, timeouts, crashes, init).
    pub fn is_error(self) -> bool {
        !matches!(self, UsageOutcome::Success | UsageOutcome::Throttle)
    }
}

/// Usage of one invocation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UsageRecord {
    pub request_id: String,
    pub account_id: String,
    pub function_name: String,
    /// Unqualified ARN.
    pub function_arn: String,
    pub version: String,
    /// The alias or version the caller named (`None` for an unqualified invoke).
    pub qualifier: Option<String>,
    pub source: InvocationSource,
    /// Epoch milliseconds when the invocation started (before a cold start, if any).
    pub started_at_ms: u64,
    /// Time from handing the event to the runtime until it answered (as in `REPORT Duration`).
    pub duration_ms: f64,
    /// `duration_ms` (plus `post_runtime_extensions_duration_ms`) rounded up to the next
    /// millisecond (at least 1; 0 for `InitError`).
    pub billed_duration_ms: u64,
    pub memory_mb: u32,
    /// Peak memory of the environment so far, in MiB (0 when the host cannot measure it).
    pub max_memory_used_mb: u64,
    /// Duration of the init phase when this invocation started the environment.
    pub init_duration_ms: Option<f64>,
    /// This invocation started its environment.
    pub cold_start: bool,
    /// Configured `/tmp` above the free 512 MB (billed per GB-second like memory).
    pub ephemeral_extra_mb: u32,
    /// Ran on a provisioned-concurrency environment (billed at the provisioned duration price).
    pub provisioned: bool,
    pub outcome: UsageOutcome,
    /// Time extensions worked after the runtime's answer, until all of them asked for their
    /// next event (`None` without extensions); billed, and limited by the timeout.
    pub post_runtime_extensions_duration_ms: Option<f64>,
}

/// The qualifier part of an invoked ARN (`…:function:NAME:QUALIFIER`).
pub(crate) fn qualifier_of(invoked_arn: &str) -> Option<String> {
    let rest = invoked_arn.split(":function:").nth(1)?;
    rest.split_once(':').map(|(_, q)| q.to_string())
}

/// Receives function log lines that look like Embedded Metric Format records (a JSON object
/// with an `_aws` member), on the environment's log pump, never on the invoke path.
pub trait LogLineHook: Send + Sync {
    fn line(&self, account_id: &str, function_name: &str, line: &[u8]);
}

/// A hook with the function it is for (set on an environment's log sink).
#[derive(Clone)]
pub(crate) struct BoundHook {
    pub hook: std::sync::Arc<dyn LogLineHook>,
    pub account_id: std::sync::Arc<str>,
    pub function_name: std::sync::Arc<str>,
}

impl BoundHook {
    /// Hands `line` on if it may be an EMF record (cheap test first: a `{`, then `"_aws"`).
    pub(crate) fn offer(&self, line: &[u8]) {
        if line.first() == Some(&b'{') && line.windows(6).any(|w| w == b"\"_aws\"") {
            self.hook.line(&self.account_id, &self.function_name, line);
        }
    }
}

/// Lambda bills duration rounded up to 1 ms.
pub(crate) fn billed_ms(duration_ms: f64) -> u64 {
    let ceil = duration_ms.ceil();
    if ceil < 1.0 { 1 } else { ceil as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_rounds_up_to_a_millisecond() {
        assert_eq!(billed_ms(0.0), 1);
        assert_eq!(billed_ms(0.2), 1);
        assert_eq!(billed_ms(1.0), 1);
        assert_eq!(billed_ms(1.01), 2);
        assert_eq!(billed_ms(2999.5), 3000);
    }

    #[test]
    fn qualifier_comes_from_the_invoked_arn() {
        let base = "arn:aws:lambda:us-east-1:123456789012:function:f";
        assert_eq!(qualifier_of(base), None);
        assert_eq!(
            qualifier_of(&format!("{base}:live")).as_deref(),
            Some("live")
        );
        assert_eq!(qualifier_of(&format!("{base}:7")).as_deref(), Some("7"));
    }
}
