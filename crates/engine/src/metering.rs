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
    pub outcome: UsageOutcome,
    /// Time extensions worked after the runtime's answer, until all of them asked for their
    /// next event (`None` without extensions); billed, and limited by the timeout.
    pub post_runtime_extensions_duration_ms: Option<f64>,
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
}
