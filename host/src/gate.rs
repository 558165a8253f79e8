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

/// The loaded module.
#[derive(Clone)]
pub struct Gate {
    runner: Arc<RwLock<Option<Arc<Runner>>>>,
    bytes: Arc<RwLock<Arc<Vec<u8>>>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("module", &self.module_sha256())
            .finish()
    }
}

/// A decision with the hashes it was made under.
#[derive(Debug, Clone)]
pub struct Decided<T> {
    /// The answer.
    pub answer: T,
    /// sha256 of the policy bundle.
    pub policy_hash: String,
    /// sha256 of the module bytes.
    pub module_hash: String,
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
        let runner = Runner::new(&bytes).map_err(|e| e.to_string())?;
        Ok(Gate {
            runner: Arc::new(RwLock::new(Some(Arc::new(runner)))),
            bytes: Arc::new(RwLock::new(Arc::new(bytes))),
        })
    }

    /// No module: for admin commands that decide nothing. Every decision
    /// through it fails closed.
    pub fn none() -> Gate {
        Gate {
            runner: Arc::new(RwLock::new(None)),
            bytes: Arc::new(RwLock::new(Arc::new(Vec::new()))),
        }
    }

    fn current(&self) -> Option<Arc<Runner>> {
        match self.runner.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The module bytes (served to browsers).
    pub fn bytes(&self) -> Arc<Vec<u8>> {
        match self.bytes.read() {
            Ok(b) => b.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// sha256 of the module bytes.
    pub fn module_sha256(&self) -> String {
        self.current()
            .map(|r| r.module_sha256().to_owned())
            .unwrap_or_default()
    }

    /// sha256 of the policy bundle.
    pub fn policy_hash(&self) -> String {
        self.current()
            .map(|r| r.policy_hash().to_owned())
            .unwrap_or_default()
    }

    /// Sends `{"op": op, ...body}` and picks the answer out of a success.
    fn ask<T>(
        &self,
        op: &'static str,
        body: &impl Serialize,
        pick: impl FnOnce(Option<Decision>, Option<BatchDecision>) -> Option<T>,
    ) -> Result<Decided<T>, ApiError> {
        #[derive(Serialize)]
        struct Envelope<'a, B> {
            op: &'static str,
            #[serde(flatten)]
            body: &'a B,
        }
        let runner = self
            .current()
            .ok_or_else(|| ApiError::internal("no module loaded"))?;
        let input = serde_json::to_vec(&Envelope { op, body }).map_err(ApiError::internal)?;
        let out = runner.call(&input).map_err(ApiError::internal)?;
        let answer: Answer = serde_json::from_slice(&out).map_err(ApiError::internal)?;
        match answer {
            Answer::Success {
                policy_hash,
                decision,
                batch,
                ..
            } => pick(decision, batch)
                .map(|answer| Decided {
                    answer,
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
        self.ask("authorize", check, |d, _| d)
    }

    /// Every (target, action) cell for one actor, in one call.
    pub fn batch(&self, batch: &Batch) -> Result<Decided<BatchDecision>, ApiError> {
        self.ask("batch", batch, |_, b| b)
    }
}
