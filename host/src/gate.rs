//! Asking the module. The host never decides: it sends the facts and the
//! question to the very bytes the browser runs (through wasmtime) and reads
//! the answer. The loaded module can be swapped while serving.

use std::path::Path;
use std::sync::{Arc, RwLock};

use gatehouse_policy::json::Answer;
use gatehouse_policy::{Batch, BatchDecision, Check, Decision};
use gatehouse_runner::Runner;
use serde::Serialize;

use crate::error::ApiError;

/// The loaded module: the bytes and the compiled runner, swapped together.
struct Loaded {
    runner: Runner,
    bytes: Arc<Vec<u8>>,
}

/// The module the host decides with; cheap to clone, shared by every request.
///
/// Why one lock around one `Arc`: a request takes the current module once
/// and decides with it to the end, so a swap never changes a decision in
/// flight, and the bytes browsers download always match the announced hash.
#[derive(Clone)]
pub struct Gate {
    current: Arc<RwLock<Option<Arc<Loaded>>>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("module", &self.module_sha256())
            .finish()
    }
}

/// A decision with the hashes it was made under and the bytes it answered.
#[derive(Debug, Clone)]
pub struct Decided<T> {
    /// The answer.
    pub answer: T,
    /// The exact envelope the module was handed (`{"op":…,…}`, UTF-8
    /// JSON): what the audit log keeps, so a replay asks the very same
    /// question (see [`crate::impact`]).
    pub envelope: String,
    /// sha256 of the policy bundle.
    pub policy_hash: String,
    /// sha256 of the module bytes.
    pub module_hash: String,
}

fn load(bytes: Vec<u8>) -> Result<Loaded, String> {
    let runner = Runner::new(&bytes).map_err(|e| e.to_string())?;
    Ok(Loaded {
        runner,
        bytes: Arc::new(bytes),
    })
}

impl Gate {
    /// Loads the module file.
    pub fn from_file(path: &Path) -> Result<Gate, String> {
        let bytes = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read the module `{}`: {e}; build it with `cargo xtask wasm`",
                path.display()
            )
        })?;
        Gate::from_bytes(bytes)
    }

    /// Loads module bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Gate, String> {
        Ok(Gate {
            current: Arc::new(RwLock::new(Some(Arc::new(load(bytes)?)))),
        })
    }

    /// No module: for admin commands that decide nothing. Every decision
    /// through it fails closed.
    pub fn none() -> Gate {
        Gate {
            current: Arc::new(RwLock::new(None)),
        }
    }

    /// Compiles `bytes` and, only if that works, makes them the module every
    /// later request decides with. Requests already deciding finish with the
    /// module they took. Slow (a compile): call it off the async runtime.
    pub fn swap(&self, bytes: Vec<u8>) -> Result<(), String> {
        let loaded = Arc::new(load(bytes)?);
        match self.current.write() {
            Ok(mut c) => *c = Some(loaded),
            Err(poisoned) => *poisoned.into_inner() = Some(loaded),
        }
        Ok(())
    }

    fn current(&self) -> Option<Arc<Loaded>> {
        match self.current.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The module's sha256 and bytes, read together (served to browsers).
    pub fn module(&self) -> (String, Arc<Vec<u8>>) {
        self.current()
            .map(|l| (l.runner.module_sha256().to_owned(), l.bytes.clone()))
            .unwrap_or_default()
    }

    /// sha256 of the module bytes.
    pub fn module_sha256(&self) -> String {
        self.current()
            .map(|l| l.runner.module_sha256().to_owned())
            .unwrap_or_default()
    }

    /// sha256 of the policy bundle.
    pub fn policy_hash(&self) -> String {
        self.current()
            .map(|l| l.runner.policy_hash().to_owned())
            .unwrap_or_default()
    }

    /// Sends `{"op": op, ...body}` and picks the answer out of a success.
    fn ask<T>(
        &self,
        op: &'static str,
        body: &impl Serialize,
        pick: impl FnOnce(Option<Decision>, Option<BatchDecision>, Option<Box<Batch>>) -> Option<T>,
    ) -> Result<Decided<T>, ApiError> {
        let loaded = self
            .current()
            .ok_or_else(|| ApiError::internal("no module loaded"))?;
        let runner = &loaded.runner;
        let envelope = serde_json::to_string(&Envelope { op, body }).map_err(ApiError::internal)?;
        let out = runner
            .call(envelope.as_bytes())
            .map_err(ApiError::internal)?;
        let answer: Answer = serde_json::from_slice(&out).map_err(ApiError::internal)?;
        match answer {
            Answer::Success {
                policy_hash,
                decision,
                batch,
                question,
                ..
            } => pick(decision, batch, question)
                .map(|answer| Decided {
                    answer,
                    envelope,
                    policy_hash,
                    module_hash: runner.module_sha256().to_owned(),
                })
                .ok_or_else(|| {
                    ApiError::internal(format!("the module's answer to `{op}` is empty"))
                }),
            failure => Err(ApiError::internal(format!(
                "the module did not answer `{op}`: {}",
                serde_json::to_string(&failure).unwrap_or_default()
            ))),
        }
    }

    /// One decision.
    pub fn authorize(&self, check: &Check) -> Result<Decided<Decision>, ApiError> {
        self.ask("authorize", check, |d, _, _| d)
    }

    /// Every (target, action) cell for one actor, in one call.
    pub fn batch(&self, batch: &Batch) -> Result<Decided<BatchDecision>, ApiError> {
        self.ask("batch", batch, |_, b, _| b)
    }

    /// The batch reduced to what its actor may see, asked of the module
    /// (need to know: the policies say which rows a viewer may see).
    pub fn minimize(&self, batch: &Batch) -> Result<Batch, ApiError> {
        self.ask("minimize", batch, |_, _, q| q).map(|d| *d.answer)
    }
}

/// `{"op": op, ...body}`: the module's request envelope without copying the body.
#[derive(Serialize)]
struct Envelope<'a, B> {
    op: &'static str,
    #[serde(flatten)]
    body: &'a B,
}

/// The batch envelope a page sends to its own copy of the module, built
/// from the minimized batch (see [`Gate::minimize`]): the page pre-checks
/// on only what its viewer may see, with the server's very answers.
pub fn question(batch: &Batch) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(Envelope {
        op: "batch",
        body: batch,
    })
    .map_err(ApiError::internal)
}
