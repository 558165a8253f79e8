//! From the engine's and the store's types to the API's wire types
//! ([`gatehouse_api`]): the one place where the two meet.

use gatehouse_api as wire;
use gatehouse_policy::facts;

/// The API's reason.
pub fn reason(r: &gatehouse_policy::Reason) -> wire::Reason {
    wire::Reason {
        policy: r.policy.clone(),
        message: r.message.clone(),
    }
}

/// The API's reasons.
pub fn reasons(rs: &[gatehouse_policy::Reason]) -> Vec<wire::Reason> {
    rs.iter().map(reason).collect()
}

/// A decision as a cell: allowed, and why.
pub fn cell(d: &gatehouse_policy::Decision) -> wire::Cell {
    wire::Cell {
        allowed: d.allowed,
        reasons: reasons(&d.reasons),
    }
}

/// A decision with its outcome.
pub fn decision(d: &gatehouse_policy::Decision) -> wire::Decision {
    wire::Decision {
        allowed: d.allowed,
        outcome: crate::facts::to_word(&d.outcome),
        reasons: reasons(&d.reasons),
    }
}

/// The API's role.
pub fn role(r: facts::Role) -> wire::Role {
    match r {
        facts::Role::Owner => wire::Role::Owner,
        facts::Role::Admin => wire::Role::Admin,
        facts::Role::Standard => wire::Role::Standard,
        facts::Role::Basic => wire::Role::Basic,
    }
}

/// The engine's role.
pub fn role_in(r: wire::Role) -> facts::Role {
    match r {
        wire::Role::Owner => facts::Role::Owner,
        wire::Role::Admin => facts::Role::Admin,
        wire::Role::Standard => facts::Role::Standard,
        wire::Role::Basic => facts::Role::Basic,
    }
}

/// The API's requested role.
pub fn requested(r: facts::RequestedRole) -> wire::RequestedRole {
    match r {
        facts::RequestedRole::Owner => wire::RequestedRole::Owner,
        facts::RequestedRole::Admin => wire::RequestedRole::Admin,
        facts::RequestedRole::Standard => wire::RequestedRole::Standard,
        facts::RequestedRole::Basic => wire::RequestedRole::Basic,
        facts::RequestedRole::None => wire::RequestedRole::None,
    }
}

/// The engine's requested role.
pub fn requested_in(r: wire::RequestedRole) -> facts::RequestedRole {
    match r {
        wire::RequestedRole::Owner => facts::RequestedRole::Owner,
        wire::RequestedRole::Admin => facts::RequestedRole::Admin,
        wire::RequestedRole::Standard => facts::RequestedRole::Standard,
        wire::RequestedRole::Basic => facts::RequestedRole::Basic,
        wire::RequestedRole::None => facts::RequestedRole::None,
    }
}

/// The API's membership status.
pub fn status(s: facts::MembershipStatus) -> wire::MemberStatus {
    match s {
        facts::MembershipStatus::Active => wire::MemberStatus::Active,
        facts::MembershipStatus::Suspended => wire::MemberStatus::Suspended,
    }
}

/// An owner-removal request's status as shown at `now` (a pending one past
/// its expiry is `expired`).
pub fn request_status(s: facts::RequestStatus, expired: bool) -> wire::RequestStatus {
    match s {
        facts::RequestStatus::Pending if expired => wire::RequestStatus::Expired,
        facts::RequestStatus::Pending => wire::RequestStatus::Pending,
        facts::RequestStatus::Approved => wire::RequestStatus::Approved,
        facts::RequestStatus::Declined => wire::RequestStatus::Declined,
        facts::RequestStatus::Cancelled => wire::RequestStatus::Cancelled,
    }
}

/// An invitation's status as shown at `now`.
pub fn invitation_status(s: facts::InvitationStatus, expired: bool) -> wire::InvitationStatus {
    match s {
        facts::InvitationStatus::Pending if expired => wire::InvitationStatus::Expired,
        facts::InvitationStatus::Pending => wire::InvitationStatus::Pending,
        facts::InvitationStatus::Accepted => wire::InvitationStatus::Accepted,
        facts::InvitationStatus::Revoked => wire::InvitationStatus::Revoked,
    }
}

/// A question as the API hands it out.
pub fn question(v: serde_json::Value) -> wire::Question {
    wire::Question(v)
}
