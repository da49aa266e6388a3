//! The dispatcher: claims due work items, delivers them through their targets and records each
//! attempt's end (fenced by owner and attempt) together with what follows from it.
//!
//! It keeps at most `max_in_flight` deliveries running, so a burst of events waits in the store
//! instead of taking the engine's concurrency from synchronous callers; an engine throttle is one
//! more reason to retry later, never an error.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::Inner;
use crate::backoff::Next;
use crate::record::{self, Condition, Response};
use crate::store::now_ms;
use crate::targets::{Delivery, DestinationArn, Outcome, Targets};
use crate::work::{Claimed, Finish, NewWork, RetryPolicy, Target};

/// Most items one claim takes.
const CLAIM_BATCH: usize = 64;

pub(crate) async fn run(inner: Arc<Inner>, targets: Targets) {
    let permits = Arc::new(Semaphore::new(inner.settings.max_in_flight.max(1)));
    loop {
        let Ok(first) = permits.clone().acquire_owned().await else {
            return;
        };
        let room = permits.available_permits() + 1;
        let claimed = inner
            .store
            .claim(
                &inner.owner,
                room.min(CLAIM_BATCH),
                now_ms(),
                millis(inner.settings.lease),
            )
            .await;
        let items = match claimed {
            Ok(items) => items,
            Err(e) => {
                tracing::error!(error = %e, "events: claiming work failed");
                drop(first);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if items.is_empty() {
            drop(first);
            idle(&inner).await;
            continue;
        }
        let mut first = Some(first);
        for item in items {
            let permit = match first.take() {
                Some(p) => Some(p),
                None => permits.clone().try_acquire_owned().ok(),
            };
            let inner = inner.clone();
            let targets = targets.clone();
            tokio::spawn(async move {
                handle(&inner, &targets, item).await;
                drop(permit);
            });
        }
    }
}

/// Waits until new work is enqueued or stored work becomes due (at most the poll interval, so
/// leases that expire are noticed too).
async fn idle(inner: &Inner) {
    let poll = millis(inner.settings.poll);
    let wait = match inner.store.next_due_ms() {
        Ok(Some(due)) => (due - now_ms()).clamp(0, poll),
        Ok(None) => poll,
        Err(e) => {
            tracing::error!(error = %e, "events: reading the next due time failed");
            poll
        }
    };
    if wait == 0 {
        // Due now but not claimed: the claim and this read raced; look again right away.
        tokio::task::yield_now().await;
        return;
    }
    tokio::select! {
        _ = inner.notify.notified() => {}
        _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn policy_of(inner: &Inner, targets: &Targets, item: &Claimed) -> RetryPolicy {
    if let Some(p) = &item.policy {
        return p.clone();
    }
    match &item.target {
        Target::Function {
            account_id,
            function_arn,
            qualifier,
        } => {
            let name = function_arn.rsplit(':').next().unwrap_or_default();
            inner.configs.policy(
                account_id,
                name,
                qualifier.as_deref(),
                targets.function.dead_letter(&item.target),
            )
        }
        _ => RetryPolicy::default(),
    }
}

async fn handle(inner: &Inner, targets: &Targets, item: Claimed) {
    let policy = policy_of(inner, targets, &item);
    let expires = item
        .created_at_ms
        .saturating_add((policy.max_age_s as i64).saturating_mul(1000));
    if now_ms() >= expires {
        give_up(
            inner,
            &item,
            &policy,
            Condition::EventAgeExceeded,
            None,
            "event age exceeded",
        )
        .await;
        return;
    }
    let outcome = match targets.get(item.target.kind()) {
        Some(t) => {
            t.deliver(Delivery {
                target: item.target.clone(),
                payload: item.payload.clone(),
                request_id: item.request_id.clone(),
                attempt: item.attempt,
                source: item.source.clone(),
            })
            .await
        }
        None => Outcome::Gone {
            reason: format!("no {:?} service on this node", item.target.kind()),
        },
    };
    let now = now_ms();
    match outcome {
        Outcome::Success {
            status,
            executed_version,
            response,
        } => {
            let mut follow = Vec::new();
            if let Some(dest) = &policy.on_success {
                let resp = Response {
                    status,
                    executed_version,
                    function_error: None,
                    payload: response,
                };
                follow.extend(record_to(&item, dest, Condition::Success, Some(&resp)));
            }
            end(inner, &item, Finish::Done, follow).await;
        }
        Outcome::FunctionError {
            status,
            executed_version,
            function_error,
            response,
        } => {
            let failures = item.failures + 1;
            let resp = Response {
                status,
                executed_version,
                function_error: Some(function_error.clone()),
                payload: response,
            };
            let error = error_message(&resp.payload).unwrap_or(function_error);
            match inner.settings.backoff.after_function_error(
                failures,
                policy.max_retries,
                now,
                expires,
            ) {
                Next::RetryAt(t) => {
                    let finish = Finish::Retry {
                        not_before_ms: t,
                        failures,
                        error,
                    };
                    end(inner, &item, finish, Vec::new()).await;
                }
                Next::RetriesExhausted => {
                    give_up(
                        inner,
                        &item,
                        &policy,
                        Condition::RetriesExhausted,
                        Some(resp),
                        &error,
                    )
                    .await;
                }
                Next::EventAgeExceeded => {
                    give_up(
                        inner,
                        &item,
                        &policy,
                        Condition::EventAgeExceeded,
                        Some(resp),
                        &error,
                    )
                    .await;
                }
            }
        }
        Outcome::Throttled { reason } => {
            let throttles = item.attempt.saturating_sub(item.failures).max(1);
            match inner
                .settings
                .backoff
                .after_throttle(throttles, now, expires)
            {
                Next::RetryAt(t) => {
                    let finish = Finish::Retry {
                        not_before_ms: t,
                        failures: item.failures,
                        error: reason,
                    };
                    end(inner, &item, finish, Vec::new()).await;
                }
                _ => {
                    give_up(
                        inner,
                        &item,
                        &policy,
                        Condition::EventAgeExceeded,
                        None,
                        &reason,
                    )
                    .await;
                }
            }
        }
        Outcome::Gone { reason } => {
            tracing::warn!(request_id = %item.request_id, %reason, "events: giving up an undeliverable item");
            end(inner, &item, Finish::Failed { error: reason }, Vec::new()).await;
        }
    }
}

/// The `errorMessage` of a Lambda error document.
fn error_message(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v.get("errorMessage")?.as_str().map(str::to_string)
}

/// Ends an item that will not be tried again: its failure destination and dead-letter target
/// get their copies in the same transaction that marks it failed.
async fn give_up(
    inner: &Inner,
    item: &Claimed,
    policy: &RetryPolicy,
    condition: Condition,
    response: Option<Response>,
    error: &str,
) {
    let mut follow = Vec::new();
    if let Some(dest) = &policy.on_failure {
        follow.extend(record_to(item, dest, condition, response.as_ref()));
    }
    if let Some(DestinationArn::Queue { account_id, arn }) = policy
        .dead_letter
        .as_deref()
        .and_then(DestinationArn::parse)
    {
        let code = response.as_ref().map_or(429, |r| r.status).to_string();
        follow.push(NewWork {
            target: Target::Queue {
                account_id,
                arn,
                attributes: record::dead_letter_attributes(item, &code, error),
            },
            payload: item.payload.clone(),
            request_id: item.request_id.clone(),
            source: item.target.resource_arn().to_string(),
            policy: Some(RetryPolicy::default()),
        });
    }
    let finish = Finish::Failed {
        error: format!("{}: {error}", condition.as_str()),
    };
    end(inner, item, finish, follow).await;
}

/// A destination record for `dest`, as a work item of the destination's kind.
fn record_to(
    item: &Claimed,
    dest: &str,
    condition: Condition,
    response: Option<&Response>,
) -> Option<NewWork> {
    // Records are made of function invocations only; other items have no destinations.
    item.target.qualified_function_arn()?;
    let record = record::destination_record(item, condition, response);
    let payload = bytes::Bytes::from(serde_json::to_vec(&record).ok()?);
    let source = item.target.qualified_function_arn().unwrap_or_default();
    let target = match DestinationArn::parse(dest)? {
        DestinationArn::Function {
            account_id,
            function_arn,
            qualifier,
        } => Target::Function {
            account_id,
            function_arn,
            qualifier,
        },
        DestinationArn::EventBus { account_id, arn } => Target::EventBus {
            account_id,
            bus_arn: arn,
            source: "lambda".into(),
            detail_type: condition.detail_type().into(),
        },
        DestinationArn::Queue { account_id, arn } => Target::Queue {
            account_id,
            arn,
            attributes: Vec::new(),
        },
    };
    Some(NewWork {
        target,
        payload,
        request_id: uuid::Uuid::new_v4().to_string(),
        source,
        policy: None,
    })
}

async fn end(inner: &Inner, item: &Claimed, finish: Finish, follow: Vec<NewWork>) {
    let more = !follow.is_empty();
    match inner
        .store
        .finish(item.id, &item.owner, item.attempt, finish, follow)
        .await
    {
        Ok(true) => {
            if more {
                inner.notify.notify_one();
            }
        }
        Ok(false) => tracing::warn!(
            request_id = %item.request_id,
            attempt = item.attempt,
            "events: the lease was lost before the attempt ended; its completion was refused"
        ),
        // The lease runs out and the item is tried again: delivery stays at least once.
        Err(e) => {
            tracing::error!(error = %e, request_id = %item.request_id, "events: recording an attempt failed")
        }
    }
}
