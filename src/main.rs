//! The `updraft` binary: the server (`updraft serve`), the CLI that talks to a running server
//! through the public API, and the jail helper mode the sandbox re-executes.

mod cli;
mod cli_layer;
mod cli_queue;
mod cli_usage;
mod client;
mod events_glue;
mod http;
mod mappings_glue;
mod observe_glue;
mod s3_glue;
mod serve;

use clap::{Parser, Subcommand};

/// A self-hosted serverless platform that speaks AWS Lambda's APIs.
#[derive(Parser)]
#[command(name = "updraft", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: the AWS-compatible API, the engine and the store.
    Serve(serve::ServeArgs),
    /// Create or update a function from a folder or a .zip file.
    Deploy(cli::DeployArgs),
    /// List functions.
    Ls(cli::LsArgs),
    /// Delete a function.
    Rm(cli::RmArgs),
    /// Invoke a function and print its result and log tail.
    Invoke(cli::InvokeArgs),
    /// Print a function's logs.
    Logs(cli::LogsArgs),
    /// Show a function's pending, retrying and failed asynchronous events.
    Events(cli::EventsArgs),
    /// Report which runtimes and which isolation steps work on this host.
    Doctor(cli::DoctorArgs),
    /// Manage accounts and their access keys (root credentials only).
    Account(cli::AccountArgs),
    /// Publish and list layers (`layer publish DIR --name N`).
    Layer(cli_layer::LayerArgs),
    /// Install language runtimes into the data directory (`runtime install nodejs22.x`).
    Runtime(cli::RuntimeArgs),
    /// Look at queues: `queue ls`, `queue peek NAME` (read-only).
    Queue(cli::QueueArgs),
    /// Requests, GB-seconds and cost by function, account, version, tag, day or hour.
    Usage(cli_usage::UsageArgs),
}

fn main() -> std::process::ExitCode {
    // Jail mode must not go through clap or start any thread: it is the sandbox's helper.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__jail") {
        updraft_sandbox::jail_main();
    }
    let args = Args::parse();
    let result = match args.command {
        Command::Serve(a) => serve::run(a),
        Command::Deploy(a) => cli::deploy(a),
        Command::Ls(a) => cli::ls(a),
        Command::Rm(a) => cli::rm(a),
        Command::Invoke(a) => cli::invoke(a),
        Command::Logs(a) => cli::logs(a),
        Command::Events(a) => cli::events(a),
        Command::Doctor(a) => cli::doctor(a),
        Command::Account(a) => cli::account(a),
        Command::Runtime(a) => cli::runtime(a),
        Command::Layer(a) => cli_layer::layer(a),
        Command::Queue(a) => cli::queue(a),
        Command::Usage(a) => cli_usage::usage(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
