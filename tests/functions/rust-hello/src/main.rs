//! A function built on AWS's `lambda_runtime` crate: it greets the `name` of its event and
//! reports the request id the Runtime API handed it, so a test can match it with the invoke's.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn hello(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    Ok(json!({ "hello": payload["name"], "request_id": ctx.request_id }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(hello)).await
}
