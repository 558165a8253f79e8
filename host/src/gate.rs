//! Asking the module. The host never decides: it sends the facts and the
//! question to the very bytes the browser runs (through wasmtime) and reads
//! the answer. The loaded module can be swapped while serving.

use std::path::Path;
use std::sync::{Arc, RwLock};

use gatehouse_policy::json::Answer;
use gatehouse_policy::{Batch, BatchDecision, Check, Decision};
use gatehouse_runner::Runner;
use serde_json::json;

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

    fn call(&self, envelope: serde_json::Value) -> Result<(Answer, String), ApiError> {
        let runner = self
            .current()
            .ok_or_else(|| ApiError::internal("no module loaded"))?;
        let input = serde_json::to_vec(&envelope).map_err(ApiError::internal)?;
        let out = runner.call(&input).map_err(ApiError::internal)?;
        let answer: Answer = serde_json::from_slice(&out).map_err(ApiError::internal)?;
        Ok((answer, runner.module_sha256().to_owned()))
    }

    /// One decision.
    pub fn authorize(&self, check: &Check) -> Result<Decided<Decision>, ApiError> {
        let mut envelope = serde_json::to_value(check).map_err(ApiError::internal)?;
        if let Some(o) = envelope.as_object_mut() {
            o.insert("op".into(), json!("authorize"));
        }
        match self.call(envelope)? {
            (
                Answer::Success {
                    policy_hash,
                    decision: Some(answer),
                    ..
                },
                module_hash,
            ) => Ok(Decided {
                answer,
                policy_hash,
                module_hash,
            }),
            (other, _) => Err(ApiError::internal(format!(
                "the module did not decide: {}",
                serde_json::to_string(&other).unwrap_or_default()
            ))),
        }
    }

    /// Every (target, action) cell for one actor, in one call.
    pub fn batch(&self, batch: &Batch) -> Result<Decided<BatchDecision>, ApiError> {
        let mut envelope = serde_json::to_value(batch).map_err(ApiError::internal)?;
        if let Some(o) = envelope.as_object_mut() {
            o.insert("op".into(), json!("batch"));
        }
        match self.call(envelope)? {
            (
                Answer::Success {
                    policy_hash,
                    batch: Some(answer),
                    ..
                },
                module_hash,
            ) => Ok(Decided {
                answer,
                policy_hash,
                module_hash,
            }),
            (other, _) => Err(ApiError::internal(format!(
                "the module did not decide the batch: {}",
                serde_json::to_string(&other).unwrap_or_default()
            ))),
        }
    }
}
