//! The runtime registry: which Lambda runtime ids this host can run, on which interpreter, and
//! how each one is started.
//!
//! Every `python3.N` and `nodejsNN.x` id is mapped to an interpreter explicitly, once at startup:
//!
//! 1. an operator's `--runtime ID=PATH` wins;
//! 2. otherwise an interpreter of exactly the id's version: for Python `python3.N` or `python3` on
//!    `PATH` reporting 3.N; for Node.js a release installed by `updraft runtime install` under
//!    `<data-dir>/runtimes/installed/`, `nodeNN` on `PATH`, or `node` reporting vNN;
//! 3. otherwise the nearest version found (closest minor or major, the newer one on a tie), with
//!    a note that is shown wherever the function is seen (deploy, doctor, the server log, the
//!    function's log stream) because code written for 3.12 may not behave the same on 3.11.
//!    With `--strict-runtimes` such an id is refused instead.
//!
//! Python interpreters are run once to learn their real executable and `sys.base_prefix` (a
//! pyenv shim or a venv resolves to the real installation; a shim that cannot run is ignored);
//! Node.js executables are resolved through symlinks. `provided*` runs the package's own
//! `/var/task/bootstrap`. Java ids run on a JDK of the major they name or a newer one (class files
//! of a newer release do not load on an older JVM), found by [`crate::jvm`].
//!
//! Whatever the runtime, the chosen interpreters' prefixes are made visible in every jail (at the
//! same path) and the default interpreters' `bin` directories are put on `PATH`, so a
//! `provided.al2023` bootstrap can `exec python3 ...` or `exec node ...`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::EngineError;

/// The Python runtime client, served to functions at `/var/runtime/bootstrap.py`.
const PYTHON_CLIENT: &str = include_str!("../runtimes/python/bootstrap.py");
/// The Node.js runtime client, served to functions at `/var/runtime/bootstrap.mjs`.
const NODE_CLIENT: &str = include_str!("../runtimes/node/bootstrap.mjs");
/// A module the Node.js client loads while it waits in a pre-warmed environment.
const NODE_WARMUP: &str = include_str!("../runtimes/node/warmup.cjs");

/// Every runtime id Updraft knows, in the order `Engine::runtimes` lists them.
pub(crate) const KNOWN_RUNTIMES: &[&str] = &[
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
    "java8.al2",
    "java11",
    "java17",
    "java21",
    "java25",
    "dotnet8",
    "dotnet10",
    "provided",
    "provided.al2",
    "provided.al2023",
];

/// Python minor versions looked for as `python3.N` on `PATH`.
const PYTHON_MINORS: std::ops::RangeInclusive<u32> = 9..=14;
/// Node.js majors looked for as `nodeNN` on `PATH` and under the install directory.
const NODE_MAJORS: &[u32] = &[18, 20, 22, 24];

/// Families of runtimes that start the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Python,
    Node,
    Java,
    /// C# on Mono (see [`crate::dotnet`]).
    DotNet,
    Provided,
}

impl Family {
    /// The family of a Lambda runtime id, `None` for ids Updraft does not know.
    pub(crate) fn of(runtime: &str) -> Option<Family> {
        if !KNOWN_RUNTIMES.contains(&runtime) {
            return None;
        }
        Some(if runtime.starts_with("python") {
            Family::Python
        } else if runtime.starts_with("nodejs") {
            Family::Node
        } else if runtime.starts_with("java") {
            Family::Java
        } else if runtime.starts_with("dotnet") {
            Family::DotNet
        } else {
            Family::Provided
        })
    }
}

/// How the operator wants runtime ids mapped (`updraft serve --runtime`, `--strict-runtimes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Where `updraft runtime install` puts interpreters (`<data-dir>`); `None` looks only on
    /// `PATH`.
    pub data_dir: Option<PathBuf>,
    /// `--runtime ID=PATH`: this id runs on this interpreter, whatever else the host has.
    pub overrides: Vec<(String, PathBuf)>,
    /// Refuse ids that would run on another version than they name, instead of noting it.
    pub strict: bool,
}

impl RuntimeOptions {
    /// Parses one `--runtime ID=PATH` argument; Python, Node.js and Java ids can be mapped (a
    /// Java id to a `java` executable).
    pub fn parse_override(arg: &str) -> Result<(String, PathBuf), String> {
        let (id, path) = arg
            .split_once('=')
            .ok_or_else(|| format!("expected ID=PATH, got {arg:?}"))?;
        match Family::of(id) {
            Some(Family::Python | Family::Node | Family::Java | Family::DotNet) => {}
            _ => {
                return Err(format!(
                    "{id:?} is not a Python, Node.js, Java or .NET runtime id Updraft knows"
                ));
            }
        }
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(format!(
                "{}: the interpreter path must be absolute",
                path.display()
            ));
        }
        Ok((id.to_string(), path))
    }
}

/// One runtime id as `Engine::runtimes` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeInfo {
    /// Lambda runtime id, e.g. `python3.12`.
    pub id: String,
    /// Whether functions with this runtime can run on this host.
    pub available: bool,
    /// The program started in the jail: the host interpreter, or `/var/task/bootstrap`.
    pub interpreter: Option<PathBuf>,
    /// Version of the interpreter (`3.11.7`, `v20.20.2`), when there is one.
    pub interpreter_version: Option<String>,
    /// Whether the interpreter is of the version the id names (always true without one).
    pub exact: bool,
    /// Where the interpreter was found: `--runtime`, `installed`, or the name found on `PATH`.
    pub source: Option<String>,
    /// Set when the id runs on a nearer version than it names: say so to the user.
    pub note: Option<String>,
    /// Why the runtime is unavailable.
    pub reason: Option<String>,
}

