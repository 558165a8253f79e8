//! The one error type of the engine boundary.

use serde::{Deserialize, Serialize};

/// What went wrong with an input or a policy bundle. Every variant is a clear
/// error value, never a panic: the module returns it as a `failure` answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The input is not the JSON we expect.
    #[error("malformed input: {0}")]
    BadInput(String),
    /// The input is larger than the module accepts.
    #[error(
        "input of {size} bytes is larger than the {limit} bytes accepted: send the facts of one account and its ancestors"
    )]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// Bytes accepted.
        limit: usize,
    },
    /// An action the schema does not declare.
    #[error("unknown action `{0}`: the schema in policies/ declares the actions")]
    UnknownAction(String),
    /// An id that the facts do not contain.
    #[error("unknown {kind} `{id}`: it is not in the facts")]
    UnknownEntity {
        /// What kind of thing.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The facts contradict themselves (duplicates, dangling references, cycles).
    #[error("inconsistent facts: {0}")]
    BadFacts(String),
    /// The target or actor is of the wrong kind for the action.
    #[error("action `{action}` {problem}")]
    WrongShape {
        /// The action.
        action: String,
        /// What does not fit.
        problem: String,
    },
    /// The policy bundle does not load.
    #[error("policy bundle: {0}")]
    Bundle(String),
    /// No policy bundle is loaded yet.
    #[error("no policies loaded: load the module's `gatehouse.policies` section first")]
    NotLoaded,
}

impl EngineError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::BadInput(_) => "bad_input",
            EngineError::TooLarge { .. } => "too_large",
            EngineError::UnknownAction(_) => "unknown_action",
            EngineError::UnknownEntity { .. } => "unknown_entity",
            EngineError::BadFacts(_) => "bad_facts",
            EngineError::WrongShape { .. } => "wrong_shape",
            EngineError::Bundle(_) => "bundle",
            EngineError::NotLoaded => "not_loaded",
        }
    }

    /// The error as it crosses the JSON boundary.
    pub fn to_wire(&self) -> WireError {
        WireError {
            code: self.code().to_owned(),
            message: self.to_string(),
        }
    }
}

/// An error as the JSON boundary carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct WireError {
    /// Stable code, e.g. `unknown_entity`.
    pub code: String,
    /// What went wrong and what to do, in words.
    pub message: String,
}
