//! The Java runtimes (`java8.al2`, `java11`, `java17`, `java21`, `java25`): finding the host's
//! JDKs, compiling Updraft's Java runtime client once per JDK, and the JVM's command line.
//!
//! The client (`runtimes/java/`, JDK classes only) is embedded as source and compiled with the
//! chosen JDK's own `javac` (or, for a JRE, a `javac` on `PATH` targeting its release) into
//! `<data-dir>/runtimes/java-<hash>/classes`, where `<hash>` covers the sources and the JDK: a new
//! Updraft or a new JDK gets a new directory, an unchanged one is reused across restarts. The
//! directory is built under a temporary name and renamed into place, so it is whole or absent.
//!
//! The JVM starts as Lambda's Java runtimes start it: C1 only (`-XX:TieredStopAtLevel=1`), the
//! serial collector, and heap, metaspace and code cache sized from the function's memory
//! (85 %, 10 % and 5 % of `MemorySize`, the proportions Lambda's runtime passes).
//! `JAVA_TOOL_OPTIONS` is read by the JVM itself, after these flags, so a function's own options
//! win.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::runtimes::{Candidate, Interpreter, which};

/// The client's sources, by path below `runtimes/java/`.
const SOURCES: &[(&str, &str)] = &[
    (
        "com/amazonaws/services/lambda/runtime/Client.java",
        include_str!("../runtimes/java/com/amazonaws/services/lambda/runtime/Client.java"),
    ),
    (
        "com/amazonaws/services/lambda/runtime/ClientContext.java",
        include_str!("../runtimes/java/com/amazonaws/services/lambda/runtime/ClientContext.java"),
    ),
    (
        "com/amazonaws/services/lambda/runtime/CognitoIdentity.java",
        include_str!("../runtimes/java/com/amazonaws/services/lambda/runtime/CognitoIdentity.java"),
    ),
    (
        "com/amazonaws/services/lambda/runtime/Context.java",
        include_str!("../runtimes/java/com/amazonaws/services/lambda/runtime/Context.java"),
    ),
    (
        "com/amazonaws/services/lambda/runtime/LambdaLogger.java",
        include_str!("../runtimes/java/com/amazonaws/services/lambda/runtime/LambdaLogger.java"),
    ),
    (
        "com/amazonaws/services/lambda/runtime/LambdaRuntime.java",
        include_str!("../runtimes/java/com/amazonaws/services/lambda/runtime/LambdaRuntime.java"),
    ),
    (
        "com/amazonaws/services/lambda/runtime/RequestHandler.java",
        include_str!("../runtimes/java/com/amazonaws/services/lambda/runtime/RequestHandler.java"),
    ),
    (
        "com/amazonaws/services/lambda/runtime/RequestStreamHandler.java",
        include_str!(
            "../runtimes/java/com/amazonaws/services/lambda/runtime/RequestStreamHandler.java"
        ),
    ),
    (
        "com/amazonaws/services/lambda/runtime/logging/LogLevel.java",
        include_str!(
            "../runtimes/java/com/amazonaws/services/lambda/runtime/logging/LogLevel.java"
        ),
    ),
    (
        "updraft/runtime/Bootstrap.java",
        include_str!("../runtimes/java/updraft/runtime/Bootstrap.java"),
    ),
    (
        "updraft/runtime/Json.java",
        include_str!("../runtimes/java/updraft/runtime/Json.java"),
    ),
];

/// The class the JVM starts.
const MAIN_CLASS: &str = "updraft.runtime.Bootstrap";

/// Where JDKs are installed by Debian, Ubuntu, Fedora and most distributions.
const JVM_DIR: &str = "/usr/lib/jvm";