/// An interpreter found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interpreter {
    /// Real path of the executable (symlinks resolved).
    pub exe: PathBuf,
    /// Installation prefix, made visible read-only inside jails.
    pub prefix: PathBuf,
    /// Directory put on `PATH` inside jails.
    pub bin_dir: PathBuf,
    pub version: String,
}

impl Interpreter {
    /// `(major, minor)` of a `3.11.7` or `v20.1.0` version string.
    fn major_minor(&self) -> Option<(u32, u32)> {
        let mut parts = self.version.trim_start_matches('v').split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }
}

/// An interpreter found while discovering, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub interp: Interpreter,
    /// `installed`, or the command name found on `PATH` (`python3.12`, `node`).
    pub source: String,
}

/// The interpreter chosen for one runtime id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    pub interp: Interpreter,
    pub source: String,
    pub exact: bool,
    /// Why the id runs on another version than it names.
    pub note: Option<String>,
    /// Chosen by `--runtime`: the operator's word, which `--strict-runtimes` does not overrule.
    pub by_operator: bool,
}

/// How to start one runtime id.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub family: Family,
    pub argv: Vec<String>,
    /// Name of the `<data_dir>/runtimes/<name>` directory mounted at `/var/runtime`.
    pub client_dir: Option<String>,
    /// The id runs on a nearer version than it names (see [`Choice::note`]).
    pub note: Option<String>,
}

impl Launch {
    /// The command line of an environment of `memory_mb`: the JVM's heap is sized from it.
    pub(crate) fn argv_for(&self, memory_mb: u32) -> Vec<String> {
        let mut argv = self.argv.clone();
        if self.family == Family::Java && !argv.is_empty() {
            argv.splice(1..1, crate::jvm::memory_flags(memory_mb));
        }
        argv
    }
}

/// The interpreters of this host and which runtime id runs on which.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeRegistry {
    /// One entry per Python and Node.js id of [`KNOWN_RUNTIMES`].
    choices: BTreeMap<&'static str, Result<Choice, String>>,
    /// The interpreters `python3` and `node` (first on `PATH`), whose `bin` directories come first
    /// on every jail's `PATH`.
    defaults: Vec<Interpreter>,
    strict: bool,
    /// Where the Java runtime client is compiled (`None`: nowhere, Java cannot start).
    data_dir: Option<PathBuf>,
    /// The compiled runtime clients' directory names per JDK or Mono, compiled once on first
    /// need.
    clients: BTreeMap<PathBuf, Arc<ClientCell>>,
}

/// The compiled runtime client (Java, C#) of one interpreter.
#[derive(Debug, Default)]
struct ClientCell {
    /// Its directory name below `<data-dir>/runtimes/`, or why it could not be compiled.
    dir: OnceLock<Result<String, String>>,
    /// A background compile was started.
    started: AtomicBool,
}

/// Program text run by a host Python to describe itself, one fact per line.
const PYTHON_PROBE: &str = "import sys; print(sys.executable); print(sys.base_prefix); print('%d.%d.%d' % sys.version_info[:3])";

/// The version an id names: `(3, 12)` for `python3.12`, `(22, _)` for `nodejs22.x`.
fn wanted_version(id: &str) -> Option<(u32, Option<u32>)> {
    if let Some(v) = id.strip_prefix("python") {
        let (major, minor) = v.split_once('.')?;
        return Some((major.parse().ok()?, Some(minor.parse().ok()?)));
    }
    if let Some(v) = id.strip_prefix("java") {
        let major = v.strip_suffix(".al2").unwrap_or(v);
        return Some((major.parse().ok()?, None));
    }
    let major = id.strip_prefix("nodejs")?.strip_suffix(".x")?;
    Some((major.parse().ok()?, None))
}

/// Human name of a family's interpreter, for notes.
fn language(family: Family) -> &'static str {
    match family {
        Family::Python => "Python",
        Family::Node => "Node.js",
        Family::Java => "Java",
        Family::DotNet => "Mono",
        Family::Provided => "the package's bootstrap",
    }
}

