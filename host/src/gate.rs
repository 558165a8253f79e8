//! Asking the module. The host never decides: it sends the facts and the
//! question to the very bytes the browser runs (through wasmtime) and reads
//! the answer. The loaded module can be swapped while serving.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use gatehouse_bake::Precompressed;
use gatehouse_policy::json::Answer;
use gatehouse_policy::{Batch, BatchDecision, Check, Decision};
use gatehouse_runner::Runner;
use serde::Serialize;

use crate::error::ApiError;
use crate::wire::Wire;

/// The loaded module: the bytes (as served) and the compiled runner,
/// swapped together.
struct Loaded {
    runner: Arc<Runner>,
    wire: Arc<Wire>,
}

/// How many modules besides the live one a gate keeps at hand for their
/// hash URLs (the ones it served before a swap, published versions asked
/// for lately); older ones are read from the store again.
const RECENT: usize = 4;

/// The module the host decides with; cheap to clone, shared by every request.
///
/// Why one lock around one `Arc`: a request takes the current module once
/// and decides with it to the end, so a swap never changes a decision in
/// flight, and the bytes browsers download always match the announced hash.
#[derive(Clone)]
pub struct Gate {
    current: Arc<RwLock<Option<Arc<Loaded>>>>,
    recent: Arc<Mutex<VecDeque<Arc<Wire>>>>,
    /// Modules swapped in ([`Gate::swap`]), for `gatehouse_hot_swaps_total`.
    swaps: Arc<AtomicU64>,
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

tokio::task_local! {
    /// The module and policy hash the current request's answers were made
    /// under (the last one wins), for the headers that announce them.
    static ANSWERED: std::cell::RefCell<Option<(String, String)>>;
}

fn answered(module: &str, policy: &str) {
    let _ = ANSWERED.try_with(|a| *a.borrow_mut() = Some((module.to_owned(), policy.to_owned())));
}

/// Runs a request's handler and says which module and policy hash its
/// answers were made under, if it asked the module: a hot swap while the
/// handler ran cannot make a response announce the new hash over an answer
/// made under the old one.
pub async fn answering<F: std::future::Future>(f: F) -> (F::Output, Option<(String, String)>) {
    ANSWERED
        .scope(std::cell::RefCell::new(None), async {
            let out = f.await;
            (out, ANSWERED.with(|a| a.take()))
        })
        .await
}

fn load(bytes: Vec<u8>, precompressed: Option<Precompressed>) -> Result<Loaded, String> {
    let runner = Arc::new(Runner::new(&bytes).map_err(|e| e.to_string())?);
    Ok(Loaded {
        runner,
        wire: Arc::new(Wire::new(bytes, precompressed)),
    })
}

impl Gate {
    /// Loads the module file, with the precompressed copies `cargo xtask
    /// wasm` writes beside it (`.br`, `.gz`) when they decode to it.
    pub fn from_file(path: &Path) -> Result<Gate, String> {
        let bytes = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read the module `{}`: {e}; build it with `cargo xtask wasm`",
                path.display()
            )
        })?;
        let precompressed = gatehouse_bake::wire::read_siblings(path, &bytes);
        Gate::with(bytes, precompressed)
    }

    /// Loads module bytes (served uncompressed).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Gate, String> {
        Gate::with(bytes, None)
    }

    /// Loads module bytes with their brotli and gzip copies, which the
    /// caller has checked decode to them.
    pub fn from_parts(
        bytes: Vec<u8>,
        precompressed: Option<Precompressed>,
    ) -> Result<Gate, String> {
        Gate::with(bytes, precompressed)
    }

    fn with(bytes: Vec<u8>, precompressed: Option<Precompressed>) -> Result<Gate, String> {
        Ok(Gate {
            current: Arc::new(RwLock::new(Some(Arc::new(load(bytes, precompressed)?)))),
            recent: Arc::default(),
            swaps: Arc::default(),
        })
    }

    /// No module: for admin commands that decide nothing. Every decision
    /// through it fails closed.
    pub fn none() -> Gate {
        Gate {
            current: Arc::new(RwLock::new(None)),
            recent: Arc::default(),
            swaps: Arc::default(),
        }
    }

    /// Compiles `bytes` and, only if that works, makes them the module every
    /// later request decides with (served with `precompressed`, the copies
    /// made when it was baked). Requests already deciding finish with the
    /// module they took. Slow (a compile): call it off the async runtime.
    pub fn swap(&self, bytes: Vec<u8>, precompressed: Option<Precompressed>) -> Result<(), String> {
        let loaded = Arc::new(load(bytes, precompressed)?);
        let (module, policy) = (
            loaded.runner.module_sha256().to_owned(),
            loaded.runner.policy_hash().to_owned(),
        );
        let old = match self.current.write() {
            Ok(mut c) => c.replace(loaded),
            Err(poisoned) => poisoned.into_inner().replace(loaded),
        };
        self.swaps.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            target: "gatehouse::swap",
            module_sha256 = %module,
            policy_hash = %policy,
            previous_module_sha256 = old.as_ref().map_or("", |o| o.runner.module_sha256()),
            "hot swap: deciding with a new module"
        );
        // Pages that loaded the old module's URL before the swap still get it.
        if let Some(old) = old {
            self.remember(old.wire.clone());
        }
        Ok(())
    }

    /// The live module, unless it has no precompressed copies: those are
    /// made now (seconds) and the live module is served with them.
    pub fn precompress(&self) -> Result<(), String> {
        let Some(loaded) = self.current() else {
            return Ok(());
        };
        if loaded.wire.br.is_some() && loaded.wire.gz.is_some() {
            return Ok(());
        }
        let p = gatehouse_bake::precompress(&loaded.wire.identity).map_err(|e| e.to_string())?;
        let wire = Arc::new(Wire::new(loaded.wire.identity.to_vec(), Some(p)));
        let mut current = match self.current.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Only if no swap came in between.
        if let Some(live) = current.as_ref()
            && Arc::ptr_eq(live, &loaded)
        {
            let runner = live.runner.clone();
            *current = Some(Arc::new(Loaded { runner, wire }));
        }
        Ok(())
    }

    /// The live module's bytes as served, with its policy hash.
    pub fn live(&self) -> Option<(Arc<Wire>, String)> {
        self.current()
            .map(|l| (l.wire.clone(), l.runner.policy_hash().to_owned()))
    }

    /// The bytes of the module whose sha256 is `sha256`, if this gate has
    /// them at hand: the live one or a recent one ([`Gate::remember`]).
    pub fn wire_of(&self, sha256: &str) -> Option<Arc<Wire>> {
        if let Some(l) = self.current()
            && l.wire.sha256 == sha256
        {
            return Some(l.wire.clone());
        }
        self.recent_list()
            .iter()
            .find(|w| w.sha256 == sha256)
            .cloned()
    }

    /// Keeps `wire` at hand for its hash URL (the newest [`RECENT`]).
    pub fn remember(&self, wire: Arc<Wire>) {
        let mut recent = self.recent_list();
        recent.retain(|w| w.sha256 != wire.sha256);
        recent.push_front(wire);
        recent.truncate(RECENT);
    }

    fn recent_list(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Wire>>> {
        match self.recent.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn current(&self) -> Option<Arc<Loaded>> {
        match self.current.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The module's sha256 and bytes, read together.
    pub fn module(&self) -> (String, axum::body::Bytes) {
        self.current()
            .map(|l| (l.runner.module_sha256().to_owned(), l.wire.identity.clone()))
            .unwrap_or_default()
    }

    /// sha256 of the module bytes.
    pub fn module_sha256(&self) -> String {
        self.current()
            .map(|l| l.runner.module_sha256().to_owned())
            .unwrap_or_default()
    }

    /// sha256 of the module bytes and of its policy bundle, read together
    /// (a swap in between cannot pair one module with another's policies).
    pub fn hashes(&self) -> (String, String) {
        self.current()
            .map(|l| {
                (
                    l.runner.module_sha256().to_owned(),
                    l.runner.policy_hash().to_owned(),
                )
            })
            .unwrap_or_default()
    }

    /// How many modules were swapped in ([`Gate::swap`]) since this gate
    /// was made.
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
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
        let started = Instant::now();
        let out = runner.call(envelope.as_bytes());
        tracing::debug!(
            target: "gatehouse::module",
            op,
            bytes_in = envelope.len(),
            duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "module call"
        );
        let out = out.map_err(ApiError::internal)?;
        let answer: Answer = serde_json::from_slice(&out).map_err(ApiError::internal)?;
        match answer {
            Answer::Success {
                policy_hash,
                decision,
                batch,
                question,
                ..
            } => pick(decision, batch, question)
                .inspect(|_| answered(runner.module_sha256(), &policy_hash))
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

    /// One decision, in a `decision` span (target `gatehouse::decision`:
    /// action, outcome, policies, duration_us), and logged as one INFO event
    /// of that target in the caller's span (the request's). The log names
    /// the action, the outcome and policy ids, never the facts.
    pub fn authorize(&self, check: &Check) -> Result<Decided<Decision>, ApiError> {
        use tracing::field::Empty;
        let span = tracing::info_span!(
            target: "gatehouse::decision",
            "decision",
            action = %check.action,
            outcome = Empty,
            module_outcome = Empty,
            policies = Empty,
            duration_us = Empty,
        );
        let started = Instant::now();
        let decided = span.in_scope(|| self.ask("authorize", check, |d, _, _| d));
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let (outcome, module_outcome, policies, policy_hash) = match &decided {
            Ok(d) => (
                crate::metrics::outcome(&d.answer),
                crate::metrics::module_outcome(d.answer.outcome),
                crate::metrics::policy_ids(&d.answer).join(","),
                d.policy_hash.as_str(),
            ),
            Err(_) => ("error", "not_asked", String::new(), ""),
        };
        span.record("outcome", outcome);
        span.record("module_outcome", module_outcome);
        span.record("policies", policies.as_str());
        span.record("duration_us", duration_us);
        drop(span);
        tracing::info!(
            target: "gatehouse::decision",
            action = %check.action,
            outcome = %outcome,
            module_outcome = %module_outcome,
            policies = %policies,
            duration_us,
            policy_hash = %policy_hash,
            "decision"
        );
        decided
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
