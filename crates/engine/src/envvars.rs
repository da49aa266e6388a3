//! The environment of a runtime process, built as Lambda builds it.
//!
//! Three layers, later ones win:
//! 1. Lambda's unreserved defaults (`LANG`, `PATH`, `LD_LIBRARY_PATH`, and `PYTHONPATH` or
//!    `NODE_PATH` for those runtimes): a function may override these, as on Lambda;
//! 2. the function's own variables;
//! 3. the reserved variables (`AWS_LAMBDA_*`, `AWS_REGION`, `_HANDLER`, `TZ`, ...), which a function
//!    cannot change.
//!
//! `HOME` is not set (Lambda does not set it). `PATH` starts with the interpreter `bin` directories
//! found on the host so that `python3` and `node` resolve to the interpreters mounted in the jail.

use std::path::PathBuf;

use crate::FunctionSpec;
use crate::runtimes::Family;

/// Address of the Runtime API inside every environment (its own network namespace).
pub(crate) const RUNTIME_API_ADDR: &str = "127.0.0.1:9001";

/// Names the abstract Unix socket on which the Runtime API is also served, `@` standing for the
/// leading NUL of an abstract name (padded, see `updraft_sandbox::abstract_socket_addr`). Set for
/// the runtimes whose client is Updraft's own (Python, Node.js), which prefer it to TCP: a message
/// on a Unix socket skips the TCP/IP stack that loopback runs twice per message (send and receive
/// side, both in the sender's time).
pub(crate) const RUNTIME_API_SOCKET_VAR: &str = "_UPDRAFT_RUNTIME_API_SOCKET";

const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin/:/bin:/opt/bin";
const LD_LIBRARY_PATH: &str = "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib";

/// Inputs besides the function that shape its environment.
pub(crate) struct EnvContext<'a> {
    pub region: &'a str,
    pub log_stream: &'a str,
    pub family: Family,
    /// Interpreter `bin` directories, put on `PATH` ahead of the system directories.
    pub path_dirs: &'a [PathBuf],
    /// Started ahead of any invocation for provisioned concurrency (Lambda tells the function
    /// through `AWS_LAMBDA_INITIALIZATION_TYPE`).
    pub provisioned: bool,
}

/// An ordered set of variables: setting an existing name replaces its value in place.
#[derive(Default)]
struct Vars(Vec<(String, String)>);

impl Vars {
    fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }
}

/// The complete environment of the runtime process of `spec`.
pub(crate) fn lambda_environment(
    spec: &FunctionSpec,
    ctx: &EnvContext<'_>,
) -> Vec<(String, String)> {
    let mut vars = Vars::default();

    let mut path = String::new();
    for dir in ctx.path_dirs {
        path.push_str(&dir.to_string_lossy());
        path.push(':');
    }
    path.push_str(SYSTEM_PATH);
    vars.set("PATH", path);
    vars.set("LD_LIBRARY_PATH", LD_LIBRARY_PATH);
    vars.set("LANG", "en_US.UTF-8");
    match ctx.family {
        Family::Python => vars.set("PYTHONPATH", "/var/runtime"),
        Family::Node => vars.set("NODE_PATH", node_path(&spec.runtime)),
        Family::Java | Family::DotNet | Family::Provided => {}
    }

    for (name, value) in &spec.environment {
        vars.set(name, value.as_str());
    }

    vars.set("AWS_LAMBDA_FUNCTION_NAME", spec.function_name.as_str());
    vars.set("AWS_LAMBDA_FUNCTION_VERSION", spec.version.as_str());
    vars.set(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        spec.memory_mb.to_string(),
    );
    vars.set("AWS_LAMBDA_LOG_GROUP_NAME", spec.log_group.as_str());
    vars.set("AWS_LAMBDA_LOG_STREAM_NAME", ctx.log_stream);
    // With `LogFormat: JSON` Lambda tells the runtime client the format and the application's
    // level; the text format sets neither.
    if spec.logging.json {
        vars.set("AWS_LAMBDA_LOG_FORMAT", "JSON");
        vars.set(
            "AWS_LAMBDA_LOG_LEVEL",
            spec.logging
                .application_level
                .as_deref()
                .unwrap_or("INFO")
                .to_string(),
        );
    }
    vars.set("AWS_REGION", ctx.region);
    vars.set("AWS_DEFAULT_REGION", ctx.region);
    // Lambda does not define AWS_EXECUTION_ENV for OS-only runtimes (the `provided` family).
    if ctx.family != Family::Provided {
        vars.set("AWS_EXECUTION_ENV", format!("AWS_Lambda_{}", spec.runtime));
    }
    vars.set(
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        if ctx.provisioned {
            "provisioned-concurrency"
        } else {
            "on-demand"
        },
    );
    vars.set("AWS_LAMBDA_RUNTIME_API", RUNTIME_API_ADDR);
    if matches!(ctx.family, Family::Python | Family::Node) {
        vars.set(
            RUNTIME_API_SOCKET_VAR,
            format!("@{}", updraft_sandbox::RUNTIME_API_SOCKET_NAME),
        );
    }
    vars.set("_HANDLER", spec.handler.as_str());
    vars.set("LAMBDA_TASK_ROOT", "/var/task");
    vars.set("LAMBDA_RUNTIME_DIR", "/var/runtime");
    vars.set("TZ", ":UTC");
    vars.0
}

