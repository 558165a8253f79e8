//! The HTTP API of a Gatehouse host, described once: every request body a
//! handler takes and every JSON answer it gives is a type here. The host
//! (de)serializes them (serde), `/openapi.json` is generated from them and
//! from the handlers' `#[utoipa::path]` (utoipa), and the pages' TypeScript
//! types come from them (`cargo xtask types` writes `www/src/gen/api.ts`
//! with ts-rs).
//!
//! Two kinds of field are opaque here: a read's `question` (the module's
//! batch envelope, typed by `www/src/gen/module.ts`: [`Question`]) and
//! stored JSON the log keeps verbatim (an audit record's `before`/`after`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;
use utoipa::ToSchema;

/// A Unix timestamp in seconds.
pub type Timestamp = i64;

// ---------------------------------------------------------------- shared

/// Why: a determining policy and its message with the facts filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// The determining policy's `@id`, e.g. `R8.owned-resources`.
    pub policy: String,
    /// Its human-readable reason with the facts filled in.
    pub message: String,
}

/// One decision: allowed or not, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    /// May the caller do it?
    pub allowed: bool,
    /// The determining policies (for a denial, at least one).
    pub reasons: Vec<Reason>,
}

/// A membership role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Owner.
    Owner,
    /// Admin.
    Admin,
    /// Standard.
    Standard,
    /// Basic.
    Basic,
}

/// A role asked for: a [`Role`], or `none` (no membership at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
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
    /// No membership.
    None,
}

/// A membership's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Active.
    Active,
    /// Suspended: permitted nothing in the account.
    Suspended,
}

/// The batch envelope a read asked the module, minimized to what its cells
/// need (`{"op":"batch", facts, actor, targets, actions, source}`): a page
/// asks its own copy of the module the same question. Its TypeScript type
/// is `www/src/gen/module.ts`'s (through `www/src/module.ts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(transparent)]
#[schema(value_type = Object)]
#[ts(type = "import('../module').Question")]
pub struct Question(pub Value);

/// Every error of the API and its fallbacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error: a stable code and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// A stable machine-readable code: bad_request, unauthenticated, csrf,
    /// token_scope, loopback_only, denied, inapplicable, not_found,
    /// conflict, unprocessable, too_large, unsupported_media_type, busy,
    /// rate_limited, timeout, other_browser, internal, method_not_allowed.
    pub code: String,
    /// What went wrong and what to do; never internal details.
    pub message: String,
    /// Only for `denied` and `inapplicable`: the determining policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub reasons: Option<Vec<Reason>>,
    /// Only for `denied` and `inapplicable` of a change: its audit record
    /// (reads are not audited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub audit_id: Option<i64>,
}

/// An applied change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct ChangeResult {
    /// Always true.
    pub ok: bool,
    /// What the change did (ids, one-time tokens, notes).
    #[schema(value_type = Object)]
    #[ts(type = "Record<string, unknown>")]
    pub result: Value,
    /// The audit record of the applied change.
    pub audit_id: i64,
    /// Why it was allowed.
    pub reasons: Vec<Reason>,
}

// ---------------------------------------------------------------- host

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// Where the live module is, cached for good: `/v1/module/<module_sha256>.wasm`.
    pub module_url: String,
    /// The live module's sha256 (hex).
    pub module_sha256: String,
    /// The live policies' hash.
    pub policy_hash: String,
    /// Demo mode: the mailbox is readable at `/v1/demo/mailbox`.
    pub demo: bool,
}

/// `GET /v1/demo/mailbox`'s query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MailboxQuery {
    /// Only the mails to this address (case-insensitive).
    #[ts(optional)]
    pub to: Option<String>,
}

/// A mail of the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Mail {
    /// Id.
    pub id: i64,
    /// When it was queued.
    pub created_at: Timestamp,
    /// The recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Plain-text body (sign-in and invitation links included).
    pub body: String,
    /// When it went out, if it did.
    pub sent_at: Option<Timestamp>,
    /// Delivery attempts.
    pub attempts: i64,
    /// The last delivery error.
    pub last_error: Option<String>,
}

