//! What is asked (actor, action, target, parameters) and what is answered
//! (a [`Decision`] with reasons). These types are the one JSON boundary of
//! the module: every runtime sends and receives exactly these shapes.

use serde::{Deserialize, Serialize};

use crate::facts::{AccountId, DeviceId, Facts, InvitationId, RequestId, RequestedRole, UserId};

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Actor {
    /// A signed-in user.
    User(UserId),
    /// The SCIM client of an account's identity provider.
    IdentityProvider(AccountId),
}

/// What the action is done to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// An account.
    Account(AccountId),
    /// A user's global profile.
    User(UserId),
    /// One user's membership of one account.
    Membership {
        /// The account.
        account: AccountId,
        /// The member.
        user: UserId,
    },
    /// An invitation.
    Invitation(InvitationId),
    /// An owner-removal request.
    OwnerRemovalRequest(RequestId),
    /// A device.
    Device(DeviceId),
}

/// Where a change comes from; policies may treat sources differently (SCIM).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The browser UI.
    Ui,
    /// The HTTP API.
    #[default]
    Api,
    /// The SCIM endpoint.
    Scim,
    /// A background job (bulk removal).
    Job,
}

impl Source {
    /// The name policies see.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Ui => "ui",
            Source::Api => "api",
            Source::Scim => "scim",
            Source::Job => "job",
        }
    }
}

/// The parameters of an action. Which ones an action takes is read from the
/// schema's context declaration: a missing one or an extra one is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The role asked for (`change_role`, `step_down`, `invite`,
    /// `request_owner_removal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub role: Option<RequestedRole>,
    /// A number of seats (`buy_seats`, `remove_seats`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub quantity: Option<i64>,
    /// An email address (`invite`, `scim_provision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub email: Option<String>,
    /// The user a bulk removal is about (`bulk_remove`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub user: Option<UserId>,
    /// The member receiving reassigned resources (`reassign_resources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub to: Option<UserId>,
    /// The credential making the request (`mint_token`, the publish actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub credential: Option<Credential>,
    /// The lifetime asked for a new API token, in days (`mint_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub lifetime_days: Option<i64>,
    /// The pending publish an approval, decline or cancel is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub publish: Option<PublishRequest>,
    /// The email domain a verification is about, with the host's proof
    /// (`verify_domain`). Boxed: the rare parameter should not grow every
    /// check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub domain: Option<Box<DomainClaim>>,
}

/// An email domain an account claims, and whether the caller proved a
/// mailbox there (`context.domain`, `context.domain_proven`): the caller
/// signed in by a link mailed to an address at the domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct DomainClaim {
    /// The domain, lower case.
    pub name: String,
    /// The caller's signed-in address is at this domain.
    pub proven: bool,
}

/// What signed the request in: a browser session (cookie) or an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A browser session, signed in by an emailed link.
    Session,
    /// An API token (`Authorization: Bearer`).
    Token,
}

impl CredentialKind {
    /// The name policies see.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Session => "session",
            CredentialKind::Token => "token",
        }
    }
}

/// The facts of the credential making a request; policies see them as
/// `context.credential` and `context.signed_in_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Session or token.
    pub kind: CredentialKind,
    /// When it was signed in (a token: when it was minted), unix seconds.
    pub signed_in_at: i64,
}

/// Where a publish request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum PublishStatus {
    /// Waiting for a second owner.
    Pending,
    /// Approved: the version landed.
    Approved,
    /// Declined by another owner.
    Declined,
    /// Cancelled by its author.
    Cancelled,
}

impl PublishStatus {
    /// The name policies see.
    pub fn as_str(self) -> &'static str {
        match self {
            PublishStatus::Pending => "pending",
            PublishStatus::Approved => "approved",
            PublishStatus::Declined => "declined",
            PublishStatus::Cancelled => "cancelled",
        }
    }
}

/// A pending publish, as the approve, decline and cancel actions see it
/// (`context.publish_author`, `context.publish_status`,
/// `context.publish_expires_at`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Who asked for the publish.
    pub author: UserId,
    /// Where it stands.
    pub status: PublishStatus,
    /// When it expires, unix seconds.
    pub expires_at: i64,
}

impl Params {
    /// True when no parameter is set.
    pub fn is_empty(&self) -> bool {
        *self == Params::default()
    }
}

/// One action with its parameters: a column of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct ActionCall {
    /// The action's name in the schema, e.g. `remove_member`.
    pub action: String,
    /// Its parameters.
    #[serde(default, skip_serializing_if = "Params::is_empty")]
    pub params: Params,
}

/// One question: may `actor` do `action` to `target`?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// The facts, `now` included.
    pub facts: Facts,
    /// Who acts.
    pub actor: Actor,
    /// The action's name.
    pub action: String,
    /// What it is done to.
    pub target: Target,
    /// Its parameters.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub params: Params,
    /// Where the change comes from.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub source: Source,
}

/// Many questions about one actor: every (target, action) cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// The facts, `now` included.
    pub facts: Facts,
    /// Who acts.
    pub actor: Actor,
    /// Rows.
    pub targets: Vec<Target>,
    /// Columns.
    pub actions: Vec<ActionCall>,
    /// Where the changes would come from.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub source: Source,
}

/// How a decision came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A rule permits it and none forbids it.
    Permitted,
    /// A rule forbids it.
    Forbidden,
    /// No rule permits it (Cedar's default deny).
    NotPermitted,
    /// A policy could not be evaluated: denied, failing closed.
    Error,
    /// A `@gate @outcome("hidden")` forbid holds: the actor is a stranger to
    /// the thing asked about and must not learn that it exists (a host
    /// answers as for an id that does not exist).
    Hidden,
    /// A `@gate @outcome("inapplicable")` forbid holds: the action does not
    /// apply to its target as it stands (suspending a suspended member,
    /// revoking an accepted invitation): a host answers 409, a page leaves
    /// the item out of its menu.
    Inapplicable,
}

/// Why: a determining policy and its message with the facts filled in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// The policy's `@id`.
    pub policy: String,
    /// Its `@reason` (or `@unmet` for a default deny), placeholders filled.
    pub message: String,
}

/// An answer. A denial always has at least one reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// May the change be applied?
    pub allowed: bool,
    /// How the decision came about.
    pub outcome: Outcome,
    /// Determining policies and their messages.
    pub reasons: Vec<Reason>,
}

/// The answer to a [`Batch`]: `cells[t][a]` answers target `t`, action `a`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct BatchDecision {
    /// Rows in the order of the batch's targets.
    pub cells: Vec<Vec<Decision>>,
}