/// `NODE_PATH` of a Node.js runtime id, e.g. `nodejs20.x` looks in `/opt/nodejs/node20/...` first.
fn node_path(runtime: &str) -> String {
    let major = runtime
        .strip_prefix("nodejs")
        .and_then(|r| r.strip_suffix(".x"))
        .unwrap_or("");
    let mut p = String::new();
    if !major.is_empty() {
        p.push_str(&format!("/opt/nodejs/node{major}/node_modules:"));
    }
    p.push_str("/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task");
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(runtime: &str, env: &[(&str, &str)]) -> FunctionSpec {
        FunctionSpec {
            account_id: "123456789012".into(),
            function_name: "hello".into(),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:hello".into(),
            version: "$LATEST".into(),
            generation: "g1".into(),
            runtime: runtime.into(),
            handler: "app.handler".into(),
            memory_mb: 256,
            timeout_s: 3,
            ephemeral_mb: 512,
            environment: env
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            code_dir: "/tmp/code".into(),
            opt_dir: None,
            reserved_concurrency: None,
            log_group: "/aws/lambda/hello".into(),
            logging: Default::default(),
        }
    }

    fn get<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
        let mut found = vars.iter().filter(|(n, _)| n == name);
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "{name} set twice");
        first
    }

    fn ctx(family: Family, dirs: &[PathBuf]) -> EnvContext<'_> {
        EnvContext {
            region: "eu-west-1",
            log_stream: "2024/01/02/[$LATEST]0123456789abcdef0123456789abcdef",
            family,
            path_dirs: dirs,
            provisioned: false,
        }
    }

    #[test]
    fn python_environment() {
        let dirs = [PathBuf::from("/opt/py/bin")];
        let v = lambda_environment(
            &spec("python3.12", &[("GREETING", "hi")]),
            &ctx(Family::Python, &dirs),
        );
        assert_eq!(get(&v, "GREETING"), Some("hi"));
        assert_eq!(get(&v, "AWS_LAMBDA_FUNCTION_NAME"), Some("hello"));
        assert_eq!(get(&v, "AWS_LAMBDA_FUNCTION_VERSION"), Some("$LATEST"));
        assert_eq!(get(&v, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), Some("256"));
        assert_eq!(
            get(&v, "AWS_LAMBDA_LOG_GROUP_NAME"),
            Some("/aws/lambda/hello")
        );
        assert_eq!(
            get(&v, "AWS_LAMBDA_LOG_STREAM_NAME"),
            Some("2024/01/02/[$LATEST]0123456789abcdef0123456789abcdef")
        );
        assert_eq!(get(&v, "AWS_REGION"), Some("eu-west-1"));
        assert_eq!(get(&v, "AWS_DEFAULT_REGION"), Some("eu-west-1"));
        assert_eq!(get(&v, "AWS_EXECUTION_ENV"), Some("AWS_Lambda_python3.12"));
        assert_eq!(get(&v, "AWS_LAMBDA_INITIALIZATION_TYPE"), Some("on-demand"));
        assert_eq!(get(&v, "AWS_LAMBDA_RUNTIME_API"), Some("127.0.0.1:9001"));
        assert_eq!(
            get(&v, RUNTIME_API_SOCKET_VAR),
            Some("@updraft-runtime-api")
        );
        assert_eq!(get(&v, "_HANDLER"), Some("app.handler"));
        assert_eq!(get(&v, "LAMBDA_TASK_ROOT"), Some("/var/task"));
        assert_eq!(get(&v, "LAMBDA_RUNTIME_DIR"), Some("/var/runtime"));
        assert_eq!(get(&v, "TZ"), Some(":UTC"));
        assert_eq!(get(&v, "LANG"), Some("en_US.UTF-8"));
        assert_eq!(get(&v, "PYTHONPATH"), Some("/var/runtime"));
        assert_eq!(get(&v, "NODE_PATH"), None);
        assert_eq!(get(&v, "HOME"), None);
        assert_eq!(
            get(&v, "PATH"),
            Some("/opt/py/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin")
        );
        assert_eq!(
            get(&v, "LD_LIBRARY_PATH"),
            Some(
                "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"
            )
        );
    }

    #[test]
    fn reserved_variables_override_function_variables() {
        let s = spec(
            "nodejs20.x",
            &[
                ("AWS_REGION", "mars-1"),
                ("_HANDLER", "evil"),
                (RUNTIME_API_SOCKET_VAR, "@elsewhere"),
                ("LANG", "C"),
                ("PATH", "/mine"),
            ],
        );
        let v = lambda_environment(&s, &ctx(Family::Node, &[]));
        assert_eq!(get(&v, "AWS_REGION"), Some("eu-west-1"));
        assert_eq!(get(&v, "_HANDLER"), Some("app.handler"));
        assert_eq!(
            get(&v, RUNTIME_API_SOCKET_VAR),
            Some("@updraft-runtime-api")
        );
        // Unreserved ones are the function's to change, as on Lambda.
        assert_eq!(get(&v, "LANG"), Some("C"));
        assert_eq!(get(&v, "PATH"), Some("/mine"));
        assert_eq!(
            get(&v, "NODE_PATH"),
            Some(
                "/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task"
            )
        );
        assert_eq!(get(&v, "AWS_EXECUTION_ENV"), Some("AWS_Lambda_nodejs20.x"));
    }

    #[test]
    fn provisioned_environments_say_so() {
        let s = spec("python3.12", &[("AWS_LAMBDA_INITIALIZATION_TYPE", "mine")]);
        let mut c = ctx(Family::Python, &[]);
        c.provisioned = true;
        let v = lambda_environment(&s, &c);
        assert_eq!(
            get(&v, "AWS_LAMBDA_INITIALIZATION_TYPE"),
            Some("provisioned-concurrency")
        );
        let v = lambda_environment(&s, &ctx(Family::Python, &[]));
        assert_eq!(get(&v, "AWS_LAMBDA_INITIALIZATION_TYPE"), Some("on-demand"));
    }

    #[test]
    fn provided_runtimes_have_no_execution_env() {
        let v = lambda_environment(&spec("provided.al2023", &[]), &ctx(Family::Provided, &[]));
        assert_eq!(get(&v, "AWS_EXECUTION_ENV"), None);
        assert_eq!(get(&v, "PYTHONPATH"), None);
        assert_eq!(get(&v, "AWS_LAMBDA_RUNTIME_API"), Some("127.0.0.1:9001"));
        // Custom runtimes bring their own client, which speaks TCP.
        assert_eq!(get(&v, RUNTIME_API_SOCKET_VAR), None);
    }

    #[test]
    fn function_variables_keep_their_order() {
        let v = lambda_environment(
            &spec("provided", &[("B", "1"), ("A", "2")]),
            &ctx(Family::Provided, &[]),
        );
        let b = v.iter().position(|(n, _)| n == "B").unwrap();
        let a = v.iter().position(|(n, _)| n == "A").unwrap();
        assert!(b < a);
    }
}
