//! CLI commands that manage functions on a running server: `deploy`, `ls`, `rm`, `invoke`,
//! `logs`, `events` (a function's queued and failed asynchronous events), `account` (the operator's account API), and `doctor` (which inspects the local host).

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};

pub use crate::cli_queue::{QueueArgs, queue};
use crate::client::{Client, Endpoint, enc};

#[derive(clap::Args)]
pub struct DeployArgs {
    /// A folder to zip, or a .zip file.
    path: PathBuf,
    /// Function name.
    #[arg(long)]
    name: String,
    /// Lambda runtime id (python3.12, nodejs20.x, provided.al2023, ...).
    #[arg(long)]
    runtime: String,
    /// Handler (e.g. app.handler).
    #[arg(long)]
    handler: String,
    /// Memory in MB.
    #[arg(long)]
    memory: Option<u32>,
    /// Timeout in seconds.
    #[arg(long)]
    timeout: Option<u32>,
    /// Environment variable, repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Description.
    #[arg(long)]
    description: Option<String>,
    /// Execution role ARN recorded with the function.
    #[arg(
        long,
        default_value = "arn:aws:iam::000000000000:role/updraft-function"
    )]
    role: String,
    /// Layer version ARN, repeatable, in order (without any, the function keeps its layers).
    #[arg(long = "layer", value_name = "ARN")]
    layers: Vec<String>,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(clap::Args)]
pub struct LsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Function name.
    name: String,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(clap::Args)]
pub struct InvokeArgs {
    /// Function name or ARN.
    name: String,
    /// JSON payload (default `{}`); `-` reads standard input.
    payload: Option<String>,
    /// Version or alias.
    #[arg(long)]
    qualifier: Option<String>,
    /// Queue the event and return once it is stored (InvocationType Event): the function runs
    /// in the background, with retries.
    #[arg(long = "async")]
    asynchronous: bool,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(clap::Args)]
pub struct EventsArgs {
    /// Function name.
    name: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    /// Function name.
    name: String,
    /// Keep printing new events.
    #[arg(long, short)]
    follow: bool,
    /// How far back to start: 30s, 10m, 2h, 1d.
    #[arg(long, default_value = "1h")]
    since: String,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The data directory `updraft serve` uses (runtimes installed there count).
    #[arg(long, env = "UPDRAFT_DATA_DIR", default_value = ".updraft")]
    data_dir: PathBuf,
    /// As for `updraft serve`: run a runtime id on this interpreter (repeatable).
    #[arg(long = "runtime", value_name = "ID=PATH", value_parser = crate::serve::parse_runtime_override)]
    runtimes: Vec<(String, PathBuf)>,
}

#[derive(clap::Args)]
pub struct RuntimeArgs {
    #[command(subcommand)]
    command: RuntimeCommand,
}

#[derive(clap::Subcommand)]
enum RuntimeCommand {
    /// Install the newest release of a Node.js major (from the npm registry, with `npm`) into
    /// the data directory, where `updraft serve` finds it at its next start.
    Install {
        /// Runtime id: nodejs18.x, nodejs20.x, nodejs22.x, nodejs24.x.
        runtime: String,
        /// An exact release instead of the newest of the major, e.g. 22.9.0.
        #[arg(long)]
        version: Option<String>,
        /// The data directory of `updraft serve`.
        #[arg(long, env = "UPDRAFT_DATA_DIR", default_value = ".updraft")]
        data_dir: PathBuf,
        /// Where downloaded packages are kept for later installs (default ~/.cache/updraft/node).
        #[arg(long, env = "UPDRAFT_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// Ask the registry again even when a package of the major is cached.
        #[arg(long)]
        refresh: bool,
    },
}

#[derive(clap::Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    command: AccountCommand,
}