/// Every JDK of the host: `java` on `PATH`, `$JAVA_HOME`, and the JDKs under `/usr/lib/jvm`.
pub(crate) fn discover(path: &std::ffi::OsStr) -> Vec<Candidate> {
    let mut places: Vec<(PathBuf, String)> = Vec::new();
    if let Some(p) = which("java", path) {
        places.push((p, "java".into()));
    }
    if let Some(home) = std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        places.push((PathBuf::from(home).join("bin/java"), "JAVA_HOME".into()));
    }
    if let Ok(entries) = std::fs::read_dir(JVM_DIR) {
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for d in dirs {
            places.push((d.join("bin/java"), JVM_DIR.into()));
        }
    }
    let mut out: Vec<Candidate> = Vec::new();
    for (p, source) in places {
        if !p.exists() {
            continue;
        }
        match probe(&p) {
            Ok(interp) => {
                if !out.iter().any(|c| c.interp.exe == interp.exe) {
                    out.push(Candidate { interp, source });
                }
            }
            Err(e) => tracing::debug!("ignoring {}: {e}", p.display()),
        }
    }
    out
}

/// Describes the JDK of a `java` executable: its home is the parent of its `bin`, its version
/// comes from the home's `release` file or, without one, from `java -version`.
pub(crate) fn probe(java: &Path) -> Result<Interpreter, String> {
    let exe = std::fs::canonicalize(java).map_err(|e| format!("{}: {e}", java.display()))?;
    let bin_dir = exe
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} has no directory", exe.display()))?;
    let home = bin_dir
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} has no home", exe.display()))?;
    let version = match std::fs::read_to_string(home.join("release")) {
        Ok(text) => release_version(&text),
        Err(_) => None,
    };
    let version = match version {
        Some(v) => v,
        None => {
            let out = Command::new(&exe)
                .arg("-version")
                .output()
                .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
            version_output(&String::from_utf8_lossy(&out.stderr))
                .ok_or_else(|| format!("{} -version says no version", exe.display()))?
        }
    };
    Ok(Interpreter {
        exe,
        prefix: home,
        bin_dir,
        version,
    })
}

/// `17.0.15` from a JDK `release` file's `JAVA_VERSION="17.0.15"` (`1.8.0_392` becomes `8.0.392`).
pub(crate) fn release_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("JAVA_VERSION="))?;
    let v = line["JAVA_VERSION=".len()..].trim().trim_matches('"');
    normalise(v)
}

/// The version in `java -version` output: `openjdk version "21.0.2" 2024-01-16`.
fn version_output(text: &str) -> Option<String> {
    let start = text.find("version \"")? + "version \"".len();
    let end = text[start..].find('"')? + start;
    normalise(&text[start..end])
}

/// `major.minor.patch`, with Java 8's `1.8.0_392` read as `8.0.392` and a bare `21` as `21.0.0`.
fn normalise(v: &str) -> Option<String> {
    let v = v.strip_prefix("1.").unwrap_or(v);
    let mut parts = v.split(['.', '_', '+', '-']);
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let patch: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some(format!("{major}.{minor}.{patch}"))
}

