//! A small SigV4-signing HTTP client for the CLI: every command talks to a running server
//! through the same public API as boto3 or the aws CLI would.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use updraft_sigv4::{Credentials, RequestParts, SigningParams};

/// Where the server is and who we are.
#[derive(clap::Args, Clone)]
pub struct Endpoint {
    /// URL of the Updraft server.
    #[arg(
        long,
        env = "UPDRAFT_ENDPOINT",
        default_value = "http://127.0.0.1:9070"
    )]
    pub endpoint: String,
    /// Access key id (default: the server's data dir credentials file).
    #[arg(long, env = "UPDRAFT_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,
    /// Secret access key.
    #[arg(long, env = "UPDRAFT_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: Option<String>,
    /// Data dir whose `credentials` file to use when no keys are given.
    #[arg(long, env = "UPDRAFT_DATA_DIR", default_value = ".updraft")]
    pub data_dir: PathBuf,
    /// Region to sign for.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

/// Reads the `[default]` profile of an AWS-style credentials file.
pub fn read_credentials_file(path: &Path) -> Result<Credentials> {
    let text = std::fs::read_to_string(path)?;
    let mut id = None;
    let mut secret = None;
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_string()),
                "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(i), Some(s)) => Ok(Credentials::new(i, s)),
        _ => bail!(
            "no aws_access_key_id / aws_secret_access_key in {}",
            path.display()
        ),
    }
}

/// A connected, credentialed client.
pub struct Client {
    base: String,
    host: String,
    creds: Credentials,
    region: String,
    agent: ureq::Agent,
}

/// An answer from the server.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("server answered with invalid JSON")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Turns an AWS error answer into a readable error.
    pub fn ok(self) -> Result<Self> {
        if self.status < 300 {
            return Ok(self);
        }
        let kind = self
            .header("x-amzn-ErrorType")
            .unwrap_or("Error")
            .to_string();
        let msg = self
            .json()
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned());
        Err(anyhow!("{kind} ({}): {msg}", self.status))
    }
}

impl Client {
    pub fn new(e: &Endpoint) -> Result<Self> {
        let creds = match (&e.access_key_id, &e.secret_access_key) {
            (Some(i), Some(s)) => Credentials::new(i.clone(), s.clone()),
            _ => {
                let path = e.data_dir.join("credentials");
                read_credentials_file(&path).with_context(|| {
                    format!(
                        "no credentials: set UPDRAFT_ACCESS_KEY_ID and UPDRAFT_SECRET_ACCESS_KEY or point --data-dir at the server's data dir ({} is not readable)",
                        path.display()
                    )
                })?
            }
        };
        let base = e.endpoint.trim_end_matches('/').to_string();
        let host = base
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("endpoint must be an http:// URL"))?
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(Self {
            base,
            host,
            creds,
            region: e.region.clone(),
            agent: ureq::AgentBuilder::new()
                .timeout_read(std::time::Duration::from_secs(960))
                .build(),
        })
    }

    /// Sends a signed request; `path` must already be percent-encoded.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer> {
        let mut all: Vec<(String, String)> = vec![("host".into(), self.host.clone())];
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let signed = updraft_sigv4::sign_headers(
            &RequestParts {
                method,
                path,
                query,
                headers: &all,
            },
            body,
            &SigningParams {
                credentials: &self.creds,
                region: &self.region,
                service: "lambda",
                time: time::OffsetDateTime::now_utc(),
            },
        )?;
        let url = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query}", self.base)
        };
        let mut req = self.agent.request(method, &url);
        for (k, v) in all.iter().skip(1).chain(signed.iter()) {
            req = req.set(k, v);
        }
        let resp = match req.send_bytes(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(anyhow!("cannot reach {}: {e}", self.base)),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string())))
            .collect();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut body)?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// Percent-encodes one path segment or query value as AWS clients do.
pub fn enc(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}
