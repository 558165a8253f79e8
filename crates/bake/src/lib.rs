//! Puts a validated policy set into the Gatehouse engine module.
//!
//! Why a crate of its own: `cargo xtask wasm` uses it now and the host's
//! `gatehouse policy publish` will use it later; neither may need a Rust
//! toolchain to change policies. Baking is: read `policies/`, [`check`] it
//! strictly, append the bundle as the module's `gatehouse.policies` section,
//! write the module and its sha256. That takes milliseconds; [`wire`] then
//! compresses the module once for every host that serves it (seconds).
//!
//! [`check`]: gatehouse_policy::check

use std::path::{Path, PathBuf};

use gatehouse_policy::bundle::{BUNDLE_FORMAT, Bundle, CheckReport, PolicyFile, Problem};
use gatehouse_policy::engine::hex;
use sha2::{Digest, Sha256};

pub mod wire;

pub use wire::{Encoding, Precompressed, precompress};

/// Why baking failed.
#[derive(Debug, thiserror::Error)]
pub enum BakeError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The policies directory is not laid out as expected.
    #[error("{0}")]
    Layout(String),
    /// The policies do not pass the strict check.
    #[error("the policies do not validate:\n{}", .0.iter().map(|p| format!("  {}: {}", p.location, p.message)).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    /// The engine file is not a WebAssembly module.
    #[error("engine module: {0}")]
    Module(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BakeError + '_ {
    move |source| BakeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads `dir`: exactly one `*.cedarschema` and every `*.cedar`, by name.
pub fn read_policies(dir: &Path) -> Result<Bundle, BakeError> {
    let mut schemas = Vec::new();
    let mut policies = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match path.extension().and_then(|e| e.to_str()) {
            Some("cedarschema") => {
                schemas.push((name, std::fs::read_to_string(&path).map_err(io(&path))?))
            }
            Some("cedar") => policies.push(PolicyFile {
                text: std::fs::read_to_string(&path).map_err(io(&path))?,
                file: name,
            }),
            _ => {}
        }
    }
    policies.sort_by(|a, b| a.file.cmp(&b.file));
    let schema = match schemas.len() {
        1 => schemas.remove(0).1,
        0 => {
            return Err(BakeError::Layout(format!(
                "{}: no .cedarschema file",
                dir.display()
            )));
        }
        _ => {
            return Err(BakeError::Layout(format!(
                "{}: more than one .cedarschema file",
                dir.display()
            )));
        }
    };
    if policies.is_empty() {
        return Err(BakeError::Layout(format!(
            "{}: no .cedar files",
            dir.display()
        )));
    }
    Ok(Bundle {
        format: BUNDLE_FORMAT,
        schema,
        policies,
    })
}

/// What [`bake`] wrote.
#[derive(Debug, Clone)]
pub struct Baked {
    /// The module's path.
    pub path: PathBuf,
    /// sha256 of the whole module (engine and policies).
    pub module_sha256: String,
    /// sha256 of the policy section payload: the hash every decision carries.
    pub policy_hash: String,
    /// Module size in bytes.
    pub size: usize,
    /// The module precompressed, as written beside it (`.br`, `.gz`).
    pub precompressed: Precompressed,
    /// What the strict check found.
    pub report: CheckReport,
}

/// A module with its policies, in memory (what [`bake`] writes).
#[derive(Debug, Clone)]
pub struct BakedBytes {
    /// The engine's bytes with the bundle as their policy section.
    pub module: Vec<u8>,
    /// sha256 of `module`.
    pub module_sha256: String,
    /// sha256 of the policy section payload: the hash every decision carries.
    pub policy_hash: String,
    /// What the strict check found.
    pub report: CheckReport,
}

