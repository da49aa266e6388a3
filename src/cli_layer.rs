//! CLI commands for layers: `updraft layer publish DIR --name N [--runtime ID]...` zips a folder
//! (or takes a .zip) and publishes it as the layer's next version; `updraft layer ls` lists the
//! account's layers; `updraft deploy ... --layer ARN` (repeatable) sets a function's layers.
//! All of it through the public API, as the aws CLI would.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::client::{Client, Endpoint, enc};

#[derive(clap::Args)]
pub struct LayerArgs {
    #[command(subcommand)]
    command: LayerCommand,
}

#[derive(clap::Subcommand)]
enum LayerCommand {
    /// Publish a folder (zipped, executable bits kept) or a .zip as a new layer version.
    Publish {
        /// A folder to zip, or a .zip file. Its top level becomes `/opt`: `python/`,
        /// `nodejs/node_modules/`, `bin/`, `lib/`, a `bootstrap`, ...
        path: PathBuf,
        /// Layer name.
        #[arg(long)]
        name: String,
        /// A compatible runtime id, repeatable (`--runtime python3.12 --runtime python3.13`).
        #[arg(long = "runtime", value_name = "ID")]
        runtimes: Vec<String>,
        /// A compatible architecture, repeatable (x86_64, arm64).
        #[arg(long = "arch", value_name = "ARCH")]
        architectures: Vec<String>,
        /// Description of the version.
        #[arg(long)]
        description: Option<String>,
        /// License information of the version.
        #[arg(long)]
        license: Option<String>,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// List the account's layers with their newest version.
    Ls {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
}

/// Adds `--layer` values to a `CreateFunction` / `UpdateFunctionConfiguration` body. Without any,
/// the function keeps the layers it has.
pub fn add_layers(config: &mut Value, layers: &[String]) {
    if !layers.is_empty() {
        config["Layers"] = json!(layers);
    }
}

pub fn layer(a: LayerArgs) -> Result<ExitCode> {
    match a.command {
        LayerCommand::Publish {
            path,
            name,
            runtimes,
            architectures,
            description,
            license,
            endpoint,
        } => {
            let client = Client::new(&endpoint)?;
            let zip = crate::cli::package(&path)?;
            let mut body = json!({
                "Content": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(&zip) },
            });
            if !runtimes.is_empty() {
                body["CompatibleRuntimes"] = json!(runtimes);
            }
            if !architectures.is_empty() {
                body["CompatibleArchitectures"] = json!(architectures);
            }
            if let Some(d) = description {
                body["Description"] = json!(d);
            }
            if let Some(l) = license {
                body["LicenseInfo"] = json!(l);
            }
            let v = client
                .send(
                    "POST",
                    &format!("/2018-10-31/layers/{}/versions", enc(&name)),
                    "",
                    &[("content-type", "application/json")],
                    body.to_string().as_bytes(),
                )?
                .ok()?
                .json()?;
            println!(
                "published {name} version {}\n  code:       {} ({} bytes)\n  arn:        {}",
                v["Version"],
                v["Content"]["CodeSha256"].as_str().unwrap_or_default(),
                v["Content"]["CodeSize"],
                v["LayerVersionArn"].as_str().unwrap_or_default(),
            );
            Ok(ExitCode::SUCCESS)
        }
        LayerCommand::Ls { json, endpoint } => {
            let client = Client::new(&endpoint)?;
            let mut layers = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let q = match &marker {
                    Some(m) => format!("Marker={}", enc(m)),
                    None => String::new(),
                };
                let page = client
                    .send("GET", "/2018-10-31/layers", &q, &[], b"")?
                    .ok()?
                    .json()?;
                if let Some(items) = page["Layers"].as_array() {
                    layers.extend(items.iter().cloned());
                }
                match page["NextMarker"].as_str() {
                    Some(m) => marker = Some(m.to_string()),
                    None => break,
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&layers)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<40} {:>7}  {:<30}  CREATED",
                "NAME", "VERSION", "RUNTIMES"
            );
            for l in &layers {
                let v = &l["LatestMatchingVersion"];
                let runtimes: Vec<&str> = v["CompatibleRuntimes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                println!(
                    "{:<40} {:>7}  {:<30}  {}",
                    l["LayerName"].as_str().unwrap_or_default(),
                    v["Version"].to_string(),
                    runtimes.join(","),
                    v["CreatedDate"].as_str().unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