/// `GET /v1/demo/mailbox`: the newest mails, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Mailbox {
    /// At most 50.
    pub mails: Vec<Mail>,
}

// ---------------------------------------------------------------- sign-in

/// `POST /v1/auth/sign-in`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The address to send a sign-in link to.
    #[schema(max_length = 254)]
    pub email: String,
}

/// A message and nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// What happened.
    pub message: String,
}

/// `POST /v1/auth/redeem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Redeem {
    /// The secret from the emailed sign-in link.
    pub token: String,
    /// A label for the new session (device); default `browser`.
    #[serde(default)]
    #[ts(optional)]
    pub label: Option<String>,
}

/// `POST /v1/auth/link`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct LinkQuery {
    /// The secret from the emailed sign-in link.
    pub token: String,
}

/// The address a sign-in link signs in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct LinkEmail {
    /// The address.
    pub email: String,
}

/// A new browser session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The user signed in.
    pub user: String,
    /// The session (device) id.
    pub session: String,
    /// Send this as `X-CSRF-Token` with every state-changing call made with the cookie.
    pub csrf: String,
}

/// `POST /v1/auth/sign-out`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct SignedOut {
    /// Always true.
    pub signed_out: bool,
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum TokenAccess {
    /// GET and HEAD only.
    Read,
    /// Everything its user may do on its accounts.
    Write,
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// 1 to 100 characters.
    pub label: String,
    /// The accounts the token may be used on (1 to 100; any other account answers 403 `token_scope`).
    pub accounts: Vec<String>,
    /// `read`: GET and HEAD only.
    pub access: TokenAccess,
    /// 1 to 90 days (R15.token-lifetime decides); default 30.
    #[serde(default)]
    #[schema(default = 30)]
    #[ts(optional)]
    pub lifetime_days: Option<i64>,
}

/// A minted API token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct CreatedToken {
    /// The token's (device's) id.
    pub id: String,
    /// The API token (`ght_…`), shown once.
    pub token: String,
    /// The accounts it may be used on.
    pub accounts: Vec<String>,
    /// What it may do.
    pub access: TokenAccess,
    /// When it expires.
    pub expires_at: Timestamp,
    /// Shown once: store it now.
    pub note: String,
    /// The audit record of the mint.
    pub audit_id: i64,
}

// ---------------------------------------------------------------- me

/// The caller's notification settings (`PUT /v1/me/notifications`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    /// Mail.
    pub email: bool,
    /// Text messages.
    pub sms: bool,
}

/// `PATCH /v1/me`: only the fields given change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// 1 to 200 characters.
    #[serde(default)]
    #[ts(optional)]
    pub name: Option<String>,
    /// Phone number.
    #[serde(default)]
    #[ts(optional)]
    pub phone: Option<String>,
    /// Default sending country, a two-letter code such as GB.
    #[serde(default)]
    #[ts(optional)]
    pub country: Option<String>,
}

/// `GET /v1/me`: the signed-in user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Me {
    /// User id.
    pub id: String,
    /// Address.
    pub email: String,
    /// Name.
    pub name: String,
    /// Phone number.
    pub phone: Option<String>,
    /// Default sending country.
    pub country: Option<String>,
    /// Notification settings.
    pub notifications: Notifications,
    /// The question's action columns, in order.
    pub action_keys: Vec<String>,
    /// update_profile, update_notifications and delete_profile on the caller.
    pub question: Question,
    /// The session's CSRF value for a cookie session (send it as `X-CSRF-Token`); null for API tokens.
    pub csrf: Option<String>,
    /// This session's (device's) id.
    pub session: String,
}