/// Picks the interpreter for `id` among `found` (in discovery order): the override if any, else
/// one of exactly the version `id` names, else the nearest version with a note. Pure, so the
/// policy is tested without a host.
pub(crate) fn choose(
    id: &str,
    overridden: Option<Result<Candidate, String>>,
    found: &[Candidate],
) -> Result<Choice, String> {
    let family = Family::of(id).ok_or_else(|| format!("unknown runtime {id:?}"))?;
    let (major, minor) = wanted_version(id).ok_or_else(|| format!("{id} names no version"))?;
    let matches = |c: &Candidate| match c.interp.major_minor() {
        Some((ma, mi)) => ma == major && minor.is_none_or(|m| m == mi),
        None => false,
    };
    let choice = |c: &Candidate, note: Option<String>| Choice {
        interp: c.interp.clone(),
        source: c.source.clone(),
        exact: note.is_none(),
        note,
        by_operator: false,
    };
    if let Some(o) = overridden {
        // The operator's word is final, but a mismatch is still worth saying.
        let c = o.map_err(|e| format!("--runtime {id}: {e}"))?;
        let note = (!matches(&c)).then(|| {
            format!(
                "{id} runs on {} {} ({}), as --runtime says, not on the version it names",
                language(family),
                c.interp.version,
                c.interp.exe.display()
            )
        });
        return Ok(Choice {
            by_operator: true,
            ..choice(&c, note)
        });
    }
    if let Some(c) = found.iter().find(|c| matches(c)) {
        return Ok(choice(c, None));
    }
    // Distance in versions: minors for Python (3.x), majors for Node.js; Java only upwards,
    // since an older JVM cannot load the class files of a newer release.
    let distance = |c: &Candidate| -> Option<(u32, std::cmp::Reverse<(u32, u32)>)> {
        let (ma, mi) = c.interp.major_minor()?;
        let d = match minor {
            Some(m) if ma == major => m.abs_diff(mi),
            Some(_) => return None,
            None if family == Family::Java && ma < major => return None,
            None => major.abs_diff(ma),
        };
        Some((d, std::cmp::Reverse((ma, mi))))
    };
    let nearest = found
        .iter()
        .filter_map(|c| distance(c).map(|d| (d, c)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    let hint = match family {
        Family::Node => format!("run `updraft runtime install {id}`, or install it and start "),
        Family::Java => {
            format!("install JDK {major}, e.g. Debian's openjdk-{major}-jdk-headless, or start ")
        }
        _ => "install it and start ".to_string(),
    };
    match nearest {
        Some(c) => Ok(choice(
            c,
            Some(format!(
                "{id} runs on {} {} ({}), the nearest version on this host: {id} itself is not \
                 installed ({hint}`updraft serve --runtime {id}=PATH`)",
                language(family),
                c.interp.version,
                c.interp.exe.display()
            )),
        )),
        None if family == Family::Java => Err(format!(
            "{id}: no JDK of Java {major} or newer on this host ({hint}`updraft serve --runtime \
             {id}=PATH`)"
        )),
        None => Err(format!(
            "{id}: no {} interpreter on this host ({hint}`updraft serve --runtime {id}=PATH`)",
            language(family)
        )),
    }
}

/// Compiles the runtime client of a compiled family (Java, C#) for `interp`.
fn compile_client(family: Family, data_dir: &Path, interp: &Interpreter) -> Result<String, String> {
    match family {
        Family::DotNet => crate::dotnet::ensure_client(data_dir, interp),
        _ => crate::jvm::ensure_client(data_dir, interp),
    }
}

/// The C# ids run on Mono whatever .NET version they name, so the choice is never exact: the
/// operator's Mono, or the one on `PATH`, with a note saying so.
fn choose_mono(
    id: &str,
    overridden: Option<Result<Candidate, String>>,
    found: &[Candidate],
) -> Result<Choice, String> {
    let (c, by_operator) = match overridden {
        Some(o) => (o.map_err(|e| format!("--runtime {id}: {e}"))?, true),
        None => match found.first() {
            Some(c) => (c.clone(), false),
            None => {
                return Err(format!(
                    "{id}: no Mono on this host (install Debian's mono-devel, or start \
                     `updraft serve --runtime {id}=PATH` with a mono executable)"
                ));
            }
        },
    };
    Ok(Choice {
        note: Some(crate::dotnet::note(id, &c.interp)),
        interp: c.interp,
        source: c.source,
        exact: false,
        by_operator,
    })
}

impl RuntimeRegistry {
    /// Finds the host's Python and Node.js interpreters and maps every id to one.
    pub(crate) fn discover(opts: &RuntimeOptions) -> Self {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut pythons: Vec<Candidate> = Vec::new();
        let mut nodes: Vec<Candidate> = Vec::new();
        let mut defaults = Vec::new();
        let add = |list: &mut Vec<Candidate>, c: Candidate| {
            if !list.iter().any(|o| o.interp.exe == c.interp.exe) {
                list.push(c);
            }
        };
        for name in PYTHON_MINORS
            .map(|m| format!("python3.{m}"))
            .chain(["python3".to_string()])
        {
            if let Some(p) = which(&name, &path) {
                match probe_python(&p) {
                    Ok(interp) => {
                        if name == "python3" {
                            defaults.push(interp.clone());
                        }
                        add(
                            &mut pythons,
                            Candidate {
                                interp,
                                source: name,
                            },
                        );
                    }
                    // pyenv shims of versions that are not selected fail here: not an interpreter.
                    Err(e) => tracing::debug!("ignoring {}: {e}", p.display()),
                }
            }
        }
        let installed = opts.data_dir.as_deref().map(installed_dir);
        for major in NODE_MAJORS {
            let mut places: Vec<(PathBuf, String)> = Vec::new();
            if let Some(dir) = &installed {
                places.push((
                    dir.join(format!("node{major}")).join("bin/node"),
                    "installed".into(),
                ));
            }
            if let Some(p) = which(&format!("node{major}"), &path) {
                places.push((p, format!("node{major}")));
            }
            for (p, source) in places {
                if !p.exists() {
                    continue;
                }
                match probe_node(&p) {
                    Ok(interp) => add(&mut nodes, Candidate { interp, source }),
                    Err(e) => tracing::warn!("ignoring {}: {e}", p.display()),
                }
            }
        }
        if let Some(p) = which("node", &path) {
            match probe_node(&p) {
                Ok(interp) => {
                    defaults.push(interp.clone());
                    add(
                        &mut nodes,
                        Candidate {
                            interp,
                            source: "node".into(),
                        },
                    );
                }
                Err(e) => tracing::warn!("ignoring {}: {e}", p.display()),
            }
        }
        let javas = crate::jvm::discover(&path);
        let monos = crate::dotnet::discover(&path);
        let mut choices = BTreeMap::new();
        for id in KNOWN_RUNTIMES {
            let family = Family::of(id).unwrap_or(Family::Provided);
            let found = match family {
                Family::Python => &pythons,
                Family::Node => &nodes,
                Family::Java => &javas,
                Family::DotNet => &monos,
                _ => continue,
            };
            let overridden = opts
                .overrides
                .iter()
                .rev()
                .find(|(o, _)| o == id)
                .map(|(_, p)| {
                    let interp = match family {
                        Family::Python => probe_python(p),
                        Family::Java => crate::jvm::probe(p),
                        Family::DotNet => crate::dotnet::probe(p),
                        _ => probe_node(p),
                    };
                    interp.map(|interp| Candidate {
                        interp,
                        source: "--runtime".into(),
                    })
                });
            let c = if family == Family::DotNet {
                choose_mono(id, overridden, found)
            } else {
                choose(id, overridden, found)
            };
            match &c {
                Ok(Choice {
                    note: Some(n),
                    by_operator: false,
                    ..
                }) if opts.strict => {
                    tracing::warn!("{id} refused (--strict-runtimes): {n}")
                }
                Ok(Choice { note: Some(n), .. }) => tracing::warn!("{n}"),
                Ok(_) => {}
                Err(e) => tracing::warn!("{id} unavailable: {e}"),
            }
            choices.insert(*id, c);
        }
        let mut clients = BTreeMap::new();
        for (id, c) in &choices {
            if let (Some(Family::Java | Family::DotNet), Ok(c)) = (Family::of(id), c) {
                clients
                    .entry(c.interp.exe.clone())
                    .or_insert_with(|| Arc::new(ClientCell::default()));
            }
        }
        RuntimeRegistry {
            choices,
            defaults,
            strict: opts.strict,
            data_dir: opts.data_dir.clone(),
            clients,
        }
    }

    /// Starts compiling the Java runtime client for the JDK `runtime` runs on, on a thread of
    /// its own, unless it is compiled or being compiled: called when a function is given a Java
    /// runtime, so that its first cold start finds the client ready, and a node without Java
    /// functions never runs `javac`.
    fn prepare_client(&self, family: Family, c: &Choice) {
        let (Some(data_dir), Some(cell)) = (self.data_dir.clone(), self.clients.get(&c.interp.exe))
        else {
            return;
        };
        if cell.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let cell = cell.clone();
        let interp = c.interp.clone();
        let spawned = std::thread::Builder::new()
            .name("java-client".into())
            .spawn(move || {
                if let Err(e) = cell
                    .dir
                    .get_or_init(|| compile_client(family, &data_dir, &interp))
                {
                    tracing::warn!("{e}");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start compiling the Java runtime client: {e}");
        }
    }

    /// The directory name of the client compiled for `interp`, compiling it if need be.
    fn compiled_client(&self, family: Family, interp: &Interpreter) -> Result<String, String> {
        let data_dir = self
            .data_dir
            .as_deref()
            .ok_or("no data directory to compile the runtime client into")?;
        let cell = self
            .clients
            .get(&interp.exe)
            .ok_or("no runtime client for this interpreter")?;
        // Blocks the first cold start of a node whose client was never compiled (a data directory
        // of an older Updraft, no CreateFunction since): once, for about two seconds.
        cell.dir
            .get_or_init(|| compile_client(family, data_dir, interp))
            .clone()
    }

    #[cfg(test)]
    pub(crate) fn from_parts(
        python: Result<Interpreter, String>,
        node: Result<Interpreter, String>,
    ) -> Self {
        let mut choices = BTreeMap::new();
        let mut defaults = Vec::new();
        for (family, found) in [(Family::Python, python), (Family::Node, node)] {
            let found: Vec<Candidate> = found
                .iter()
                .map(|i| Candidate {
                    interp: i.clone(),
                    source: "test".into(),
                })
                .collect();
            defaults.extend(found.iter().map(|c| c.interp.clone()));
            for id in KNOWN_RUNTIMES
                .iter()
                .filter(|id| Family::of(id) == Some(family))
            {
                choices.insert(*id, choose(id, None, &found));
            }
        }
        RuntimeRegistry {
            choices,
            defaults,
            strict: false,
            data_dir: None,
            clients: BTreeMap::new(),
        }
    }

    /// The interpreter `runtime` runs on: `Ok(None)` for ids without one (`provided*`).
    fn chosen(&self, runtime: &str) -> Result<Option<&Choice>, String> {
        let family = Family::of(runtime).ok_or_else(|| format!("unknown runtime {runtime:?}"))?;
        match family {
            Family::Provided => Ok(None),
            Family::Python | Family::Node | Family::Java | Family::DotNet => {
                match self.choices.get(runtime) {
                    Some(Ok(c)) => match &c.note {
                        Some(note) if self.strict && !c.by_operator => Err(format!(
                            "{runtime} is not installed on this host and --strict-runtimes refuses \
                         the nearest version ({note})"
                        )),
                        _ => Ok(Some(c)),
                    },
                    Some(Err(e)) => Err(e.clone()),
                    None => Err(format!("unknown runtime {runtime:?}")),
                }
            }
        }
    }

    /// Whether functions may be created with `runtime`: `Ok(note)` when they can run (with the
    /// note to show when it runs on a nearer version), `Err` with the reason when they cannot.
    pub(crate) fn check(&self, runtime: &str) -> Result<Option<String>, String> {
        let chosen = self.chosen(runtime)?;
        if let (Some(c), Some(family @ (Family::Java | Family::DotNet))) =
            (chosen, Family::of(runtime))
        {
            self.prepare_client(family, c);
        }
        Ok(chosen.and_then(|c| c.note.clone()))
    }

    /// How to start `runtime`, or why it cannot run here.
    pub(crate) fn launch_for(&self, runtime: &str) -> Result<Launch, String> {
        let family = Family::of(runtime).ok_or_else(|| format!("unknown runtime {runtime:?}"))?;
        let chosen = self.chosen(runtime).map_err(|e| {
            if e.starts_with(runtime) {
                e
            } else {
                format!("{runtime}: {e}")
            }
        })?;
        let (argv, client_dir) = match (family, chosen) {
            (Family::Python, Some(c)) => (
                vec![
                    path_string(&c.interp.exe),
                    "/var/runtime/bootstrap.py".to_string(),
                ],
                Some("python".to_string()),
            ),
            (Family::Node, Some(c)) => (
                vec![
                    path_string(&c.interp.exe),
                    "/var/runtime/bootstrap.mjs".to_string(),
                ],
                Some("node".to_string()),
            ),
            (Family::Java, Some(c)) => (
                crate::jvm::argv(&c.interp),
                Some(
                    self.compiled_client(family, &c.interp)
                        .map_err(|e| format!("{runtime}: {e}"))?,
                ),
            ),
            (Family::DotNet, Some(c)) => (
                crate::dotnet::argv(&c.interp),
                Some(
                    self.compiled_client(family, &c.interp)
                        .map_err(|e| format!("{runtime}: {e}"))?,
                ),
            ),
            _ => (vec!["/var/task/bootstrap".to_string()], None),
        };
        Ok(Launch {
            family,
            argv,
            client_dir,
            note: chosen.and_then(|c| c.note.clone()),
        })
    }

    /// Every interpreter some id runs on, defaults first.
    fn interpreters(&self) -> Vec<&Interpreter> {
        let mut out: Vec<&Interpreter> = self.defaults.iter().collect();
        for c in self.choices.values().flatten() {
            if !out.iter().any(|i| i.exe == c.interp.exe) {
                out.push(&c.interp);
            }
        }
        out
    }

    /// Interpreter prefixes every jail must see (system `/usr` is part of every jail already).
    pub(crate) fn ro_paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for i in self.interpreters() {
            let p = &i.prefix;
            // Everything below /usr is in every jail already (a Debian JDK lives in /usr/lib/jvm).
            if p.as_os_str().is_empty() || p == Path::new("/") || p.starts_with("/usr") {
                continue;
            }
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }

    /// The default interpreters' `bin` directories to put on `PATH` ahead of the system
    /// directories (so `python3` and `node` in a jail are the host's `python3` and `node`).
    pub(crate) fn path_dirs(&self) -> Vec<PathBuf> {
        let system = ["/usr/local/bin", "/usr/bin", "/bin", "/opt/bin"];
        let mut out: Vec<PathBuf> = Vec::new();
        for i in &self.defaults {
            let d = &i.bin_dir;
            if d.as_os_str().is_empty() || system.iter().any(|s| d == Path::new(s)) {
                continue;
            }
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    /// All known runtime ids with their availability.
    pub(crate) fn infos(&self) -> Vec<RuntimeInfo> {
        KNOWN_RUNTIMES
            .iter()
            .map(|id| {
                let unavailable = |reason: String| RuntimeInfo {
                    id: id.to_string(),
                    available: false,
                    interpreter: None,
                    interpreter_version: None,
                    exact: false,
                    source: None,
                    note: None,
                    reason: Some(reason),
                };
                match self.chosen(id) {
                    Ok(Some(c)) => RuntimeInfo {
                        id: id.to_string(),
                        available: true,
                        interpreter: Some(c.interp.exe.clone()),
                        interpreter_version: Some(c.interp.version.clone()),
                        exact: c.exact,
                        source: Some(c.source.clone()),
                        note: c.note.clone(),
                        reason: None,
                    },
                    Ok(None) => RuntimeInfo {
                        id: id.to_string(),
                        available: true,
                        interpreter: Some(PathBuf::from("/var/task/bootstrap")),
                        interpreter_version: None,
                        exact: true,
                        source: None,
                        note: None,
                        reason: None,
                    },
                    Err(reason) => unavailable(reason),
                }
            })
            .collect()
    }
}

/// Where `updraft runtime install` puts interpreters: `<data_dir>/runtimes/installed/`.
pub fn installed_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("runtimes").join("installed")
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The first executable file called `name` in the directories of `path`.
pub(crate) fn which(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn probe_python(python: &Path) -> Result<Interpreter, String> {
    let out = Command::new(python)
        .args(["-I", "-c", PYTHON_PROBE])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} exited with {}: {}",
            python.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_python_probe(&String::from_utf8_lossy(&out.stdout))
}

/// Reads the output of [`PYTHON_PROBE`]: executable, base prefix, version.
pub(crate) fn parse_python_probe(stdout: &str) -> Result<Interpreter, String> {
    let mut lines = stdout.lines().map(str::trim);
    let exe = lines.next().filter(|l| !l.is_empty());
    let prefix = lines.next().filter(|l| !l.is_empty());
    let version = lines.next().filter(|l| !l.is_empty());
    let (Some(exe), Some(prefix), Some(version)) = (exe, prefix, version) else {
        return Err(format!("unexpected python probe output {stdout:?}"));
    };
    let exe = PathBuf::from(exe);
    if !exe.is_absolute() {
        return Err(format!("python reports a relative executable {exe:?}"));
    }
    let bin_dir = exe
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("python executable {exe:?} has no directory"))?;
    let real = std::fs::canonicalize(&exe).unwrap_or_else(|_| exe.clone());
    Ok(Interpreter {
        exe: real,
        prefix: PathBuf::from(prefix),
        bin_dir,
        version: version.to_string(),
    })
}

fn probe_node(node: &Path) -> Result<Interpreter, String> {
    let real = std::fs::canonicalize(node).map_err(|e| format!("{}: {e}", node.display()))?;
    let out = Command::new(&real)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", real.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --version exited with {}",
            real.display(),
            out.status
        ));
    }
    node_interpreter(real, String::from_utf8_lossy(&out.stdout).trim())
}

/// Describes a Node.js executable at `real` (symlinks resolved): its prefix is the parent of its
/// `bin` directory.
pub(crate) fn node_interpreter(real: PathBuf, version: &str) -> Result<Interpreter, String> {
    let bin_dir = real
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("node executable {real:?} has no directory"))?;
    let prefix = bin_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| bin_dir.clone());
    if !version.starts_with('v') {
        return Err(format!("unexpected node --version output {version:?}"));
    }
    Ok(Interpreter {
        exe: real,
        prefix,
        bin_dir,
        version: version.to_string(),
    })
}

