//! `updraft queue ls` and `updraft queue peek NAME`: operators' read-only view of the caller's
//! queues, over `/updraft/v1/queues…` (signed like every other CLI call). Peeking receives
//! nothing: visibility and receive counts stay as they were.

use std::process::ExitCode;

use anyhow::Result;

use crate::client::{Client, Endpoint, enc};

#[derive(clap::Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(clap::Subcommand)]
enum QueueCommand {
    /// List queues with their visible, in-flight and delayed message counts.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Show a queue's first messages without receiving them.
    Peek {
        /// Queue name.
        name: String,
        /// How many messages (1 to 100).
        #[arg(long, default_value_t = 10)]
        max: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
}

/// A body on one line, cut to `width` characters.
fn one_line(body: &str, width: usize) -> String {
    let flat: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > width {
        let cut: String = flat.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

pub fn queue(a: QueueArgs) -> Result<ExitCode> {
    match a.command {
        QueueCommand::Ls { json, endpoint } => {
            let v = Client::new(&endpoint)?
                .send("GET", "/updraft/v1/queues", "", &[], b"")?
                .ok()?
                .json()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<40}  {:>9}  {:>9}  {:>9}",
                "NAME", "VISIBLE", "IN FLIGHT", "DELAYED"
            );
            for q in v["Queues"].as_array().into_iter().flatten() {
                let n = |k: &str| q[k].as_u64().unwrap_or(0);
                println!(
                    "{:<40}  {:>9}  {:>9}  {:>9}",
                    q["Name"].as_str().unwrap_or(""),
                    n("Visible"),
                    n("InFlight"),
                    n("Delayed")
                );
            }
        }
        QueueCommand::Peek {
            name,
            max,
            json,
            endpoint,
        } => {
            let v = Client::new(&endpoint)?
                .send(
                    "GET",
                    &format!("/updraft/v1/queues/{}/messages", enc(&name)),
                    &format!("max={max}"),
                    &[],
                    b"",
                )?
                .ok()?
                .json()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<36}  {:<9}  {:>8}  BODY",
                "MESSAGE ID", "STATE", "RECEIVES"
            );
            for m in v["Messages"].as_array().into_iter().flatten() {
                println!(
                    "{:<36}  {:<9}  {:>8}  {}",
                    m["MessageId"].as_str().unwrap_or(""),
                    m["State"].as_str().unwrap_or(""),
                    m["ReceiveCount"].as_u64().unwrap_or(0),
                    one_line(m["Body"].as_str().unwrap_or(""), 80)
                );
            }
            if v["Messages"].as_array().is_none_or(Vec::is_empty) {
                println!("(no messages)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_print_on_one_line() {
        assert_eq!(one_line("a\nb", 10), "a b");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }
}
