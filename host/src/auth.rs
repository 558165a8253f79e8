//! Sign-in and sessions.
//!
//! * Sign-in is by emailed link: the link's secret goes out through the
//!   outbox, only its hash is stored, and it works once within 15 minutes.
//! * A browser session is an HttpOnly, SameSite=Strict cookie; every
//!   state-changing call it makes must also carry the session's CSRF value in
//!   `X-CSRF-Token` (double submit, checked against the stored value).
//! * Servers use API tokens: `Authorization: Bearer ght_…`.
//! * Suspension and removal sign the member's sessions out of that account
//!   at once (a revocation row the change writes in its own transaction).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use serde_json::json;
use sqlx::Row;

use crate::Host;
use crate::error::ApiError;
use crate::outbox::{self, Mail};
use crate::store::Tx;
use crate::token;

/// The session cookie's name over plain http (a development host).
pub const COOKIE: &str = "gh_session";
/// The session cookie's name behind https: the `__Host-` prefix makes a
/// browser keep it only when it is `Secure`, for `Path=/` and without a
/// `Domain`, so a sibling subdomain cannot set or shadow it.
pub const SECURE_COOKIE: &str = "__Host-gh_session";

/// The session cookie's name on a host with `secure` cookies (see
/// [`crate::Settings::secure_cookies`]).
pub fn cookie_name(secure: bool) -> &'static str {
    if secure { SECURE_COOKIE } else { COOKIE }
}
/// Sign-in links last this long.
pub const LINK_SECONDS: i64 = 15 * 60;
/// Browser sessions last this long.
pub const SESSION_SECONDS: i64 = 30 * 24 * 3600;
/// API tokens made by the operator (`gatehouse token`) last this long; a
/// token minted over the API lives what its owner asked, 1 to 90 days
/// (`R15.token-lifetime` decides).
pub const TOKEN_SECONDS: i64 = 90 * 24 * 3600;

/// A new session's secrets, shown once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewSession {
    /// The session (device) id.
    pub id: String,
    /// The bearer secret (cookie value or API token).
    pub token: String,
    /// The CSRF value for cookie-authenticated changes.
    pub csrf: String,
    /// Whose.
    pub user: String,
}

