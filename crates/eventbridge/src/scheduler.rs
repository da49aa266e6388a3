//! The scheduler: one task that fires scheduled rules when they are due, in UTC.
//!
//! It sleeps until the earliest next fire (at most a second, so a clock step is noticed soon)
//! or until a rule changes. Fires missed while the node was down are skipped, not replayed:
//! each schedule resumes at its next fire time after the start (a `rate` keeps counting
//! periods from when it was set, a `cron` from the clock).

use std::sync::Arc;

use time::OffsetDateTime;

use crate::EventBridge;

/// Longest sleep between checks.
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs until `shutdown` resolves.
pub async fn run(eb: Arc<EventBridge>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let now = OffsetDateTime::now_utc();
        let next = eb.fire_due(now).await;
        let sleep = next
            .map(|n| {
                let d = n - OffsetDateTime::now_utc();
                std::time::Duration::try_from(d).unwrap_or_default()
            })
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        tokio::select! {
            _ = &mut shutdown => return,
            _ = eb.changed.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}