/// Writes the embedded runtime clients to `<data_dir>/runtimes/{python,node}/`, read-only
/// (files 0444, directories 0555) so that they are readable by the jail's unprivileged user and
/// can never be changed from inside.
pub(crate) fn install_clients(data_dir: &Path) -> Result<(), EngineError> {
    install_client(data_dir, "python", "bootstrap.py", PYTHON_CLIENT)?;
    install_client(data_dir, "node", "bootstrap.mjs", NODE_CLIENT)?;
    install_client(data_dir, "node", "warmup.cjs", NODE_WARMUP)
}

/// Directory of one runtime client below `data_dir`.
pub(crate) fn client_dir(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("runtimes").join(name)
}

fn install_client(data_dir: &Path, name: &str, file: &str, text: &str) -> Result<(), EngineError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = client_dir(data_dir, name);
    std::fs::create_dir_all(&dir).map_err(|e| EngineError::CreateDir(dir.clone(), e))?;
    let target = dir.join(file);
    if std::fs::read(&target).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(());
    }
    let werr = |e| EngineError::WriteRuntimeClient(target.clone(), e);
    // The directory is read-only after installation; open it up just long enough to replace the
    // file atomically (a jail starting right now sees the old or the new file, never half of one).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).map_err(werr)?;
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).map_err(werr)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444)).map_err(werr)?;
    std::fs::rename(&tmp, &target).map_err(werr)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).map_err(werr)?;
    Ok(())
}