/// A session or API token of the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Id.
    pub id: String,
    /// `browser` or `api`.
    pub kind: String,
    /// Label.
    pub label: String,
    /// Created.
    pub created_at: Timestamp,
    /// Expires.
    pub expires_at: Timestamp,
    /// The session of this request.
    pub current: bool,
}

/// `GET /v1/me/devices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    /// Oldest first.
    pub devices: Vec<Device>,
    /// The question's action columns, in order.
    pub action_keys: Vec<String>,
    /// sign_out_device on every device.
    pub question: Question,
}

// ---------------------------------------------------------------- accounts

/// Seats of an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Seats {
    /// Memberships plus pending, unexpired invitations (R4).
    pub in_use: i64,
    /// Included plus extra seats.
    pub total: i64,
}

/// One row of the account switcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct AccountSummary {
    /// Account id.
    pub id: String,
    /// Its name.
    pub name: Option<String>,
    /// Its agency, when the caller may switch into it.
    pub parent: Option<String>,
    /// The caller's own role in it, if a member.
    pub role: Option<Role>,
    /// The caller's own membership status, if a member.
    pub status: Option<MemberStatus>,
    /// Access comes through an agency, not an own membership.
    pub inherited: bool,
    /// Its seats, when the caller may switch into it.
    pub seats: Option<Seats>,
    /// May the caller switch into it.
    pub switch: Cell,
}

/// `GET /v1/accounts`: the account switcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    /// Every account the caller belongs to, directly or through an agency.
    pub accounts: Vec<AccountSummary>,
    /// The account whose owners may author policies (`author_policies` is
    /// the question's second column), or null when the editor is off.
    pub policy_account: Option<String>,
    /// The live policies' hash.
    pub policy_hash: String,
    /// switch_account (and author_policies) on the listed accounts.
    pub question: Question,
    /// invite on the listed accounts: the invite dialog checks typed addresses on it.
    pub invite_question: Question,
}

/// An account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Its agency.
    pub parent: Option<String>,
    /// Seats included in the plan.
    pub included_seats: i64,
    /// Seats bought.
    pub extra_seats: i64,
}

/// A member of an account with the caller's allowed actions on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// User id.
    pub user: String,
    /// Name.
    pub name: Option<String>,
    /// Address.
    pub email: Option<String>,
    /// Role.
    pub role: Role,
    /// Status.
    pub status: MemberStatus,
    /// The account's nickname for them.
    pub nickname: Option<String>,
    /// Provisioned by the account's identity provider (SCIM).
    pub managed_by_idp: bool,
    /// Numbers and flows they own in the account.
    pub owned_resources: i64,
    /// Per action key (edit_nickname, change_role:<role>, suspend,
    /// unsuspend, remove_member, request_owner_removal:<role>,
    /// step_down:admin, leave): allowed and why not.
    pub actions: BTreeMap<String, Cell>,
}

/// `GET /v1/accounts/{account}/members`: a page of members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Members {
    /// The account.
    pub account: Account,
    /// The policies' hash the page was decided under.
    pub policy_hash: String,
    /// The module's sha256 the page was decided with.
    pub module_sha256: String,
    /// How many decisions the one batch call made.
    pub decisions: i64,
    /// This page's members, in user id order.
    pub members: Vec<Member>,
    /// How many members the account has (every page).
    pub total: i64,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
    /// The account's seats.
    pub seats: Seats,
    /// The question's action columns, in order.
    pub action_keys: Vec<String>,
    /// The page's rows × the member actions.
    pub question: Question,
}

/// The members list's query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// 1 to 500 members (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    #[ts(optional)]
    pub limit: Option<String>,
    /// The previous page's `next`.
    #[param(min_length = 1)]
    #[ts(optional)]
    pub after: Option<String>,
}

/// An invitation's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Sent, not accepted yet.
    Pending,
    /// Past its expiry, not accepted.
    Expired,
    /// Accepted.
    Accepted,
    /// Revoked.
    Revoked,
}