/// Creates a session of `kind` (`browser` or `api`) for a user.
pub async fn create_session(
    host: &Host,
    user: &str,
    kind: &str,
    label: &str,
) -> Result<NewSession, ApiError> {
    let now = host.clock.now();
    let id = token::new_id("dev");
    let secret = token::new_secret(if kind == "api" { "ght" } else { "ghs" });
    let csrf = token::random_hex(16);
    let ttl = if kind == "api" {
        TOKEN_SECONDS
    } else {
        SESSION_SECONDS
    };
    sqlx::query(
        "INSERT INTO sessions (id, user_id, kind, label, token_hash, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(user)
    .bind(kind)
    .bind(label)
    .bind(token::hash(&secret))
    .bind(&csrf)
    .bind(now)
    .bind(now + ttl)
    .execute(host.store.pool())
    .await?;
    Ok(NewSession {
        id,
        token: secret,
        csrf,
        user: user.to_owned(),
    })
}

/// Sends a sign-in link when the address belongs to a user; says nothing
/// either way (no account enumeration).
pub async fn request_link(host: &Host, email: &str) -> Result<(), ApiError> {
    let now = host.clock.now();
    let mut tx = host.store.begin_write().await?;
    let user: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE email_lower = $1")
        .bind(email.trim().to_lowercase())
        .fetch_optional(&mut *tx)
        .await?;
    if user.is_some() {
        let secret = token::new_secret("ghl");
        sqlx::query(
            "INSERT INTO sign_in_links (token_hash, email_lower, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(token::hash(&secret))
        .bind(email.trim().to_lowercase())
        .bind(now + LINK_SECONDS)
        .execute(&mut *tx)
        .await?;
        outbox::enqueue(
            &mut tx,
            &Mail {
                to: email.trim().to_owned(),
                subject: "Your Gatehouse sign-in link".into(),
                body: format!(
                    "Sign in within 15 minutes: {}/#/sign-in/{secret}\n\
                     (API: POST /v1/auth/redeem {{\"token\": \"{secret}\"}})\n\
                     If you did not ask for this, ignore this mail.",
                    host.settings.public_url
                ),
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Redeems a sign-in link once; returns a new browser session.
pub async fn redeem_link(host: &Host, secret: &str, label: &str) -> Result<NewSession, ApiError> {
    let now = host.clock.now();
    let mut tx = host.store.begin_write().await?;
    let row = sqlx::query(
        "SELECT email_lower, expires_at, used_at FROM sign_in_links WHERE token_hash = $1",
    )
    .bind(token::hash(secret))
    .fetch_optional(&mut *tx)
    .await?;
    let bad = || {
        ApiError::Unauthenticated(
            "this sign-in link is unknown, used or expired: ask for a new one".into(),
        )
    };
    let row = row.ok_or_else(bad)?;
    let expires_at: i64 = row.try_get("expires_at")?;
    let used_at: Option<i64> = row.try_get("used_at")?;
    if used_at.is_some() || expires_at <= now {
        return Err(bad());
    }
    // Used once also when two hosts redeem it at the same instant: the
    // second UPDATE waits for the first and then matches no row.
    let claimed = sqlx::query(
        "UPDATE sign_in_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
    )
    .bind(now)
    .bind(token::hash(secret))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed != 1 {
        return Err(bad());
    }
    let email: String = row.try_get("email_lower")?;
    let user: String = sqlx::query_scalar("SELECT id FROM users WHERE email_lower = $1")
        .bind(&email)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(bad)?;
    tx.commit().await?;
    create_session(host, &user, "browser", label).await
}

/// What an API token may be used for (R15); a browser session and an
/// operator's token are not narrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenScope {
    /// The accounts it may act on or read.
    pub accounts: Vec<String>,
    /// Only reads (`GET`, `HEAD`).
    pub read_only: bool,
}

impl TokenScope {
    /// Refuses `account` when the scope does not name it. Not a "who may"
    /// question: the credential itself is limited, as an expired one is.
    pub fn check_account(&self, account: &str) -> Result<(), ApiError> {
        if self.accounts.iter().any(|a| a == account) {
            return Ok(());
        }
        Err(ApiError::TokenScope(format!(
            "this API token is scoped to {}, not `{account}`",
            self.accounts
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// Stores a new API token with its scope and expiry; returns it (shown once).
pub(crate) async fn insert_token(
    tx: &mut Tx,
    user: &str,
    label: &str,
    scope: &TokenScope,
    now: i64,
    expires_at: i64,
) -> Result<NewSession, ApiError> {
    let id = token::new_id("dev");
    let secret = token::new_secret("ght");
    let csrf = token::random_hex(16);
    sqlx::query(
        "INSERT INTO sessions (id, user_id, kind, label, token_hash, csrf, created_at, expires_at, scope_accounts, access) VALUES ($1, $2, 'api', $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(user)
    .bind(label)
    .bind(token::hash(&secret))
    .bind(&csrf)
    .bind(now)
    .bind(expires_at)
    .bind(serde_json::to_string(&scope.accounts).map_err(ApiError::internal)?)
    .bind(if scope.read_only { "read" } else { "write" })
    .execute(&mut **tx)
    .await?;
    Ok(NewSession {
        id,
        token: secret,
        csrf,
        user: user.to_owned(),
    })
}

/// The signed-in caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// User id.
    pub user: String,
    /// Session (device) id.
    pub session: String,
    /// Came with a cookie (CSRF applies) rather than a bearer token.
    pub cookie: bool,
    /// When the credential was signed in (a token: minted), unix seconds.
    pub signed_in_at: i64,
    /// An API token's scope, when it has one.
    pub scope: Option<TokenScope>,
    /// The session's CSRF value, for a cookie session (a page that was
    /// reloaded reads it from `GET /v1/me`; other origins cannot read it).
    pub csrf: Option<String>,
}

fn cookie_value(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Constant-time comparison of two secrets.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl FromRequestParts<Host> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, host: &Host) -> Result<Principal, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        // Only the name this host sets is read: behind https a cookie
        // without the `__Host-` prefix may have been planted by a sibling
        // subdomain.
        let name = cookie_name(host.settings.secure_cookies);
        let (secret, cookie) = match (bearer, cookie_value(parts, name)) {
            (Some(b), _) => (b, false),
            (None, Some(c)) => (c, true),
            (None, None) => {
                return Err(ApiError::Unauthenticated(
                    "sign in first: POST /v1/auth/sign-in, or send Authorization: Bearer <API token>".into(),
                ));
            }
        };
        let row =
            sqlx::query("SELECT id, user_id, csrf, created_at, expires_at, scope_accounts, access FROM sessions WHERE token_hash = $1")
                .bind(token::hash(&secret))
                .fetch_optional(host.store.pool())
                .await?
                .ok_or_else(|| {
                    ApiError::Unauthenticated(
                        "this session or token is not valid: sign in again".into(),
                    )
                })?;
        let expires_at: i64 = row.try_get("expires_at")?;
        if expires_at <= host.clock.now() {
            return Err(ApiError::Unauthenticated(
                "this session expired: sign in again".into(),
            ));
        }
        let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let csrf: String = row.try_get("csrf")?;
        if cookie && unsafe_method {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !same(sent, &csrf) {
                return Err(ApiError::Csrf);
            }
        }
        let scope_accounts: Option<String> = row.try_get("scope_accounts")?;
        let access: Option<String> = row.try_get("access")?;
        let scope = match scope_accounts {
            Some(text) => Some(TokenScope {
                accounts: serde_json::from_str(&text).map_err(ApiError::internal)?,
                read_only: access.as_deref() == Some("read"),
            }),
            None => None,
        };
        if let Some(scope) = &scope {
            if scope.read_only && unsafe_method {
                return Err(ApiError::TokenScope(
                    "this API token may only read: mint a write token to make changes".into(),
                ));
            }
            if let Some(account) = path_account(parts.uri.path()) {
                scope.check_account(account)?;
            }
        }
        Ok(Principal {
            user: row.try_get("user_id")?,
            session: row.try_get("id")?,
            cookie,
            signed_in_at: row.try_get("created_at")?,
            scope,
            csrf: cookie.then_some(csrf),
        })
    }
}

/// The account a `/v1/accounts/{account}/…` path names.
fn path_account(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/accounts/")?
        .split('/')
        .next()
        .filter(|a| !a.is_empty())
}

/// Refuses a session that was signed out of `account`.
pub(crate) async fn check_not_signed_out(
    tx: &mut Tx,
    session: &str,
    account: &str,
) -> Result<(), ApiError> {
    let gone =
        sqlx::query("SELECT 1 FROM session_revocations WHERE session_id = $1 AND account_id = $2")
            .bind(session)
            .bind(account)
            .fetch_optional(&mut **tx)
            .await?;
    if gone.is_some() {
        return Err(ApiError::Unauthenticated(format!(
            "you were signed out of `{account}`: sign in again"
        )));
    }
    Ok(())
}

/// Refuses an API token whose scope does not name `account` (see
/// [`TokenScope`]); sessions and unscoped tokens pass.
pub(crate) async fn check_token_scope(
    tx: &mut Tx,
    session: &str,
    account: &str,
) -> Result<(), ApiError> {
    let scope: Option<String> =
        sqlx::query_scalar("SELECT scope_accounts FROM sessions WHERE id = $1")
            .bind(session)
            .fetch_optional(&mut **tx)
            .await?
            .flatten();
    if let Some(text) = scope {
        TokenScope {
            accounts: serde_json::from_str(&text).map_err(ApiError::internal)?,
            read_only: false,
        }
        .check_account(account)?;
    }
    Ok(())
}

/// Signs every session of `user` out of `account`, in the change's transaction.
pub(crate) async fn sign_out_of_account(
    tx: &mut Tx,
    user: &str,
    account: &str,
    now: i64,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO session_revocations (session_id, account_id, at) SELECT id, $1, $2 FROM sessions WHERE user_id = $3 \
         ON CONFLICT (session_id, account_id) DO NOTHING",
    )
    .bind(account)
    .bind(now)
    .bind(user)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A user who (re)joins an account by accepting an invitation may use it
/// again from their sessions.
pub(crate) async fn restore_account(
    tx: &mut Tx,
    user: &str,
    account: &str,
) -> Result<(), ApiError> {
    sqlx::query(
        "DELETE FROM session_revocations WHERE account_id = $1 AND session_id IN (SELECT id FROM sessions WHERE user_id = $2)",
    )
    .bind(account)
    .bind(user)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The `Set-Cookie` value for a new browser session: `__Host-gh_session=…;
/// Secure` when `secure`, `gh_session=…` otherwise.
pub fn session_cookie(secret: &str, secure: bool) -> String {
    format!(
        "{}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_SECONDS}{}",
        cookie_name(secure),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that clears the session cookie (sign out).
pub fn cleared_cookie(secure: bool) -> String {
    format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        cookie_name(secure),
        if secure { "; Secure" } else { "" }
    )
}

/// Deletes the current session (sign out here).
pub async fn sign_out(host: &Host, session: &str) -> Result<serde_json::Value, ApiError> {
    let mut tx = host.store.begin_write().await?;
    sqlx::query("DELETE FROM session_revocations WHERE session_id = $1")
        .bind(session)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(session)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(json!({"signed_out": true}))
}
