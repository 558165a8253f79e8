#![doc = include_str!("../README.md")]

pub mod bundle;
pub mod engine;
pub mod error;
pub mod facts;
pub mod json;
mod memo;
mod minimize;
pub mod module;
pub mod request;
pub mod table;
pub mod template;
mod world;

#[cfg(feature = "check")]
pub use bundle::check;
pub use bundle::{Bundle, PolicyFile};
pub use engine::{Engine, Memo};
pub use error::EngineError;
pub use facts::Facts;
pub use request::{
    ActionCall, Actor, Batch, BatchDecision, Check, Credential, CredentialKind, Decision,
    DomainClaim, Outcome, Params, PublishRequest, PublishStatus, Reason, Source, Target,
};
pub use world::{MAX_AGENCY_DEPTH, seats_in_use};