/// The caller's resend/revoke answers on an invitation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct InvitationActions {
    /// resend_invitation.
    pub resend_invitation: Option<Cell>,
    /// revoke_invitation.
    pub revoke_invitation: Option<Cell>,
}

/// An invitation (its token is never listed: it is shown once, at creation or resend).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Invitation {
    /// Id.
    pub id: String,
    /// The invited address.
    pub email: String,
    /// The role it grants.
    pub role: Role,
    /// Who invited.
    pub invited_by: String,
    /// Sent (or resent).
    pub sent_at: Timestamp,
    /// Expires.
    pub expires_at: Timestamp,
    /// Status, expiry derived from the host's clock.
    pub status: InvitationStatus,
    /// The caller's answers.
    pub actions: InvitationActions,
}

/// `GET /v1/accounts/{account}/invitations`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Invitations {
    /// Every status.
    pub invitations: Vec<Invitation>,
    /// The question's action columns, in order.
    pub action_keys: Vec<String>,
    /// The rows × resend/revoke.
    pub question: Question,
}

/// One account of an invitation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct InviteTo {
    /// Account id.
    pub account: String,
    /// The role to grant.
    pub role: Role,
}

/// `POST /v1/invitations`: every address to every account; at most 200 invitations per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    /// At least one address.
    pub emails: Vec<String>,
    /// At least one account.
    pub accounts: Vec<InviteTo>,
}

/// What a new invitation gives back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct InvitationCreated {
    /// Its id.
    pub invitation: String,
    /// The invitation link's secret, shown once.
    pub token: String,
    /// Expires.
    pub expires_at: Timestamp,
}

/// One invitation made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct InviteCreated {
    /// Always true.
    pub ok: bool,
    /// The invitation.
    pub result: InvitationCreated,
    /// Its audit record.
    pub audit_id: i64,
}

/// One (address, account) of a request for several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct InviteResult {
    /// Address.
    pub email: String,
    /// Account.
    pub account: String,
    /// The HTTP status this one invitation would have had.
    pub status: u16,
    /// When made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub result: Option<InvitationCreated>,
    /// When refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<ErrorDetail>,
}

/// Several addresses or accounts: one result per (address, account).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct InviteResults {
    /// Addresses within accounts.
    pub results: Vec<InviteResult>,
}

/// `POST /v1/invitations/accept`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    /// The invitation link's secret.
    pub token: String,
}

// ---------------------------------------------------------------- members

/// A role to change to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// The role.
    pub role: Role,
}

/// `PUT …/nickname`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct NicknameBody {
    /// At most 64 characters; empty or null clears it.
    #[ts(optional)]
    pub nickname: Option<String>,
}

/// `POST …/reassign`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Reassign {
    /// A member of the same account.
    pub to: String,
}

/// Seats to buy or remove.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Quantity {
    /// 1 to 10000.
    #[schema(minimum = 1, maximum = 10000)]
    pub quantity: i64,
}

/// `POST /v1/accounts/{account}/owner-removal-requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct OwnerRemovalBody {
    /// The owner whose owner role should go.
    pub target: String,
    /// What they drop to.
    pub new_role: RequestedRole,
}

/// An owner-removal request's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Waiting for an answer.
    Pending,
    /// Approved.
    Approved,
    /// Declined.
    Declined,
    /// Cancelled by its author.
    Cancelled,
    /// Past its expiry.
    Expired,
}

/// An owner-removal request with the caller's answers on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct OwnerRemovalRequest {
    /// Id.
    pub id: String,
    /// Account.
    pub account: String,
    /// The owner who asked.
    pub requested_by: String,
    /// The owner it is about.
    pub target: String,
    /// The role the target drops to.
    pub new_role: RequestedRole,
    /// Status, expiry derived from the host's clock.
    pub status: RequestStatus,
    /// Made.
    pub created_at: Timestamp,
    /// Expires.
    pub expires_at: Timestamp,
    /// approve/decline/cancel for the caller.
    pub actions: BTreeMap<String, Cell>,
}

