//! The one JSON boundary: a request envelope in, a tagged answer out.
//!
//! Every runtime (native, wasmtime through the raw ABI, Node and the browser
//! through wasm-bindgen) sends these same bytes and gets these same bytes
//! back, which is what the shared vectors compare.

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{EngineError, WireError};
use crate::request::{Batch, BatchDecision, Check, Decision};
use crate::table::{self, TableResult, Tables};

/// The largest input the engine parses. Facts for one account and its
/// ancestors are far smaller; anything larger is refused before parsing.
pub const MAX_INPUT_BYTES: usize = 16 * 1024 * 1024;

/// The version of the module's interface (raw ABI and envelopes). Hosts
/// check it before calling anything else.
pub const ABI_VERSION: u32 = 1;

/// A request envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Envelope {
    /// One question.
    Authorize(Check),
    /// Every (target, action) cell for one actor.
    Batch(Batch),
    /// The batch reduced to what its actor may see (need to know); its
    /// answers equal the batch's.
    Minimize(Batch),
    /// What is loaded.
    Info,
    /// Decision tables answered and checked under the loaded policies
    /// ([`crate::table`]: the one table checker; the policy editor's).
    Tables(Tables),
}

/// What is loaded: versions, hash and actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Info {
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// The engine crate's version.
    pub engine_version: String,
    /// sha256 of the loaded policy bundle.
    pub policy_hash: String,
    /// The actions the schema declares.
    pub actions: Vec<String>,
}

/// A tagged answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Answer {
    /// The question was answered.
    Success {
        /// The policy bundle the answer was made under.
        policy_hash: String,
        /// A single decision.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        decision: Option<Decision>,
        /// A batch's decisions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        batch: Option<BatchDecision>,
        /// For `minimize`: the question to hand out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        question: Option<Box<Batch>>,
        /// For `info`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        info: Option<Info>,
        /// For `tables`: one result per table, in order.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        tables: Option<Vec<TableResult>>,
    },
    /// The input could not be answered.
    Failure {
        /// What went wrong.
        errors: Vec<WireError>,
    },
}

impl Answer {
    pub(crate) fn failure(e: &EngineError) -> Answer {
        Answer::Failure {
            errors: vec![e.to_wire()],
        }
    }
}

/// Parses an envelope, refusing oversize input before parsing.
pub fn parse_envelope(input: &[u8]) -> Result<Envelope, EngineError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(EngineError::TooLarge {
            size: input.len(),
            limit: MAX_INPUT_BYTES,
        });
    }
    // serde_json refuses nesting deeper than 128 levels, so deep input is an
    // error value, not a stack overflow.
    serde_json::from_slice(input).map_err(|e| EngineError::BadInput(e.to_string()))
}

/// Answers an envelope with the given engine (or none loaded).
pub fn answer(engine: Option<&Engine>, envelope: &Envelope) -> Answer {
    let Some(engine) = engine else {
        return Answer::failure(&EngineError::NotLoaded);
    };
    let success = |decision, batch, info, tables| Answer::Success {
        policy_hash: engine.policy_hash().to_owned(),
        decision,
        batch,
        question: None,
        info,
        tables,
    };
    match envelope {
        Envelope::Authorize(check) => match engine.authorize(check) {
            Ok(d) => success(Some(d), None, None, None),
            Err(e) => Answer::failure(&e),
        },
        Envelope::Batch(batch) => match engine.allowed_actions(batch) {
            Ok(b) => success(None, Some(b), None, None),
            Err(e) => Answer::failure(&e),
        },
        Envelope::Minimize(batch) => match engine.minimize(batch) {
            Ok(question) => Answer::Success {
                policy_hash: engine.policy_hash().to_owned(),
                decision: None,
                batch: None,
                question: Some(Box::new(question)),
                info: None,
                tables: None,
            },
            Err(e) => Answer::failure(&e),
        },
        Envelope::Info => success(
            None,
            None,
            Some(Info {
                abi_version: ABI_VERSION,
                engine_version: env!("CARGO_PKG_VERSION").to_owned(),
                policy_hash: engine.policy_hash().to_owned(),
                actions: engine.actions().to_vec(),
            }),
            None,
        ),
        Envelope::Tables(t) => success(
            None,
            None,
            None,
            Some(t.tables.iter().map(|t| table::run(engine, t)).collect()),
        ),
    }
}

/// Loads a policy bundle (the bytes of a `gatehouse.policies` section) as
/// the module's `gatehouse_load` and `loadPolicies` do: the new engine and
/// its `info` answer, or no engine and the failure answer. Native replays
/// (the fuzz corpus) call this to get the very bytes the module returns.
pub fn load(bundle: &[u8]) -> (Option<Engine>, Vec<u8>) {
    match Engine::from_bundle_bytes(bundle) {
        Ok(engine) => {
            let answer = handle(Some(&engine), br#"{"op":"info"}"#);
            (Some(engine), answer)
        }
        Err(err) => {
            let answer = Answer::failure(&err);
            (None, serde_json::to_vec(&answer).unwrap_or_default())
        }
    }
}

/// Bytes in, bytes out: the function every runtime calls.
pub fn handle(engine: Option<&Engine>, input: &[u8]) -> Vec<u8> {
    let answer = match parse_envelope(input) {
        Ok(envelope) => answer(engine, &envelope),
        Err(e) => Answer::failure(&e),
    };
    serde_json::to_vec(&answer).unwrap_or_else(|e| {
        format!(r#"{{"type":"failure","errors":[{{"code":"internal","message":"{e}"}}]}}"#)
            .into_bytes()
    })
}
