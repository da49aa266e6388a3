//! The Rust hello function of Updraft's benchmark: answers every event with `{"hello": "world"}`
//! through the official `lambda_runtime` client, packaged as a `provided.al2023` `bootstrap`.
//!
//! An execution environment runs one invocation at a time, so the function uses tokio's
//! current-thread runtime: the multi-threaded one hands every Runtime API exchange between
//! worker threads, which costs more CPU per invocation than the rest of the client.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({"hello": "world"}))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
