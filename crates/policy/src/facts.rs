//! The raw rows a host has, as the engine receives them.
//!
//! Why raw: every derivation (effective role through agency ancestors,
//! active-owner counts, seats in use, owned-resource counts) happens in
//! [`crate::entities`] from these rows, inside the one module, so a browser and
//! a server that hold the same rows derive the same facts with the same bytes.
//! Nothing here decides anything.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "ts", derive(ts_rs::TS))]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as the host stores it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A user's global identity.
    UserId
);
id_type!(
    /// A customer account (an agency or a sub-account).
    AccountId
);
id_type!(
    /// A pending, accepted or revoked invitation.
    InvitationId
);
id_type!(
    /// An owner-removal request.
    RequestId
);
id_type!(
    /// A signed-in browser or API token.
    DeviceId
);
id_type!(
    /// A number, flow, routing rule or team.
    ResourceId
);

/// Unix time in seconds.
pub type Timestamp = i64;

/// A membership role, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Owns the account.
    Owner,
    /// Administers the account.
    Admin,
    /// A standard user.
    Standard,
    /// A basic user.
    Basic,
}

impl Role {
    /// Every role, highest first.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Standard, Role::Basic];

    /// The role's name as policies see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Standard => "standard",
            Role::Basic => "basic",
        }
    }

    /// The next lower role, if any.
    pub fn lower(self) -> Option<Role> {
        match self {
            Role::Owner => Some(Role::Admin),
            Role::Admin => Some(Role::Standard),
            Role::Standard => Some(Role::Basic),
            Role::Basic => None,
        }
    }
}

/// A role asked for in a request: a [`Role`], or `none` (an owner-removal
/// request that removes the owner instead of demoting them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RequestedRole {
    /// Owner.
    Owner,
    /// Admin.
    Admin,
    /// Standard.
    Standard,
    /// Basic.
    Basic,
    /// No role: removal.
    None,
}

impl RequestedRole {
    /// The role's name as policies see it.
    pub fn as_str(self) -> &'static str {
        self.role().map_or("none", Role::as_str)
    }

    /// The role, unless this is `none`.
    pub fn role(self) -> Option<Role> {
        match self {
            RequestedRole::Owner => Some(Role::Owner),
            RequestedRole::Admin => Some(Role::Admin),
            RequestedRole::Standard => Some(Role::Standard),
            RequestedRole::Basic => Some(Role::Basic),
            RequestedRole::None => None,
        }
    }
}

/// A membership's status. Invited and expired members are invitations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum MembershipStatus {
    /// Has the powers of its role.
    Active,
    /// Keeps role and resources, has no powers in the account.
    Suspended,
}

/// An invitation's stored status; expiry is derived from `expires_at` and `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Not yet accepted or revoked (possibly expired).
    Pending,
    /// Accepted: a membership exists.
    Accepted,
    /// Revoked: the link is dead.
    Revoked,
}

/// An owner-removal request's stored status; expiry is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Waiting for the target owner.
    Pending,
    /// The target approved.
    Approved,
    /// The target declined.
    Declined,
    /// The requester cancelled.
    Cancelled,
}

/// The kind of an owned resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// A phone number.
    Number,
    /// A call or message flow.
    Flow,
    /// A routing rule.
    RoutingRule,
    /// A team.
    Team,
}

impl ResourceKind {
    /// Singular and plural nouns for reasons.
    pub fn nouns(self) -> (&'static str, &'static str) {
        match self {
            ResourceKind::Number => ("number", "numbers"),
            ResourceKind::Flow => ("flow", "flows"),
            ResourceKind::RoutingRule => ("routing rule", "routing rules"),
            ResourceKind::Team => ("team", "teams"),
        }
    }
}

/// A user's global identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Email address (compared case-insensitively).
    pub email: String,
    /// Display name.
    pub name: String,
}

/// A customer account; `parent` makes it a sub-account of an agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Id.
    pub id: AccountId,
    /// Display name.
    pub name: String,
    /// The agency this account belongs to.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(optional = nullable))]
    pub parent: Option<AccountId>,
    /// Seats included in the plan.
    pub included_seats: i64,
    /// Seats bought on top.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub extra_seats: i64,
    /// Email domains the account has proven it owns (lower case): its
    /// identity provider may provision existing users with addresses there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub verified_domains: Vec<String>,
}

/// One user's explicit membership of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// The member.
    pub user: UserId,
    /// The account.
    pub account: AccountId,
    /// Role on this account.
    pub role: Role,
    /// Status on this account.
    pub status: MembershipStatus,
    /// Per-account nickname.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(optional = nullable))]
    pub nickname: Option<String>,
    /// Provisioned by the account's identity provider (SCIM).
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub managed_by_idp: bool,
}