/// `GET /v1/accounts/{account}/owner-removal-requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct OwnerRemovalRequests {
    /// Every request of the account.
    pub requests: Vec<OwnerRemovalRequest>,
    /// The question's action columns, in order.
    pub action_keys: Vec<String>,
    /// The rows × approve/decline/cancel.
    pub question: Question,
}

// ---------------------------------------------------------------- bulk removal

/// `POST /v1/accounts/{account}/bulk-removals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// The user to remove from the account and all its sub-accounts.
    pub user: String,
}

/// Someone who could be removed from an agency's subtree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct BulkCandidate {
    /// User id.
    pub user: String,
    /// Name.
    pub name: String,
    /// Address.
    pub email: String,
    /// The accounts of the subtree they are a member of (that the caller may see).
    pub accounts: Vec<String>,
}

/// `GET /v1/accounts/{account}/bulk-removals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct BulkCandidates {
    /// By name.
    pub candidates: Vec<BulkCandidate>,
    /// bulk_remove of every candidate on the account.
    pub question: Question,
}

/// A job's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Items no longer pending.
    pub done: i64,
    /// Items.
    pub total: i64,
}

/// One account of a bulk removal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct JobItem {
    /// Account.
    pub account: String,
    /// pending, removed, blocked, already_removed or failed.
    pub status: String,
    /// Why blocked or failed (the module's reasons, as stored).
    #[schema(value_type = Option<Vec<Reason>>)]
    #[ts(type = "Reason[] | null")]
    pub reasons: Value,
    /// The audit record of the removal.
    pub audit_id: Option<i64>,
    /// When it was done.
    pub done_at: Option<Timestamp>,
}

/// `GET /v1/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Id.
    pub job: String,
    /// The agency.
    pub account: String,
    /// The user removed.
    pub user: String,
    /// Who started it.
    pub started_by: String,
    /// running or done.
    pub status: String,
    /// Items done of all.
    pub progress: Progress,
    /// One per account.
    pub items: Vec<JobItem>,
}

// ---------------------------------------------------------------- audit

/// `GET /v1/accounts/{account}/audit`'s query.
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS, utoipa::IntoParams,
)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    #[ts(optional)]
    pub limit: Option<i64>,
    /// Only records older than this id (the previous page's `next_before`).
    #[ts(optional)]
    pub before: Option<i64>,
    /// Only this action.
    #[ts(optional)]
    pub action: Option<String>,
    /// Only this actor (`user:<id>` or a bare user id).
    #[ts(optional)]
    pub actor: Option<String>,
    /// allowed, denied or failed.
    #[param(pattern = "^(allowed|denied|failed)$")]
    #[ts(optional)]
    pub decision: Option<String>,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Id.
    pub id: i64,
    /// First seen.
    pub at: Timestamp,
    /// Last seen.
    pub last_at: Timestamp,
    /// Identical denials within a minute share one record.
    pub count: i64,
    /// `user:<id>` or `idp:<account>`.
    pub actor: String,
    /// Action.
    pub action: String,
    /// Account.
    pub account: Option<String>,
    /// Target.
    pub target: String,
    /// allowed, denied or failed.
    pub decision: String,
    /// permitted, forbidden, not_permitted, inapplicable or error.
    pub outcome: String,
    /// The determining policies, as stored.
    #[schema(value_type = Option<Vec<Reason>>)]
    #[ts(type = "Reason[] | null")]
    pub reasons: Value,
    /// Policies' hash.
    pub policy_hash: String,
    /// Module's sha256.
    pub module_sha256: String,
    /// The state before, as stored (any JSON).
    #[ts(type = "unknown")]
    pub before: Value,
    /// The state after, as stored (any JSON).
    #[ts(type = "unknown")]
    pub after: Value,
    /// ui, api, scim or job.
    pub source: String,
    /// The bulk job it belongs to.
    pub job: Option<String>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct AuditLog {
    /// Records.
    pub events: Vec<AuditEvent>,
    /// Pass as `before` for the next (older) page.
    pub next_before: Option<i64>,
}

