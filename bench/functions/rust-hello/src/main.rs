//! The Rust hello function of Updraft's benchmark: answers every event with `{"hello": "world"}`
//! through the official `lambda_runtime` client, packaged as a `provided.al2023` `bootstrap`.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({"hello": "world"}))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
