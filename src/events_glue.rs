//! Wiring of the EventBridge service into this node: the function policy check it asks
//! before a rule invokes a function, and the path its deliveries take.
//!
//! Interim glue: [`EngineDelivery`] invokes the engine directly, `Event`-style, in a spawned
//! task, and logs failures. It is not durable (a delivery accepted just before a crash is
//! lost); the durable work queue replaces it behind the same `EventDelivery` trait.

use std::sync::{Arc, Weak};

use updraft_api::AppState;
use updraft_control::ControlPlane;
use updraft_control::policy::{AccessRequest, Policy, Requester, evaluate};
use updraft_engine::{Invocation, random_u64};
use updraft_eventbridge::{BoxFuture, Delivery, DeliveryError, EventDelivery, FunctionPermissions};

/// The function ARN without its qualifier, and the qualifier.
fn split_qualifier(arn: &str) -> (&str, Option<&str>) {
    // arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
    let parts: Vec<&str> = arn.splitn(8, ':').collect();
    if parts.len() == 8 {
        let cut = arn.len() - parts[7].len() - 1;
        (&arn[..cut], Some(parts[7]))
    } else {
        (arn, None)
    }
}

fn account_of(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or("")
}

/// Asks the control plane's resource policies, as Lambda does for service principals.
pub struct PolicyCheck(pub Arc<ControlPlane>);

impl FunctionPermissions for PolicyCheck {
    fn allows_events(
        &self,
        function_arn: &str,
        source_arn: &str,
        source_account: &str,
    ) -> Result<(), String> {
        let (base, qualifier) = split_qualifier(function_arn);
        let owner = account_of(function_arn);
        self.0
            .get_configuration(owner, base, qualifier)
            .map_err(|e| format!("the target function cannot be invoked: {}", e.message))?;
        let mut policy: Policy = self.0.get_policy(owner, base, None).unwrap_or_default();
        if let Some(q) = qualifier
            && let Ok(p) = self.0.get_policy(owner, base, Some(q))
        {
            policy.statements.extend(p.statements);
        }
        let allowed = evaluate(
            &policy,
            &AccessRequest {
                action: "lambda:InvokeFunction",
                requester: Requester::Service("events.amazonaws.com"),
                source_arn: Some(source_arn),
                source_account: Some(source_account),
                url_auth_type: None,
            },
        );
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "the resource policy of {function_arn} does not allow events.amazonaws.com to invoke it for {source_arn} (add one with AddPermission)"
            ))
        }
    }
}

/// Interim delivery: one spawned `Event` invocation per delivery, failures logged.
pub struct EngineDelivery(pub Weak<AppState>);

fn request_id() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

async fn run_one(state: Arc<AppState>, d: Delivery) {
    let unit = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let (base, qualifier) = split_qualifier(&d.function_arn);
    let resolved = match state.control.resolve(&d.account, base, qualifier, unit) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(rule = %d.source_arn, target = %d.function_arn, "eventbridge: delivery failed: {}", e.message);
            return;
        }
    };
    let spec = state.spec_cache.get(&resolved);
    let invocation = Invocation {
        request_id: request_id(),
        payload: d.payload.into(),
        invoked_function_arn: d.function_arn.clone(),
        client_context: None,
        cognito_identity: None,
        trace_id: None,
        want_log_tail: false,
    };
    match state.engine.invoke(spec, invocation).await {
        Ok(o) if o.function_error.is_some() => tracing::warn!(
            rule = %d.source_arn,
            target = %d.function_arn,
            "eventbridge: delivery failed: the function returned an error"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(
            rule = %d.source_arn,
            target = %d.function_arn,
            "eventbridge: delivery failed: {e}"
        ),
    }
}

impl EventDelivery for EngineDelivery {
    fn enqueue(&self, deliveries: Vec<Delivery>) -> BoxFuture<'_, Result<(), DeliveryError>> {
        let state = self.0.upgrade();
        Box::pin(async move {
            let state = state.ok_or_else(|| DeliveryError("the node is shutting down".into()))?;
            for d in deliveries {
                tokio::spawn(run_one(state.clone(), d));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifiers() {
        let a = "arn:aws:lambda:us-east-1:111122223333:function:f";
        assert_eq!(split_qualifier(a), (a, None));
        assert_eq!(
            split_qualifier("arn:aws:lambda:us-east-1:111122223333:function:f:live"),
            (a, Some("live"))
        );
        assert_eq!(account_of(a), "111122223333");
        assert_eq!(request_id().len(), 36);
    }
}