/// An invitation of an email address to one account with one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Invitation {
    /// Id.
    pub id: InvitationId,
    /// Invited address.
    pub email: String,
    /// Account invited to.
    pub account: AccountId,
    /// Role offered.
    pub role: Role,
    /// Who sent it.
    pub invited_by: UserId,
    /// When it was (re)sent.
    pub sent_at: Timestamp,
    /// When it stops being acceptable (14 days after `sent_at`).
    pub expires_at: Timestamp,
    /// Stored status.
    pub status: InvitationStatus,
}

/// A resource owned by a member in an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct OwnedResource {
    /// Id.
    pub id: ResourceId,
    /// Kind.
    pub kind: ResourceKind,
    /// Display name.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub name: String,
    /// Account it lives in.
    pub account: AccountId,
    /// Owning user.
    pub owner: UserId,
}

/// A request that an owner lose the owner role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct OwnerRemovalRequest {
    /// Id.
    pub id: RequestId,
    /// Account.
    pub account: AccountId,
    /// The owner who asked.
    pub requested_by: UserId,
    /// The owner it is about.
    pub target: UserId,
    /// The role the target drops to; `none` removes them.
    pub new_role: RequestedRole,
    /// Stored status.
    pub status: RequestStatus,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it expires (14 days after `created_at`).
    pub expires_at: Timestamp,
}

/// A signed-in browser or API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Id.
    pub id: DeviceId,
    /// Whose.
    pub user: UserId,
    /// Label shown to the user.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub label: String,
}

/// Everything a decision may look at. `now` is the host's clock: the module
/// has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Facts {
    /// The time of the decision, unix seconds.
    pub now: Timestamp,
    /// Users.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub users: Vec<User>,
    /// Accounts with their parents.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub accounts: Vec<Account>,
    /// Memberships.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub memberships: Vec<Membership>,
    /// Invitations.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub invitations: Vec<Invitation>,
    /// Owned resources.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub resources: Vec<OwnedResource>,
    /// Owner-removal requests.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub owner_removal_requests: Vec<OwnerRemovalRequest>,
    /// Devices.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub devices: Vec<Device>,
    /// What was derived from rows a minimized question leaves out (see
    /// [`Derived`]); empty for the full facts a host reads.
    #[serde(default, skip_serializing_if = "Derived::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub derived: Derived,
}

/// Values the engine derived from the full facts, carried by a minimized
/// question in place of the rows they came from (need to know: an agency's
/// client gets "you are an owner here through the agency" and "2 active
/// owners", not the agency's roster). Each value, when given, is used
/// instead of what the question's own rows would give, so the question
/// decides exactly as the full facts did. Hosts never write these by hand:
/// [`crate::Engine::minimize`] does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Derived {
    /// Account attributes counted over rows left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub accounts: Vec<AccountSummary>,
    /// User attributes counted over rows left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub users: Vec<UserSummary>,
    /// Role groups users are in on the question's accounts, through
    /// memberships left out (agency inheritance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub grants: Vec<Grant>,
    /// Memberships a pending owner-removal request left out targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<_>", optional))]
    pub pending_owner_removal: Vec<MemberRef>,
}

impl Derived {
    /// True when nothing was derived (full facts).
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.users.is_empty()
            && self.grants.is_empty()
            && self.pending_owner_removal.is_empty()
    }
}

/// An account's counted attributes (see the schema's `Account`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct AccountSummary {
    /// The account.
    pub account: AccountId,
    /// It has sub-accounts.
    pub is_agency: bool,
    /// Members plus pending, unexpired invitations.
    pub seats_in_use: i64,
    /// Active owners with an explicit membership.
    pub active_owners: i64,
}

/// A user's counted attributes (see the schema's `User`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct UserSummary {
    /// The user.
    pub user: UserId,
    /// Resources owned in any account.
    pub owned_resources: i64,
    /// Accounts of which the user is the only active owner.
    pub sole_owner_of: i64,
}

/// The group a grant puts a user in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum GrantGroup {
    /// At least this role (the group of the highest role held).
    Owner,
    /// At least admin.
    Admin,
    /// At least standard.
    Standard,
    /// At least basic.
    Basic,
    /// Suspended on this account.
    Suspended,
}

impl GrantGroup {
    /// The role group's word (`owner`…), `None` for the suspended group.
    pub fn role_word(self) -> Option<&'static str> {
        match self {
            GrantGroup::Owner => Some("owner"),
            GrantGroup::Admin => Some("admin"),
            GrantGroup::Standard => Some("standard"),
            GrantGroup::Basic => Some("basic"),
            GrantGroup::Suspended => None,
        }
    }
}

/// "`user` is in `group` of `account`".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The user.
    pub user: UserId,
    /// The account.
    pub account: AccountId,
    /// The group.
    pub group: GrantGroup,
}

/// One membership by its key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct MemberRef {
    /// The account.
    pub account: AccountId,
    /// The member.
    pub user: UserId,
}