/// The major version of a JDK (`17` for `17.0.15`).
fn major(interp: &Interpreter) -> u32 {
    interp
        .version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// The name of the client directory below `<data-dir>/runtimes/` for this JDK.
pub(crate) fn client_name(interp: &Interpreter) -> String {
    let mut h = Sha256::new();
    for (path, text) in SOURCES {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    h.update(interp.exe.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(interp.version.as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("java-{hex}")
}

/// Makes sure the client is compiled for `interp` under `<data_dir>/runtimes/` and returns the
/// name of its directory there. Blocking (runs `javac` the first time, ~2 s).
pub(crate) fn ensure_client(data_dir: &Path, interp: &Interpreter) -> Result<String, String> {
    crate::compiled::ensure(
        data_dir,
        client_name(interp),
        "classes/updraft/runtime/Bootstrap.class",
        |dir| build(dir, interp),
    )
}

/// The `javac` that compiles for `interp`, with the arguments that make its classes load there.
fn javac_for(interp: &Interpreter) -> Result<(PathBuf, Vec<String>), String> {
    let own = interp.bin_dir.join("javac");
    if own.exists() {
        return Ok((own, Vec::new()));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let javac = which("javac", &path).ok_or_else(|| {
        format!(
            "{} has no javac and none is on PATH: Updraft's Java runtime client is compiled on \
             first use (install a JDK, e.g. Debian's openjdk-17-jdk-headless)",
            interp.exe.display()
        )
    })?;
    let m = major(interp);
    let args = if m >= 9 {
        vec!["--release".to_string(), m.to_string()]
    } else {
        vec!["--release".to_string(), "8".to_string()]
    };
    Ok((javac, args))
}

fn build(dir: &Path, interp: &Interpreter) -> Result<(), String> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| format!("{}: {e}", p.display())
    };
    let src = dir.join("src");
    let classes = dir.join("classes");
    let mut files = Vec::new();
    for (path, text) in SOURCES {
        let f = src.join(path);
        if let Some(parent) = f.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&f, text).map_err(io(&f))?;
        files.push(f);
    }
    std::fs::create_dir_all(&classes).map_err(io(&classes))?;
    let (javac, args) = javac_for(interp)?;
    let out = Command::new(&javac)
        .args(&args)
        // Inline string concatenation: its invokedynamic bootstrap would cost every cold start.
        .args([
            "-nowarn",
            "-XDstringConcat=inline",
            "-encoding",
            "UTF-8",
            "-d",
        ])
        .arg(&classes)
        .args(&files)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", javac.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed to compile Updraft's Java runtime client: {}",
            javac.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::remove_dir_all(&src).map_err(io(&src))?;
    crate::compiled::seal(dir)
}

/// The JVM's command line, without the memory flags ([`memory_flags`] go right after the
/// executable).
pub(crate) fn argv(interp: &Interpreter) -> Vec<String> {
    let mut argv = vec![interp.exe.to_string_lossy().into_owned()];
    argv.extend(
        [
            "-XX:+TieredCompilation",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-Xshare:auto",
            // No hsperfdata file in /tmp: nothing reads it, and it costs a file per start.
            "-XX:-UsePerfData",
            "-cp",
            "/var/runtime/classes",
            MAIN_CLASS,
        ]
        .map(String::from),
    );
    argv
}

/// Heap, metaspace and code cache sized from the function's memory, in KiB.
pub(crate) fn memory_flags(memory_mb: u32) -> [String; 3] {
    let kib = u64::from(memory_mb) * 1024;
    [
        format!("-XX:MaxHeapSize={}k", kib * 85 / 100),
        format!("-XX:MaxMetaspaceSize={}k", kib * 10 / 100),
        format!("-XX:ReservedCodeCacheSize={}k", kib * 5 / 100),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_release_files_and_version_output() {
        assert_eq!(
            release_version("IMPLEMENTOR=\"Debian\"\nJAVA_VERSION=\"17.0.15\"\n").as_deref(),
            Some("17.0.15")
        );
        assert_eq!(
            release_version("JAVA_VERSION=\"1.8.0_392\"\n").as_deref(),
            Some("8.0.392")
        );
        assert_eq!(
            release_version("JAVA_VERSION=\"21\"").as_deref(),
            Some("21.0.0")
        );
        assert_eq!(release_version("OS_NAME=Linux\n"), None);
        assert_eq!(
            version_output("openjdk version \"21.0.2\" 2024-01-16\nOpenJDK Runtime").as_deref(),
            Some("21.0.2")
        );
    }

    #[test]
    fn memory_flags_follow_lambdas_proportions() {
        assert_eq!(
            memory_flags(512),
            [
                "-XX:MaxHeapSize=445644k",
                "-XX:MaxMetaspaceSize=52428k",
                "-XX:ReservedCodeCacheSize=26214k"
            ]
        );
    }

    #[test]
    fn client_name_depends_on_the_jdk() {
        let a = Interpreter {
            exe: "/usr/lib/jvm/a/bin/java".into(),
            prefix: "/usr/lib/jvm/a".into(),
            bin_dir: "/usr/lib/jvm/a/bin".into(),
            version: "17.0.1".into(),
        };
        let mut b = a.clone();
        b.version = "17.0.2".into();
        assert_ne!(client_name(&a), client_name(&b));
        assert_eq!(client_name(&a), client_name(&a.clone()));
        assert!(client_name(&a).starts_with("java-"));
    }
}