/// Checks `bundle` strictly and returns `engine` with it as its policy section.
pub fn bake_bytes(engine: &[u8], bundle: &Bundle) -> Result<BakedBytes, BakeError> {
    let report = gatehouse_policy::check(bundle).map_err(BakeError::Invalid)?;
    let section = bundle.to_bytes();
    let module = gatehouse_policy::module::with_policy_section(engine, &section)
        .map_err(BakeError::Module)?;
    Ok(BakedBytes {
        module_sha256: hex(&Sha256::digest(&module)),
        policy_hash: hex(&Sha256::digest(&section)),
        module,
        report,
    })
}

/// Reads `policies`, checks them, bakes them into the engine module at
/// `engine` and writes the result to `out`, its hash to `out.sha256` and
/// its precompressed copies to `out.br` and `out.gz` ([`wire::sibling`]).
/// A module file already holding these bytes, and copies already there that
/// decode to them, are kept: nothing is rewritten and the compression is
/// skipped when the module did not change.
pub fn bake(policies: &Path, engine: &Path, out: &Path) -> Result<Baked, BakeError> {
    let bundle = read_policies(policies)?;
    let engine_bytes = std::fs::read(engine).map_err(io(engine))?;
    let BakedBytes {
        module,
        module_sha256,
        policy_hash,
        report,
    } = bake_bytes(&engine_bytes, &bundle)?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    // Write beside and rename, so a reader never sees half a module; an
    // unchanged module is left alone (its mtime too: builds that embed it
    // are not redone).
    let tmp = out.with_extension("wasm.tmp");
    if std::fs::read(out).ok().as_deref() != Some(module.as_slice()) {
        std::fs::write(&tmp, &module).map_err(io(&tmp))?;
        std::fs::rename(&tmp, out).map_err(io(out))?;
    }
    let sha_path = out.with_extension("wasm.sha256");
    std::fs::write(&sha_path, format!("{module_sha256}\n")).map_err(io(&sha_path))?;
    let precompressed = match wire::read_siblings(out, &module) {
        Some(p) => p,
        None => {
            let p = precompress(&module).map_err(io(out))?;
            for e in Encoding::ALL {
                let path = wire::sibling(out, e);
                let tmp = wire::sibling(&tmp, e);
                std::fs::write(&tmp, p.get(e)).map_err(io(&tmp))?;
                std::fs::rename(&tmp, &path).map_err(io(&path))?;
            }
            p
        }
    };
    Ok(Baked {
        path: out.to_owned(),
        module_sha256,
        policy_hash,
        size: module.len(),
        precompressed,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_policies() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
    }

    #[test]
    fn the_repository_policies_pass_the_strict_check() {
        let bundle = read_policies(&repo_policies()).unwrap();
        match gatehouse_policy::check(&bundle) {
            Ok(report) => {
                for r in 1..=18 {
                    assert!(
                        report.rules.contains_key(&format!("R{r}")),
                        "no policy for R{r}"
                    );
                }
            }
            Err(problems) => panic!("{problems:#?}"),
        }
    }

    #[test]
    fn a_broken_policy_is_refused_with_its_location() {
        let mut bundle = read_policies(&repo_policies()).unwrap();
        bundle.policies.push(PolicyFile {
            file: "broken.cedar".into(),
            text: "@id(\"X.bad\") @reason(\"r\") @unmet(\"u\")\npermit (principal, action == Action::\"remove_member\", resource is Membership) when { resource.nope };".into(),
        });
        let problems = gatehouse_policy::check(&bundle).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.location == "X.bad" && p.message.contains("nope")),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_policy_without_reason_is_refused() {
        let mut bundle = read_policies(&repo_policies()).unwrap();
        bundle.policies.push(PolicyFile {
            file: "silent.cedar".into(),
            text: "@id(\"X.silent\")\nforbid (principal, action == Action::\"leave\", resource);"
                .into(),
        });
        let problems = gatehouse_policy::check(&bundle).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.location == "X.silent" && p.message.contains("@reason")),
            "{problems:#?}"
        );
    }
}