// ---------------------------------------------------------------- policy editor

/// A policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// A plain name ending in `.cedar`.
    pub file: String,
    /// Its text.
    pub text: String,
}

/// `POST /v1/policies/check` and `/impact`: the edited policy files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct PolicyDraft {
    /// Every file.
    pub policies: Vec<PolicyFile>,
}

/// `POST /v1/policies/publish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct PolicyPublish {
    /// Every file.
    pub policies: Vec<PolicyFile>,
    /// Why.
    pub message: String,
    /// The policy hash the draft was begun on; when it is no longer the live one the publish is refused with 409.
    #[serde(default)]
    #[ts(optional)]
    pub base: Option<String>,
}

/// A published version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct VersionSummary {
    /// Number.
    pub version: i64,
    /// Author.
    pub author: String,
    /// Message.
    pub message: String,
    /// When.
    pub published_at: Timestamp,
    /// Policies' hash.
    pub policy_hash: String,
}

/// A decision table of the repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct PolicyTable {
    /// Name.
    pub name: String,
    /// The rule it is about.
    pub rule: Option<String>,
    /// The envelope as the exact text every runtime is handed (some tables are malformed on purpose).
    pub input: String,
    /// What the page hands its module (`{"op":"tables",…}`).
    #[schema(value_type = Object)]
    #[ts(type = "import('./module').Expect")]
    pub expect: Value,
}

/// `GET /v1/policies`: the live policies, for the editor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    /// The policy account.
    pub account: String,
    /// Live policies' hash.
    pub policy_hash: String,
    /// Live module's sha256.
    pub module_sha256: String,
    /// The newest published version.
    pub version: Option<VersionSummary>,
    /// The Cedar schema (read-only in the editor).
    pub schema: String,
    /// The policy files.
    pub policies: Vec<PolicyFile>,
    /// The decision tables.
    pub tables: Vec<PolicyTable>,
}

/// A publish that landed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Published {
    /// Always true.
    pub ok: bool,
    /// The new version.
    pub version: i64,
    /// Its policies' hash.
    pub policy_hash: String,
    /// Its module's sha256.
    pub module_sha256: String,
    /// Audit record.
    pub audit_id: i64,
    /// What the publish did, step by step.
    pub log: Vec<String>,
}

/// A new publish request, waiting for a second owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct PendingPublish {
    /// Id.
    pub id: String,
    /// Author.
    pub author: String,
    /// Message.
    pub message: String,
    /// Its policies' hash.
    pub policy_hash: String,
    /// Expires.
    pub expires_at: Timestamp,
}

/// `POST /v1/policies/publish` when a second owner must approve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct PublishPending {
    /// Always true.
    pub ok: bool,
    /// The request.
    pub pending: PendingPublish,
    /// Audit record.
    pub audit_id: i64,
    /// What the preparation did.
    pub log: Vec<String>,
}

/// A module answer with its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// May the change be applied?
    pub allowed: bool,
    /// permitted, forbidden, not_permitted, hidden, inapplicable or error.
    pub outcome: String,
    /// The determining policies.
    pub reasons: Vec<Reason>,
}

/// A publish request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Id.
    pub id: String,
    /// Author.
    pub author: String,
    /// Message.
    pub message: String,
    /// The live policies' hash when it was asked.
    pub base: String,
    /// Its policies' hash.
    pub policy_hash: String,
    /// Its module's sha256.
    pub module_sha256: String,
    /// Status, expiry derived from the host's clock.
    pub status: RequestStatus,
    /// Made.
    pub created_at: Timestamp,
    /// Expires.
    pub expires_at: Timestamp,
    /// Who approved or declined.
    pub decided_by: Option<String>,
    /// The version it became.
    pub version: Option<i64>,
    /// While pending: approve_publish, decline_publish and cancel_publish for the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub decisions: Option<BTreeMap<String, Decision>>,
}