/// How a command prints its answer.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(clap::Subcommand)]
enum AccountCommand {
    /// Create an account with a first access key (the secret is shown only now).
    Create {
        /// A name for the account (1 to 64 letters, digits, spaces or +=,.@_-).
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// List accounts.
    Ls {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Disable an account: its keys stop working at once; its functions stay stored.
    Disable {
        /// Account id.
        id: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Manage an account's access keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// Issue another access key for an account (the secret is shown only now).
    Create {
        /// Account id.
        id: String,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// List an account's access key ids.
    Ls {
        /// Account id.
        id: String,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Delete an access key: it stops working at once.
    Rm {
        /// Account id.
        id: String,
        /// Access key id.
        key: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
}

/// Zips a folder (keeping executable bits, for `bootstrap`), or reads a .zip as is.
pub(crate) fn package(path: &Path) -> Result<Vec<u8>> {
    if path.is_file() {
        return std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    }
    if !path.is_dir() {
        bail!("{} is neither a folder nor a .zip file", path.display());
    }
    let mut files = Vec::new();
    collect(path, path, &mut files)?;
    files.sort();
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for rel in files {
        let full = path.join(&rel);
        let meta = std::fs::metadata(&full)?;
        use std::os::unix::fs::PermissionsExt;
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode);
        w.start_file(rel.to_string_lossy(), opts)?;
        w.write_all(&std::fs::read(&full)?)?;
    }
    Ok(w.finish()?.into_inner())
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let p = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            collect(root, &p, out)?;
        } else if ft.is_file() {
            out.push(p.strip_prefix(root)?.to_path_buf());
        }
    }
    Ok(())
}

fn env_map(vars: &[String]) -> Result<serde_json::Map<String, Value>> {
    let mut m = serde_json::Map::new();
    for v in vars {
        let (k, val) = v
            .split_once('=')
            .with_context(|| format!("--env {v}: expected KEY=VALUE"))?;
        m.insert(k.to_string(), json!(val));
    }
    Ok(m)
}

pub fn deploy(a: DeployArgs) -> Result<ExitCode> {
    let client = Client::new(&a.endpoint)?;
    let zip = package(&a.path)?;
    let zip_b64 = base64::engine::general_purpose::STANDARD.encode(&zip);
    let fpath = format!("/2015-03-31/functions/{}", enc(&a.name));
    let exists = client.send("GET", &fpath, "", &[], b"")?;
    let mut config = json!({ "Runtime": a.runtime, "Handler": a.handler });
    if let Some(m) = a.memory {
        config["MemorySize"] = json!(m);
    }
    if let Some(t) = a.timeout {
        config["Timeout"] = json!(t);
    }
    if !a.env.is_empty() {
        config["Environment"] = json!({ "Variables": env_map(&a.env)? });
    }
    if let Some(d) = &a.description {
        config["Description"] = json!(d);
    }
    crate::cli_layer::add_layers(&mut config, &a.layers);
    let result = if exists.status == 404 {
        let mut body = config;
        body["FunctionName"] = json!(a.name);
        body["Role"] = json!(a.role);
        body["Code"] = json!({ "ZipFile": zip_b64 });
        let r = client
            .send(
                "POST",
                "/2015-03-31/functions",
                "",
                &[("content-type", "application/json")],
                body.to_string().as_bytes(),
            )?
            .ok()?;
        println!("created {}", a.name);
        print_runtime_note(&r);
        r.json()?
    } else {
        exists.ok()?;
        client
            .send(
                "PUT",
                &format!("{fpath}/code"),
                "",
                &[("content-type", "application/json")],
                json!({ "ZipFile": zip_b64 }).to_string().as_bytes(),
            )?
            .ok()?;
        let r = client
            .send(
                "PUT",
                &format!("{fpath}/configuration"),
                "",
                &[("content-type", "application/json")],
                config.to_string().as_bytes(),
            )?
            .ok()?;
        println!("updated {}", a.name);
        print_runtime_note(&r);
        r.json()?
    };
    println!(
        "  arn:        {}\n  code:       {} ({} bytes)\n  revision:   {}",
        result["FunctionArn"].as_str().unwrap_or_default(),
        result["CodeSha256"].as_str().unwrap_or_default(),
        result["CodeSize"],
        result["RevisionId"].as_str().unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// Says loudly when the server runs the function on a nearer runtime version than it names.
fn print_runtime_note(r: &crate::client::Answer) {
    if let Some(note) = r.header(updraft_api::RUNTIME_NOTE_HEADER) {
        println!("  NOTE:       {note}");
        eprintln!("warning: {note}");
    }
}

pub fn ls(a: LsArgs) -> Result<ExitCode> {
    let client = Client::new(&a.endpoint)?;
    let mut functions = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let q = match &marker {
            Some(m) => format!("Marker={}", enc(m)),
            None => String::new(),
        };
        let page = client
            .send("GET", "/2015-03-31/functions", &q, &[], b"")?
            .ok()?
            .json()?;
        if let Some(items) = page["Functions"].as_array() {
            functions.extend(items.iter().cloned());
        }
        match page["NextMarker"].as_str() {
            Some(m) => marker = Some(m.to_string()),
            None => break,
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&functions)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<16} {:>7} {:>7}  LAST MODIFIED",
        "NAME", "RUNTIME", "MEMORY", "TIMEOUT"
    );
    for f in &functions {
        println!(
            "{:<40} {:<16} {:>7} {:>7}  {}",
            f["FunctionName"].as_str().unwrap_or_default(),
            f["Runtime"].as_str().unwrap_or_default(),
            f["MemorySize"].to_string(),
            f["Timeout"].to_string(),
            f["LastModified"].as_str().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn rm(a: RmArgs) -> Result<ExitCode> {
    let client = Client::new(&a.endpoint)?;
    client
        .send(
            "DELETE",
            &format!("/2015-03-31/functions/{}", enc(&a.name)),
            "",
            &[],
            b"",
        )?
        .ok()?;
    println!("deleted {}", a.name);
    Ok(ExitCode::SUCCESS)
}

pub fn invoke(a: InvokeArgs) -> Result<ExitCode> {
    let client = Client::new(&a.endpoint)?;
    let payload = match a.payload.as_deref() {
        None => b"{}".to_vec(),
        Some("-") => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
            buf
        }
        Some(p) => p.as_bytes().to_vec(),
    };
    let q = match &a.qualifier {
        Some(q) => format!("Qualifier={}", enc(q)),
        None => String::new(),
    };
    if a.asynchronous {
        let r = client
            .send(
                "POST",
                &format!("/2015-03-31/functions/{}/invocations", enc(&a.name)),
                &q,
                &[("x-amz-invocation-type", "Event")],
                &payload,
            )?
            .ok()?;
        println!(
            "queued, request id {}",
            r.header("x-amzn-requestid").unwrap_or("?")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let r = client
        .send(
            "POST",
            &format!("/2015-03-31/functions/{}/invocations", enc(&a.name)),
            &q,
            &[("x-amz-log-type", "Tail")],
            &payload,
        )?
        .ok()?;
    if let Some(tail) = r.header("x-amz-log-result") {
        let text = base64::engine::general_purpose::STANDARD
            .decode(tail)
            .unwrap_or_default();
        eprint!("{}", String::from_utf8_lossy(&text));
    }
    println!("{}", String::from_utf8_lossy(&r.body));
    if let Some(fe) = r.header("x-amz-function-error") {
        eprintln!("function error: {fe}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `updraft events`: a function's queued, retrying and failed asynchronous events.
pub fn events(a: EventsArgs) -> Result<ExitCode> {
    let client = Client::new(&a.endpoint)?;
    let v = client
        .send(
            "GET",
            &format!("/updraft/v1/functions/{}/events", enc(&a.name)),
            "",
            &[],
            b"",
        )?
        .ok()?
        .json()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    println!(
        "pending {}  in flight {}  retrying {}  failed {}",
        n("Pending"),
        n("InFlight"),
        n("Retrying"),
        n("Failed")
    );
    let items = v["Events"].as_array().cloned().unwrap_or_default();
    if !items.is_empty() {
        println!(
            "{:<36}  {:<9}  {:>7}  {:>8}  LAST ERROR",
            "REQUEST ID", "STATE", "ATTEMPT", "FAILURES"
        );
    }
    for e in &items {
        let state = match (e["state"].as_str(), e["retrying"].as_bool()) {
            (Some("pending"), Some(true)) => "retrying",
            (Some("leased"), _) => "in flight",
            (Some(s), _) => s,
            _ => "?",
        };
        println!(
            "{:<36}  {:<9}  {:>7}  {:>8}  {}",
            e["request_id"].as_str().unwrap_or_default(),
            state,
            e["attempt"].as_u64().unwrap_or(0),
            e["failures"].as_u64().unwrap_or(0),
            e["last_error"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_since(s: &str) -> Result<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("--since {s}: expected e.g. 10m"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--since {s}: unit must be s, m, h or d"),
    };
    Ok(secs * 1000)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn logs(a: LogsArgs) -> Result<ExitCode> {
    let client = Client::new(&a.endpoint)?;
    let path = format!("/updraft/v1/functions/{}/logs", enc(&a.name));
    let mut since = now_ms().saturating_sub(parse_since(&a.since)?);
    let mut printed: u64 = 0;
    loop {
        let mut last = since;
        let mut same_ms = 0u64;
        // One round reads every page from `since` on; the server bounds each page.
        let mut token: Option<String> = None;
        loop {
            let query = match &token {
                Some(t) => format!("nextToken={}&since_ms={since}", enc(t)),
                None => format!("since_ms={since}"),
            };
            let r = client.send("GET", &path, &query, &[], b"")?.ok()?.json()?;
            let events = r["events"].as_array().cloned().unwrap_or_default();
            for e in &events {
                let ts = e["timestamp_ms"].as_u64().unwrap_or(0);
                // Events at the boundary millisecond were printed by the previous round.
                if ts == since && same_ms < printed {
                    same_ms += 1;
                    continue;
                }
                println!("{}", e["message"].as_str().unwrap_or_default());
                if ts == last {
                    printed += 1;
                } else {
                    last = ts;
                    printed = 1;
                }
            }
            match r["nextToken"].as_str() {
                Some(t) if !events.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        if !a.follow {
            return Ok(ExitCode::SUCCESS);
        }
        since = last;
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// `updraft runtime install`: runs on the host, without a server.
pub fn runtime(a: RuntimeArgs) -> Result<ExitCode> {
    use updraft_engine::runtime_install;
    let RuntimeCommand::Install {
        runtime,
        version,
        data_dir,
        cache_dir,
        refresh,
    } = a.command;
    let cache = cache_dir.unwrap_or_else(runtime_install::default_cache_dir);
    eprintln!(
        "installing {runtime} ({}@{}) into {}",
        runtime_install::node_package()?,
        version
            .clone()
            .unwrap_or_else(|| format!("{}", runtime_install::node_major(&runtime).unwrap_or(0))),
        data_dir.display()
    );
    let done =
        runtime_install::install_node(&runtime, version.as_deref(), &data_dir, &cache, refresh)
            .with_context(|| format!("installing {runtime}"))?;
    println!(
        "installed {} = Node.js {} at {}{}",
        done.runtime,
        done.version,
        done.node.display(),
        if done.cached {
            format!(" (from the cache in {})", cache.display())
        } else {
            String::new()
        }
    );
    println!(
        "restart `updraft serve --data-dir {}` to use it",
        data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn doctor(a: DoctorArgs) -> Result<ExitCode> {
    let report = updraft_sandbox::doctor();
    let runtimes = updraft_engine::probe_runtimes(&updraft_engine::RuntimeOptions {
        data_dir: Some(a.data_dir.clone()),
        overrides: a.runtimes.clone(),
        strict: false,
    });
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "isolation": report,
                "degraded": report.degraded(),
                "prewarm": updraft_sandbox::prewarm_supported(),
                "runtimes": runtimes.iter().map(|r| json!({
                    "id": r.id, "available": r.available,
                    "interpreter": r.interpreter, "version": r.interpreter_version, "reason": r.reason,
                    "exact": r.exact, "source": r.source, "note": r.note,
                })).collect::<Vec<_>>(),
            }))?
        );
    } else {
        println!("{report}");
        println!(
            "Pre-warmed environments: {}",
            if updraft_sandbox::prewarm_supported() {
                "yes (cold starts take an environment built ahead of time)"
            } else {
                "no (needs root and Linux 5.12: every cold start builds its environment)"
            }
        );
        println!("Runtimes:");
        for r in &runtimes {
            match (&r.interpreter, r.available) {
                (Some(i), true) => println!(
                    "  {:<16} {}  {} {}{}",
                    r.id,
                    if r.exact { "yes" } else { "NEAREST" },
                    i.display(),
                    r.interpreter_version.as_deref().unwrap_or(""),
                    r.source
                        .as_deref()
                        .map(|s| format!(" [{s}]"))
                        .unwrap_or_default()
                ),
                (None, true) => println!("  {:<16} yes  (the package's bootstrap)", r.id),
                _ => println!("  {:<16} no   {}", r.id, r.reason.as_deref().unwrap_or("")),
            }
        }
    }
    if !a.json {
        for note in runtimes.iter().filter_map(|r| r.note.as_deref()) {
            println!("NOTE: {note}");
        }
    }
    Ok(if report.degraded().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

const ADMIN_ACCOUNTS: &str = "/updraft/admin/v1/accounts";

/// Prints a new key pair: the one time its secret is shown.
fn print_new_key(v: &Value, format: Format) -> Result<()> {
    let field = |k: &str| -> Result<String> {
        v[k].as_str()
            .map(str::to_string)
            .with_context(|| format!("the server's answer has no {k}"))
    };
    let (account, key, secret) = (
        field("AccountId")?,
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
    );
    match format {
        Format::Json => println!(
            "{{\"AccountId\": {}, \"AccessKeyId\": {}, \"SecretAccessKey\": {}}}",
            json!(account),
            json!(key),
            json!(secret)
        ),
        Format::Text => {
            println!("  account id:        {account}");
            println!("  access key id:     {key}");
            println!("  secret access key: {secret}");
            println!("The secret is shown only now; keep it safe.");
        }
    }
    Ok(())
}

pub fn account(a: AccountArgs) -> Result<ExitCode> {
    match a.command {
        AccountCommand::Create {
            name,
            format,
            endpoint,
        } => {
            let r = Client::new(&endpoint)?
                .send(
                    "POST",
                    ADMIN_ACCOUNTS,
                    "",
                    &[("content-type", "application/json")],
                    json!({ "Name": name }).to_string().as_bytes(),
                )?
                .ok()?
                .json()?;
            if format == Format::Text {
                println!(
                    "created account {}",
                    r["AccountId"].as_str().unwrap_or_default()
                );
            }
            print_new_key(&r, format)?;
        }
        AccountCommand::Ls { format, endpoint } => {
            let r = Client::new(&endpoint)?
                .send("GET", ADMIN_ACCOUNTS, "", &[], b"")?
                .ok()?
                .json()?;
            let accounts = r["Accounts"].as_array().cloned().unwrap_or_default();
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&accounts)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<14} {:<9} {:<21} NAME",
                "ACCOUNT ID", "STATUS", "CREATED"
            );
            for acct in &accounts {
                let root = if acct["Root"].as_bool() == Some(true) {
                    " (root)"
                } else {
                    ""
                };
                println!(
                    "{:<14} {:<9} {:<21} {}{root}",
                    acct["AccountId"].as_str().unwrap_or_default(),
                    acct["Status"].as_str().unwrap_or_default(),
                    acct["CreatedAt"].as_str().unwrap_or_default(),
                    acct["Name"].as_str().unwrap_or_default(),
                );
            }
        }
        AccountCommand::Disable { id, endpoint } => {
            Client::new(&endpoint)?
                .send(
                    "POST",
                    &format!("{ADMIN_ACCOUNTS}/{}/disable", enc(&id)),
                    "",
                    &[],
                    b"",
                )?
                .ok()?;
            println!("disabled account {id}");
        }
        AccountCommand::Key(KeyCommand::Create {
            id,
            format,
            endpoint,
        }) => {
            let r = Client::new(&endpoint)?
                .send(
                    "POST",
                    &format!("{ADMIN_ACCOUNTS}/{}/keys", enc(&id)),
                    "",
                    &[],
                    b"",
                )?
                .ok()?
                .json()?;
            if format == Format::Text {
                println!("created access key for account {id}");
            }
            print_new_key(&r, format)?;
        }
        AccountCommand::Key(KeyCommand::Ls {
            id,
            format,
            endpoint,
        }) => {
            let r = Client::new(&endpoint)?
                .send(
                    "GET",
                    &format!("{ADMIN_ACCOUNTS}/{}/keys", enc(&id)),
                    "",
                    &[],
                    b"",
                )?
                .ok()?
                .json()?;
            let keys = r["AccessKeys"].as_array().cloned().unwrap_or_default();
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
                return Ok(ExitCode::SUCCESS);
            }
            for k in &keys {
                println!(
                    "{}  {}",
                    k["AccessKeyId"].as_str().unwrap_or_default(),
                    k["CreatedAt"].as_str().unwrap_or_default()
                );
            }
        }
        AccountCommand::Key(KeyCommand::Rm { id, key, endpoint }) => {
            Client::new(&endpoint)?
                .send(
                    "DELETE",
                    &format!("{ADMIN_ACCOUNTS}/{}/keys/{}", enc(&id), enc(&key)),
                    "",
                    &[],
                    b"",
                )?
                .ok()?;
            println!("deleted access key {key} of account {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_units() {
        assert_eq!(parse_since("30s").unwrap(), 30_000);
        assert_eq!(parse_since("10m").unwrap(), 600_000);
        assert_eq!(parse_since("2h").unwrap(), 7_200_000);
        assert!(parse_since("5y").is_err());
    }

    #[test]
    fn package_keeps_exec_bit() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("bootstrap"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            d.path().join("bootstrap"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::create_dir(d.path().join("lib")).unwrap();
        std::fs::write(d.path().join("lib/x.py"), "x").unwrap();
        let zip = package(d.path()).unwrap();
        let mut z = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
        let b = z.by_name("bootstrap").unwrap();
        assert_eq!(b.unix_mode().unwrap() & 0o777, 0o755);
        drop(b);
        assert!(z.by_name("lib/x.py").is_ok());
    }
}
