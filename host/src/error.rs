//! The host's one error type: every failure maps to an HTTP status and a
//! JSON body that says what to do, and nothing internal leaks.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_policy::Reason;
use serde_json::json;

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON, a missing field, a bad value).
    #[error("{0}")]
    BadRequest(String),
    /// No valid session or token.
    #[error("{0}")]
    Unauthenticated(String),
    /// A cookie-authenticated change without the matching CSRF header.
    #[error("missing or wrong X-CSRF-Token header: send the csrf value you got at sign-in")]
    Csrf,
    /// An API token used beyond its scope (another account, or a change
    /// made with a read-only token): the credential is limited, as an
    /// expired one is; nothing was decided or changed.
    #[error("{0}")]
    TokenScope(String),
    /// A demo-only endpoint asked from elsewhere than this machine (the
    /// demo fence, [`crate::demo::mailbox_open`]: transport, not a rule
    /// about who may do what).
    #[error("{0}")]
    LoopbackOnly(String),
    /// The module denied the change; nothing was changed but its audit record.
    #[error("denied")]
    Denied {
        /// The determining policies and their messages.
        reasons: Vec<Reason>,
        /// The audit record of the attempt (reads are not audited).
        audit_id: Option<i64>,
    },
    /// The module found the change inapplicable to its target as it stands
    /// (`Outcome::Inapplicable`: suspending a suspended member, revoking an
    /// accepted invitation); nothing was changed but its audit record.
    #[error("inapplicable")]
    Inapplicable {
        /// The determining policies and their messages.
        reasons: Vec<Reason>,
        /// The audit record of the attempt (reads are not audited).
        audit_id: Option<i64>,
    },
    /// No such thing, or nothing the caller may know exists.
    #[error("{0}")]
    NotFound(String),
    /// The stored state does not allow it (already used, already exists).
    #[error("{0}")]
    Conflict(String),
    /// A conditional write whose condition no longer holds (`If-Match`).
    #[error("{0}")]
    PreconditionFailed(String),
    /// The request is understood but its content is refused (a policy set
    /// whose decision tables or proofs fail, say); the message says why.
    #[error("{0}")]
    Unprocessable(String),
    /// The body is larger than accepted.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The store broke a deadlock or a serialization conflict by rolling
    /// this transaction back (PostgreSQL, SQLSTATE `40P01`/`40001`); a
    /// change is retried a few times before this reaches a caller. Nothing
    /// was applied.
    #[error("the store is busy with conflicting changes: nothing was applied, try again")]
    Busy,
    /// This peer asked too often at a door with a budget
    /// ([`crate::limits`]); nothing was done.
    #[error("too many requests from your address: try again in {retry_after} s")]
    RateLimited {
        /// Seconds until the budget holds a request again (`Retry-After`).
        retry_after: u64,
    },
    /// The request ran past the host's time limit and was stopped; a change
    /// still open was rolled back ([`crate::limits::deadline`]).
    #[error("the request took longer than {} s and was stopped: a change still in progress was not applied; check, then try again", .0.as_secs())]
    Timeout(std::time::Duration),
    /// A sign-in link opened in another browser than the one that asked
    /// for it: it stays usable there.
    #[error(
        "this sign-in link was asked for in another browser: open it in the browser where you asked for it, or ask for a new link here"
    )]
    OtherBrowser,
    /// Something broke inside; details go to the log, not the caller.
    #[error("internal error {incident}: the change was not applied, try again")]
    Internal {
        /// A token to find the log line.
        incident: String,
    },
}

impl ApiError {
    /// A denial as the module decided it: 409 when the change does not
    /// apply to its target, 403 otherwise. (A `hidden` denial is the
    /// caller's to answer as a missing id: it knows which id.)
    pub fn refused(decision: gatehouse_policy::Decision, audit_id: Option<i64>) -> ApiError {
        if decision.outcome == gatehouse_policy::Outcome::Inapplicable {
            ApiError::Inapplicable {
                reasons: decision.reasons,
                audit_id,
            }
        } else {
            ApiError::Denied {
                reasons: decision.reasons,
                audit_id,
            }
        }
    }

    /// An internal error: logs `detail` with an incident token and returns
    /// an error that shows only the token.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        let incident = crate::token::random_hex(6);
        crate::logging::error(&format!("internal error {incident}: {detail}"));
        ApiError::Internal { incident }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) | ApiError::OtherBrowser => StatusCode::UNAUTHORIZED,
            ApiError::Csrf
            | ApiError::TokenScope(_)
            | ApiError::LoopbackOnly(_)
            | ApiError::Denied { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::Inapplicable { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Busy | ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Csrf => "csrf",
            ApiError::TokenScope(_) => "token_scope",
            ApiError::LoopbackOnly(_) => "loopback_only",
            ApiError::Denied { .. } => "denied",
            ApiError::Inapplicable { .. } => "inapplicable",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::PreconditionFailed(_) => "precondition_failed",
            ApiError::TooLarge(_) => "too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Busy => "busy",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Timeout(_) => "timeout",
            ApiError::OtherBrowser => "other_browser",
            ApiError::Internal { .. } => "internal",
        }
    }

    /// The error as the API shows it.
    pub fn detail(&self) -> gatehouse_api::ErrorDetail {
        match self {
            ApiError::Denied { reasons, audit_id }
            | ApiError::Inapplicable { reasons, audit_id } => gatehouse_api::ErrorDetail {
                code: self.code().to_owned(),
                message: reasons
                    .iter()
                    .map(|r| r.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                reasons: Some(crate::shapes::reasons(reasons)),
                audit_id: *audit_id,
            },
            _ => gatehouse_api::ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
                reasons: None,
                audit_id: None,
            },
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(gatehouse_api::ErrorBody {
            error: self.detail(),
        })
        .unwrap_or_else(|_| json!({"error": {"code": self.code(), "message": self.to_string()}}))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        if crate::store::is_retryable(&e) {
            return ApiError::Busy;
        }
        ApiError::internal(format!("store: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status(),
            axum::Json(gatehouse_api::ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response()
    }
}

/// The answer for an account that does not exist or that the module hides
/// from the caller (R1.stranger): the two must not be told apart.
pub fn not_found_account(account: &str) -> ApiError {
    ApiError::NotFound(format!("no account `{account}` that you can see"))
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;