/// The program of a `provided.*` function: its own `/var/task/bootstrap`, or, when its package
/// has none, the `/opt/bootstrap` one of its layers brings (Lambda looks in that order). Other
/// runtimes start as `argv` says. Looks at the host once per cold start, never per invocation.
pub(crate) fn with_layer_bootstrap(argv: &[String], spec: &crate::FunctionSpec) -> Vec<String> {
    let own = argv.first().is_some_and(|p| p == "/var/task/bootstrap");
    if own
        && let Some(opt) = &spec.opt_dir
        && std::fs::symlink_metadata(spec.code_dir.join("bootstrap")).is_err()
        && std::fs::symlink_metadata(opt.join("bootstrap")).is_ok()
    {
        let mut out = argv.to_vec();
        out[0] = "/opt/bootstrap".to_string();
        return out;
    }
    argv.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interp(prefix: &str, bin: &str, exe: &str) -> Interpreter {
        let version = if exe.contains("node") {
            "v20.1.0"
        } else {
            "3.11.7"
        };
        interp_v(prefix, bin, exe, version)
    }

    fn interp_v(prefix: &str, bin: &str, exe: &str, version: &str) -> Interpreter {
        Interpreter {
            exe: exe.into(),
            prefix: prefix.into(),
            bin_dir: bin.into(),
            version: version.into(),
        }
    }

    fn cand(exe: &str, version: &str) -> Candidate {
        Candidate {
            interp: interp_v("/p", "/p/bin", exe, version),
            source: "path".into(),
        }
    }

    #[test]
    fn exact_version_wins_over_a_nearer_default() {
        let found = [
            cand("/usr/bin/python3.11", "3.11.2"),
            cand("/opt/py312/bin/python3.12", "3.12.1"),
        ];
        let c = choose("python3.12", None, &found).unwrap();
        assert!(c.exact);
        assert_eq!(c.note, None);
        assert_eq!(c.interp.exe, PathBuf::from("/opt/py312/bin/python3.12"));
        let n = choose(
            "nodejs22.x",
            None,
            &[cand("/n20", "v20.1.0"), cand("/n22", "v22.23.5")],
        )
        .unwrap();
        assert!(n.exact);
        assert_eq!(n.interp.exe, PathBuf::from("/n22"));
    }

    #[test]
    fn nearest_version_is_chosen_with_a_note() {
        let found = [
            cand("/usr/bin/python3.11", "3.11.2"),
            cand("/opt/py313/bin/python3.13", "3.13.0"),
        ];
        // 3.12 is one minor from both: the newer one is nearer in behaviour.
        let c = choose("python3.12", None, &found).unwrap();
        assert!(!c.exact);
        assert_eq!(c.interp.exe, PathBuf::from("/opt/py313/bin/python3.13"));
        let note = c.note.unwrap();
        assert!(note.contains("python3.12 runs on Python 3.13.0"), "{note}");
        let c = choose("python3.9", None, &found).unwrap();
        assert_eq!(c.interp.version, "3.11.2");
        let n = choose("nodejs22.x", None, &[cand("/usr/bin/node", "v20.20.2")]).unwrap();
        let note = n.note.unwrap();
        assert!(
            note.contains("nodejs22.x runs on Node.js v20.20.2"),
            "{note}"
        );
        assert!(
            note.contains("updraft runtime install nodejs22.x"),
            "{note}"
        );
        assert!(
            choose("nodejs22.x", None, &[])
                .unwrap_err()
                .contains("no Node.js")
        );
    }

    #[test]
    fn java_ids_run_on_the_same_major_or_a_newer_one() {
        let found = [
            cand("/jdk17/bin/java", "17.0.15"),
            cand("/jdk21/bin/java", "21.0.2"),
        ];
        let c = choose("java17", None, &found).unwrap();
        assert!(c.exact);
        assert_eq!(c.interp.exe, PathBuf::from("/jdk17/bin/java"));
        // java11 has no JDK 11: the nearest newer one, with a note.
        let c = choose("java11", None, &found).unwrap();
        assert_eq!(c.interp.exe, PathBuf::from("/jdk17/bin/java"));
        assert!(c.note.unwrap().contains("java11 runs on Java 17.0.15"));
        let c = choose("java8.al2", None, &found).unwrap();
        assert_eq!(c.interp.version, "17.0.15");
        // An older JDK cannot load a newer release's classes: never chosen.
        let e = choose("java25", None, &found).unwrap_err();
        assert!(e.contains("no JDK of Java 25 or newer"), "{e}");
        assert!(e.contains("openjdk-25-jdk-headless"), "{e}");
    }

    #[test]
    fn dotnet_ids_run_on_mono_never_exactly() {
        let found = [cand("/usr/bin/mono-sgen", "6.8.0.105")];
        let c = choose_mono("dotnet8", None, &found).unwrap();
        assert!(!c.exact && !c.by_operator);
        assert!(c.note.unwrap().contains("dotnet8 runs on Mono 6.8.0.105"));
        let e = choose_mono("dotnet8", None, &[]).unwrap_err();
        assert!(e.contains("mono-devel"), "{e}");
        assert_eq!(Family::of("dotnet10"), Some(Family::DotNet));
    }

    #[test]
    fn operator_override_wins_and_notes_a_mismatch() {
        let found = [cand("/usr/bin/python3.12", "3.12.1")];
        let o = Some(Ok(Candidate {
            interp: interp_v("/o", "/o/bin", "/o/bin/python3", "3.12.4"),
            source: "--runtime".into(),
        }));
        let c = choose("python3.12", o, &found).unwrap();
        assert!(c.exact);
        assert_eq!(c.interp.exe, PathBuf::from("/o/bin/python3"));
        assert_eq!(c.source, "--runtime");
        let o = Some(Ok(Candidate {
            interp: interp_v("/o", "/o/bin", "/o/bin/python3", "3.10.1"),
            source: "--runtime".into(),
        }));
        let c = choose("python3.12", o, &found).unwrap();
        assert!(c.by_operator);
        assert!(c.note.unwrap().contains("as --runtime says"));
        let broken = Some(Err("cannot run /nope".to_string()));
        assert!(
            choose("python3.12", broken, &found)
                .unwrap_err()
                .contains("--runtime python3.12")
        );
    }

    #[test]
    fn strict_registry_refuses_a_nearer_version() {
        let mut reg = RuntimeRegistry::from_parts(
            Ok(interp_v(
                "/opt/py",
                "/opt/py/bin",
                "/opt/py/bin/python3",
                "3.11.7",
            )),
            Ok(interp_v(
                "/opt/n",
                "/opt/n/bin",
                "/opt/n/bin/node",
                "v20.1.0",
            )),
        );
        assert_eq!(reg.check("python3.11").unwrap(), None);
        assert!(
            reg.check("python3.12")
                .unwrap()
                .unwrap()
                .contains("Python 3.11.7")
        );
        assert!(reg.launch_for("nodejs22.x").unwrap().note.is_some());
        reg.strict = true;
        assert_eq!(reg.check("python3.11").unwrap(), None);
        let e = reg.check("python3.12").unwrap_err();
        assert!(
            e.contains("python3.12 is not installed") && e.contains("--strict-runtimes"),
            "{e}"
        );
        assert!(reg.launch_for("nodejs22.x").is_err());
        assert!(reg.launch_for("nodejs20.x").unwrap().note.is_none());
        let infos = reg.infos();
        let py312 = infos.iter().find(|i| i.id == "python3.12").unwrap();
        assert!(!py312.available);
        let py311 = infos.iter().find(|i| i.id == "python3.11").unwrap();
        assert!(py311.available && py311.exact);
    }

    #[test]
    fn parses_runtime_overrides() {
        assert_eq!(
            RuntimeOptions::parse_override("python3.12=/opt/py/bin/python3").unwrap(),
            (
                "python3.12".to_string(),
                PathBuf::from("/opt/py/bin/python3")
            )
        );
        assert!(RuntimeOptions::parse_override("python3.12").is_err());
        assert!(RuntimeOptions::parse_override("java21=/usr/bin/java").is_ok());
        assert!(RuntimeOptions::parse_override("provided.al2023=/usr/bin/true").is_err());
        assert!(RuntimeOptions::parse_override("nodejs22.x=node").is_err());
    }

    #[test]
    fn discover_uses_an_override_and_an_installed_node() {
        // A fake Node.js answering `--version` as 22 stands for an installed release.
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = installed_dir(dir.path()).join("node22/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let node = bin.join("node");
        std::fs::write(&node, "#!/bin/sh\necho v22.9.0\n").unwrap();
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o755)).unwrap();
        let other = dir.path().join("node18");
        std::fs::write(&other, "#!/bin/sh\necho v18.20.1\n").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
        let reg = RuntimeRegistry::discover(&RuntimeOptions {
            data_dir: Some(dir.path().to_path_buf()),
            overrides: vec![("nodejs18.x".into(), other.clone())],
            strict: true,
        });
        let infos = reg.infos();
        let n22 = infos.iter().find(|i| i.id == "nodejs22.x").unwrap();
        assert!(n22.available && n22.exact, "{n22:?}");
        assert_eq!(n22.source.as_deref(), Some("installed"));
        assert_eq!(n22.interpreter_version.as_deref(), Some("v22.9.0"));
        let n18 = infos.iter().find(|i| i.id == "nodejs18.x").unwrap();
        assert_eq!(n18.source.as_deref(), Some("--runtime"));
        assert_eq!(n18.interpreter.as_deref(), Some(other.as_path()));
        assert!(
            reg.ro_paths()
                .contains(&installed_dir(dir.path()).join("node22"))
        );
    }

    #[test]
    fn parses_python_probe() {
        let i = parse_python_probe("/opt/py/bin/python3\n/opt/py\n3.11.7\n").unwrap();
        assert_eq!(i.prefix, PathBuf::from("/opt/py"));
        assert_eq!(i.bin_dir, PathBuf::from("/opt/py/bin"));
        assert_eq!(i.version, "3.11.7");
        assert!(parse_python_probe("/opt/py/bin/python3\n").is_err());
        assert!(parse_python_probe("python3\n/opt\n3.1.1\n").is_err());
    }

    #[test]
    fn node_prefix_is_parent_of_bin() {
        let i = node_interpreter("/opt/node/bin/node".into(), "v20.1.0").unwrap();
        assert_eq!(i.prefix, PathBuf::from("/opt/node"));
        assert_eq!(i.bin_dir, PathBuf::from("/opt/node/bin"));
        assert!(node_interpreter("/usr/bin/node".into(), "garbage").is_err());
    }

    #[test]
    fn families_of_runtime_ids() {
        assert_eq!(Family::of("python3.12"), Some(Family::Python));
        assert_eq!(Family::of("nodejs22.x"), Some(Family::Node));
        assert_eq!(Family::of("java21"), Some(Family::Java));
        assert_eq!(Family::of("provided.al2023"), Some(Family::Provided));
        assert_eq!(Family::of("python2.7"), None);
        assert_eq!(Family::of("ruby3.3"), None);
    }

    #[test]
    fn launch_argv_per_family() {
        let reg = RuntimeRegistry::from_parts(
            Ok(interp("/opt/py", "/opt/py/bin", "/opt/py/bin/python3.11")),
            Err("node not found on PATH".into()),
        );
        let py = reg.launch_for("python3.12").unwrap();
        assert_eq!(
            py.argv,
            ["/opt/py/bin/python3.11", "/var/runtime/bootstrap.py"]
        );
        assert_eq!(py.client_dir.as_deref(), Some("python"));
        let custom = reg.launch_for("provided.al2023").unwrap();
        assert_eq!(custom.argv, ["/var/task/bootstrap"]);
        assert_eq!(custom.client_dir, None);
        assert!(
            reg.launch_for("nodejs20.x")
                .unwrap_err()
                .contains("no Node.js interpreter")
        );
        assert!(reg.launch_for("java17").is_err());
        assert!(
            reg.launch_for("cobol")
                .unwrap_err()
                .contains("unknown runtime")
        );
    }

    #[test]
    fn ro_paths_and_path_dirs_skip_system_dirs() {
        let reg = RuntimeRegistry::from_parts(
            Ok(interp(
                "/root/.pyenv/versions/3.11.7",
                "/root/.pyenv/versions/3.11.7/bin",
                "/x",
            )),
            Ok(interp("/usr", "/usr/bin", "/usr/bin/node")),
        );
        assert_eq!(
            reg.ro_paths(),
            [PathBuf::from("/root/.pyenv/versions/3.11.7")]
        );
        assert_eq!(
            reg.path_dirs(),
            [PathBuf::from("/root/.pyenv/versions/3.11.7/bin")]
        );
        let infos = reg.infos();
        assert_eq!(infos.len(), KNOWN_RUNTIMES.len());
        let node = infos.iter().find(|i| i.id == "nodejs20.x").unwrap();
        assert!(node.available);
        assert_eq!(node.interpreter, Some(PathBuf::from("/usr/bin/node")));
        let java = infos.iter().find(|i| i.id == "java21").unwrap();
        assert!(!java.available && java.reason.is_some());
    }

    #[test]
    fn which_finds_executables_only() {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let path = std::ffi::OsString::from(format!("/nonexistent:{}", dir.path().display()));
        assert_eq!(which("tool", &path), None);
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(which("tool", &path), Some(exe));
    }

    #[test]
    fn installs_clients_read_only_and_idempotently() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        install_clients(dir.path()).unwrap();
        install_clients(dir.path()).unwrap();
        let py = client_dir(dir.path(), "python").join("bootstrap.py");
        assert_eq!(std::fs::read_to_string(&py).unwrap(), PYTHON_CLIENT);
        assert_eq!(py.metadata().unwrap().permissions().mode() & 0o777, 0o444);
        let nd = client_dir(dir.path(), "node");
        assert_eq!(nd.metadata().unwrap().permissions().mode() & 0o777, 0o555);
        assert!(nd.join("bootstrap.mjs").exists());
    }
}
