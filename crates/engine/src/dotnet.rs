//! The C# runtimes (`dotnet8`, `dotnet10`): finding Mono, and compiling Updraft's C# runtime
//! client and its `Amazon.Lambda.Core` / `Amazon.Lambda.Serialization.SystemTextJson`
//! assemblies once per Mono with its `mcs`.
//!
//! Lambda runs these ids on .NET; this host has none installable, so they run on Mono (Debian's
//! `mono-devel`), which loads the same handler assemblies. That is never exact: every Mono choice
//! carries a note saying so (and `--strict-runtimes` refuses the ids). What differs is written
//! down in `docs/dotnet.md`. The client lands in `<data-dir>/runtimes/dotnet-<hash>/` like the
//! Java one (see [`crate::jvm`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::runtimes::{Candidate, Interpreter, which};

const CORE: &str = include_str!("../runtimes/dotnet/Core.cs");
const SERIALIZER: &str = include_str!("../runtimes/dotnet/Serializer.cs");
const BOOTSTRAP: &str = include_str!("../runtimes/dotnet/Bootstrap.cs");

/// The client's entry point inside `/var/runtime`.
pub(crate) const ENTRY: &str = "/var/runtime/UpdraftBootstrap.exe";

/// Mono on `PATH`, when it answers `--version`.
pub(crate) fn discover(path: &std::ffi::OsStr) -> Vec<Candidate> {
    let Some(p) = which("mono", path) else {
        return Vec::new();
    };
    match probe(&p) {
        Ok(interp) => vec![Candidate {
            interp,
            source: "mono".into(),
        }],
        Err(e) => {
            tracing::debug!("ignoring {}: {e}", p.display());
            Vec::new()
        }
    }
}

/// Describes a Mono executable from `mono --version`.
pub(crate) fn probe(mono: &Path) -> Result<Interpreter, String> {
    let exe = std::fs::canonicalize(mono).map_err(|e| format!("{}: {e}", mono.display()))?;
    let out = Command::new(&exe)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = mono_version(&text)
        .ok_or_else(|| format!("{} --version says no Mono version", exe.display()))?;
    let bin_dir = exe
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} has no directory", exe.display()))?;
    let prefix = bin_dir.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(Interpreter {
        exe,
        prefix,
        bin_dir,
        version,
    })
}

/// `6.8.0.105` from `Mono JIT compiler version 6.8.0.105 (Debian ...)`.
fn mono_version(text: &str) -> Option<String> {
    let line = text.lines().next()?;
    let rest = line.split("version ").nth(1)?;
    let v = rest.split_whitespace().next()?;
    v.chars().next()?.is_ascii_digit().then(|| v.to_string())
}

/// What an id runs on when it runs on Mono, for the note shown wherever the function is seen.
pub(crate) fn note(id: &str, interp: &Interpreter) -> String {
    format!(
        "{id} runs on Mono {} ({}), not on .NET: no .NET runtime is installed on this host; \
         handlers built for .NET Framework-compatible APIs run unchanged (see docs/dotnet.md)",
        interp.version,
        interp.exe.display()
    )
}

/// The name of the client directory below `<data-dir>/runtimes/` for this Mono.
pub(crate) fn client_name(interp: &Interpreter) -> String {
    let mut h = Sha256::new();
    for text in [CORE, SERIALIZER, BOOTSTRAP] {
        h.update(text.as_bytes());
        h.update([0]);
    }
    h.update(interp.exe.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(interp.version.as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("dotnet-{hex}")
}

/// Makes sure the client is compiled for `interp` under `<data_dir>/runtimes/` and returns the
/// name of its directory there. Blocking (runs `mcs` three times the first time).
pub(crate) fn ensure_client(data_dir: &Path, interp: &Interpreter) -> Result<String, String> {
    crate::compiled::ensure(
        data_dir,
        client_name(interp),
        "UpdraftBootstrap.exe",
        |dir| build(dir, interp),
    )
}

fn mcs_for(interp: &Interpreter) -> Result<PathBuf, String> {
    let own = interp.bin_dir.join("mcs");
    if own.exists() {
        return Ok(own);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    which("mcs", &path).ok_or_else(|| {
        "no mcs to compile Updraft's C# runtime client (install Debian's mono-devel)".to_string()
    })
}

fn build(dir: &Path, interp: &Interpreter) -> Result<(), String> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| format!("{}: {e}", p.display())
    };
    let src = dir.join("src");
    std::fs::create_dir_all(&src).map_err(io(&src))?;
    for (file, text) in [
        ("Core.cs", CORE),
        ("Serializer.cs", SERIALIZER),
        ("Bootstrap.cs", BOOTSTRAP),
    ] {
        let f = src.join(file);
        std::fs::write(&f, text).map_err(io(&f))?;
    }
    let mcs = mcs_for(interp)?;
    let core = dir.join("Amazon.Lambda.Core.dll");
    let steps: [(&str, &str, Vec<String>); 3] = [
        (
            "Core.cs",
            "Amazon.Lambda.Core.dll",
            vec!["-target:library".into()],
        ),
        (
            "Serializer.cs",
            "Amazon.Lambda.Serialization.SystemTextJson.dll",
            vec![
                "-target:library".into(),
                format!("-r:{}", core.display()),
                "-r:System.Web.Extensions".into(),
            ],
        ),
        (
            "Bootstrap.cs",
            "UpdraftBootstrap.exe",
            vec![
                "-target:exe".into(),
                format!("-r:{}", core.display()),
                "-r:System.Web.Extensions".into(),
            ],
        ),
    ];
    for (source, output, args) in steps {
        let out = Command::new(&mcs)
            .arg("-nologo")
            .arg("-optimize+")
            .args(&args)
            .arg(format!("-out:{}", dir.join(output).display()))
            .arg(src.join(source))
            .output()
            .map_err(|e| format!("cannot run {}: {e}", mcs.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed to compile Updraft's C# runtime client ({source}): {}{}",
                mcs.display(),
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    std::fs::remove_dir_all(&src).map_err(io(&src))?;
    crate::compiled::seal(dir)
}

/// The command line of a C# environment.
pub(crate) fn argv(interp: &Interpreter) -> Vec<String> {
    vec![interp.exe.to_string_lossy().into_owned(), ENTRY.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_versions() {
        assert_eq!(
            mono_version("Mono JIT compiler version 6.8.0.105 (Debian 6.8.0.105+dfsg-3.3)\n")
                .as_deref(),
            Some("6.8.0.105")
        );
        assert_eq!(mono_version("something else\n"), None);
    }
}
