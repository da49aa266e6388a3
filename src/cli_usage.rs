//! `updraft usage`: requests, billed milliseconds, GB-seconds and cost per function, account,
//! version, tag, day or hour, from the server's usage report (`GET /updraft/v1/usage`).

use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::Value;

use crate::client::{Client, Endpoint, enc};

#[derive(clap::Args)]
pub struct UsageArgs {
    /// Start of the window: a duration back from now (30m, 12h, 7d), epoch milliseconds or
    /// RFC 3339 (default: the start of the current month, UTC).
    #[arg(long)]
    since: Option<String>,
    /// End of the window (exclusive), in the same forms (default: now).
    #[arg(long)]
    until: Option<String>,
    /// Group by function, account, version, tag:KEY, day or hour.
    #[arg(long, default_value = "function")]
    by: String,
    /// Only this account (root credentials; other accounts always see only themselves).
    #[arg(long)]
    account: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

/// A relative duration (`90s`, `30m`, `12h`, `7d`) becomes epoch ms; anything else is passed on.
fn time_arg(s: &str) -> String {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return s.to_string(),
    };
    match num.parse::<u64>() {
        Ok(n) => now_ms().saturating_sub(n * secs * 1000).to_string(),
        Err(_) => s.to_string(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

const COLUMNS: [&str; 8] = [
    "Requests",
    "BilledMs",
    "GBSeconds",
    "Cost",
    "Errors",
    "Throttles",
    "Timeouts",
    "ColdStarts",
];

fn cell(v: &Value, col: &str) -> String {
    match &v[col] {
        Value::Number(n) if col == "Cost" => format!("{:.10}", n.as_f64().unwrap_or(0.0)),
        Value::Number(n) if col == "GBSeconds" => format!("{:.6}", n.as_f64().unwrap_or(0.0)),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

pub fn usage(a: UsageArgs) -> Result<ExitCode> {
    let client = Client::new(&a.endpoint)?;
    let mut q: Vec<(&str, String)> = vec![("by", a.by.clone())];
    if let Some(s) = &a.since {
        q.push(("since", time_arg(s)));
    }
    if let Some(u) = &a.until {
        q.push(("until", time_arg(u)));
    }
    if let Some(acct) = &a.account {
        q.push(("account", acct.clone()));
    }
    q.sort();
    let query = q
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let r = client.send("GET", "/updraft/v1/usage", &query, &[], b"")?;
    if r.status != 200 {
        let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        bail!(
            "{}: {}",
            v["Type"].as_str().unwrap_or("error"),
            v["message"].as_str().unwrap_or("usage report refused")
        );
    }
    let v = r.json()?;
    let rows = v["Rows"].as_array().cloned().unwrap_or_default();
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        Format::Csv => {
            println!("Key,{}", COLUMNS.join(","));
            for row in &rows {
                let key = row["Key"].as_str().unwrap_or_default();
                let key = if key.contains([',', '"']) {
                    format!("\"{}\"", key.replace('"', "\"\""))
                } else {
                    key.to_string()
                };
                let cells: Vec<String> = COLUMNS.iter().map(|c| cell(row, c)).collect();
                println!("{key},{}", cells.join(","));
            }
        }
        Format::Table => {
            println!(
                "{} .. {}  by {}  ({}; {})",
                v["Since"].as_str().unwrap_or_default(),
                v["Until"].as_str().unwrap_or_default(),
                v["By"].as_str().unwrap_or_default(),
                v["Currency"].as_str().unwrap_or_default(),
                v["PriceSource"].as_str().unwrap_or_default()
            );
            let width = rows
                .iter()
                .filter_map(|r| r["Key"].as_str().map(str::len))
                .max()
                .unwrap_or(3)
                .max(5);
            print!("{:<width$}", "KEY");
            for c in COLUMNS {
                print!("  {c:>12}");
            }
            println!();
            let total = {
                let mut t = v["Total"].clone();
                t["Key"] = Value::from("TOTAL");
                t
            };
            for row in rows.iter().chain(std::iter::once(&total)) {
                print!("{:<width$}", row["Key"].as_str().unwrap_or_default());
                for c in COLUMNS {
                    print!("  {:>12}", cell(row, c));
                }
                println!();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