/// `GET /v1/policies/publish-requests`: the newest 50.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct PublishRequests {
    /// Newest first.
    pub requests: Vec<PublishRequest>,
}

/// An answered publish request (approved, declined or cancelled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct PublishAnswered {
    /// Always true.
    pub ok: bool,
    /// The request.
    pub id: String,
    /// Its new status.
    pub status: RequestStatus,
    /// Approved: the version it became.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub version: Option<i64>,
    /// Approved: its policies' hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub policy_hash: Option<String>,
    /// Approved: its module's sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub module_sha256: Option<String>,
    /// Audit record.
    pub audit_id: i64,
}

/// `POST /v1/policies/check`: the strict check of a draft (Cedar's type
/// validation included), typed by `www/src/gen/module.ts`'s `Checked`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(transparent)]
#[schema(value_type = Object)]
#[ts(type = "import('./module').Checked")]
pub struct CheckedDraft(pub Value);

/// `POST /v1/policies/impact`: every recorded decision of the audit log
/// (every tenant's), its stored envelope handed verbatim to the draft's
/// policies. Flips name audit rows, actions, accounts and policy ids only:
/// no reason messages (they render facts). See [`ImpactShape`] for its
/// fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(transparent)]
#[schema(value_type = ImpactShape)]
#[ts(type = "ImpactShape")]
pub struct ImpactReport(pub Value);

/// How a recorded decision flips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum FlipKind {
    /// Allowed then, denied now.
    AllowToDeny,
    /// Denied then, allowed now.
    DenyToAllow,
    /// Same answer, other reasons.
    ReasonsChanged,
}

/// One side of a flip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ImpactSide {
    /// Allowed?
    pub allowed: bool,
    /// The determining policies' `@id`, each once.
    pub policies: Vec<String>,
}

/// A recorded decision that flips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ImpactFlip {
    /// The audit row.
    pub audit_id: i64,
    /// When.
    pub at: Timestamp,
    /// Attempts it stands for.
    pub repeats: i64,
    /// Action.
    pub action: String,
    /// Null: a stranger's attempt, kept in the host's log.
    pub account: Option<String>,
    /// How it flips.
    pub kind: FlipKind,
    /// The policies that make the difference, comma-separated.
    pub rule: String,
    /// Recorded.
    pub before: ImpactSide,
    /// Under the draft.
    pub after: ImpactSide,
}

/// Flips grouped by action, rule and kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ImpactGroup {
    /// Action.
    pub action: String,
    /// The policies that make the difference.
    pub rule: String,
    /// How they flip.
    pub kind: FlipKind,
    /// Audit rows.
    pub decisions: i64,
    /// Attempts they stand for.
    pub attempts: i64,
}

/// A row that could not be replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ImpactUnreplayable {
    /// The audit row.
    pub audit_id: i64,
    /// Action.
    pub action: String,
    /// Account.
    pub account: Option<String>,
    /// The module's error codes.
    pub error: String,
}

/// The fields of an [`ImpactReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ImpactShape {
    /// Only rows decided at or after this time.
    pub since: Option<Timestamp>,
    /// Audit rows replayed.
    pub replayed: i64,
    /// Attempts they stand for.
    pub attempts: i64,
    /// Rows allowed then, denied now.
    pub allow_to_deny: i64,
    /// Rows denied then, allowed now.
    pub deny_to_allow: i64,
    /// Rows with other reasons now.
    pub reasons_changed: i64,
    /// Grouped.
    pub groups: Vec<ImpactGroup>,
    /// Every flipped row, oldest first.
    pub flips: Vec<ImpactFlip>,
    /// Rows that could not be replayed.
    pub unreplayable: Vec<ImpactUnreplayable>,
}
