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

/// The cookie that binds a sign-in link to the browser that asked for it,
/// over plain http; see [`binding_cookie_name`].
pub const BINDING_COOKIE: &str = "gh_sign_in";
/// The binding cookie's name behind https (`__Host-`, as the session's).
pub const SECURE_BINDING_COOKIE: &str = "__Host-gh_sign_in";
/// At most one sign-in mail per address in this many seconds, across hosts.
pub const MAIL_INTERVAL_SECONDS: i64 = 60;
/// Sign-in requests waiting for the mailer at most; more are dropped (and
/// logged): the answer to the asker is the same either way.
const LINK_QUEUE: usize = 1024;

/// The binding cookie's name on a host with `secure` cookies.
pub fn binding_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_BINDING_COOKIE
    } else {
        BINDING_COOKIE
    }
}

/// The `Set-Cookie` value of a browser's sign-in binding: it lives as long
/// as a link, so every link asked for from this browser in that time works
/// here.
pub fn binding_cookie(value: &str, secure: bool) -> String {
    set_cookie(binding_cookie_name(secure), value, LINK_SECONDS, secure)
}

/// The `Set-Cookie` value that clears the binding (after a sign-in).
pub fn cleared_binding_cookie(secure: bool) -> String {
    set_cookie(binding_cookie_name(secure), "", 0, secure)
}

/// The binding a request carries, if it is one this host could have made
/// (32 lowercase hex digits).
pub fn binding_of(headers: &axum::http::HeaderMap, secure: bool) -> Option<String> {
    cookie_in(headers, binding_cookie_name(secure)).filter(|v| {
        v.len() == 32
            && v.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A browser's sign-in binding: the one it has, or a new one.
pub fn binding_for(headers: &axum::http::HeaderMap, secure: bool) -> String {
    binding_of(headers, secure).unwrap_or_else(|| token::random_hex(16))
}

/// A sign-in request for the mailer.
#[derive(Debug)]
struct LinkRequest {
    email: String,
    binding: String,
}

/// The sign-in requests waiting for this host's mailer, in arrival order.
///
/// Asking for a link answers at once, the same for every address, and the
/// lookup and the mail happen here, one request after another: a known
/// and an unknown address cannot be told apart by the time of the answer,
/// and a flood of requests for unknown addresses only reads (never takes
/// the write lock).
#[derive(Debug, Default)]
pub struct LinkQueue {
    sender: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<LinkRequest>>>,
}

impl LinkQueue {
    fn push(&self, host: &Host, request: LinkRequest) {
        let Ok(mut sender) = self.sender.lock() else {
            crate::logging::error("the sign-in mailer's queue is poisoned; a link was not sent");
            return;
        };
        let request = match sender.as_ref() {
            Some(s) => match s.try_send(request) {
                Ok(()) => return,
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                    crate::logging::warn(&format!(
                        "{LINK_QUEUE} sign-in requests are waiting; one was dropped"
                    ));
                    return;
                }
                // Its runtime is gone (a test's): start another.
                Err(tokio::sync::mpsc::error::TrySendError::Closed(r)) => r,
            },
            None => request,
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(LINK_QUEUE);
        let mailer = host.clone();
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                if let Err(e) = send_link(&mailer, &r).await {
                    crate::logging::warn(&format!("a sign-in link was not sent: {e}"));
                }
            }
        });
        if tx.try_send(request).is_ok() {
            *sender = Some(tx);
        }
    }
}

/// Asks for a sign-in link for `email`, bound to the asking browser's
/// `binding` ([`binding_for`]). Answers nothing: a link goes out later,
/// when the address belongs to a user and no link was mailed to it in the
/// last minute.
pub fn request_link(host: &Host, email: &str, binding: &str) {
    host.links.push(
        host,
        LinkRequest {
            email: email.trim().to_owned(),
            binding: binding.to_owned(),
        },
    );
}

/// The mailer's part of [`request_link`].
async fn send_link(host: &Host, request: &LinkRequest) -> Result<(), ApiError> {
    let now = host.clock.now();
    let email_lower = request.email.to_lowercase();
    // Reads first: an unknown address never takes the write lock.
    let user = sqlx::query("SELECT id, email FROM users WHERE email_lower = $1")
        .bind(&email_lower)
        .fetch_optional(host.store.pool())
        .await?;
    let Some(user) = user else {
        return Ok(());
    };
    // The address the user gave, not as typed now (case folding matched it).
    let stored: String = user.try_get("email")?;
    let mut tx = host.store.begin_write().await?;
    if host.settings.rate_limits.is_some() {
        let recent =
            sqlx::query("SELECT 1 FROM sign_in_links WHERE email_lower = $1 AND expires_at > $2")
                .bind(&email_lower)
                .bind(now + LINK_SECONDS - MAIL_INTERVAL_SECONDS)
                .fetch_optional(&mut *tx)
                .await?;
        if recent.is_some() {
            return Ok(());
        }
    }
    let secret = token::new_secret("ghl");
    sqlx::query(
        "INSERT INTO sign_in_links (token_hash, email_lower, expires_at, browser_hash) VALUES ($1, $2, $3, $4)",
    )
    .bind(token::hash(&secret))
    .bind(&email_lower)
    .bind(now + LINK_SECONDS)
    .bind(token::hash(&request.binding))
    .execute(&mut *tx)
    .await?;
    outbox::enqueue(
        &mut tx,
        &Mail {
            to: stored,
            subject: "Your Gatehouse sign-in link".into(),
            body: format!(
                "Sign in within 15 minutes, in the browser where you asked for this link: {}/#/sign-in/{secret}\n\
                 (API: POST /v1/auth/redeem {{\"token\": \"{secret}\"}} with the {} cookie the sign-in request set)\n\
                 If you did not ask for this, ignore this mail.",
                host.settings.public_url,
                binding_cookie_name(host.settings.secure_cookies),
            ),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A sign-in link's address, when the link is valid and `binding` is the
/// browser's that asked for it: what the confirm step shows. Reads only.
pub async fn link_email(
    host: &Host,
    secret: &str,
    binding: Option<&str>,
) -> Result<String, ApiError> {
    let now = host.clock.now();
    let row = sqlx::query(
        "SELECT u.email, l.expires_at, l.used_at, l.browser_hash FROM sign_in_links l JOIN users u ON u.email_lower = l.email_lower WHERE l.token_hash = $1",
    )
    .bind(token::hash(secret))
    .fetch_optional(host.store.pool())
    .await?
    .ok_or_else(bad_link)?;
    let expires_at: i64 = row.try_get("expires_at")?;
    let used_at: Option<i64> = row.try_get("used_at")?;
    if used_at.is_some() || expires_at <= now {
        return Err(bad_link());
    }
    let bound: Option<String> = row.try_get("browser_hash")?;
    match (bound, binding) {
        (Some(bound), Some(binding)) if same(&bound, &token::hash(binding)) => {}
        _ => return Err(ApiError::OtherBrowser),
    }
    Ok(row.try_get("email")?)
}

fn bad_link() -> ApiError {
    ApiError::Unauthenticated(
        "this sign-in link is unknown, used or expired: ask for a new one".into(),
    )
}

/// Redeems a sign-in link once, in the browser that asked for it
/// (`binding`); returns a new browser session. A link opened in another
/// browser stays unused.
pub async fn redeem_link(
    host: &Host,
    secret: &str,
    binding: Option<&str>,
    label: &str,
) -> Result<NewSession, ApiError> {
    // Checked on a read first: a wrong or foreign link never takes the
    // write lock.
    link_email(host, secret, binding).await?;
    let now = host.clock.now();
    let mut tx = host.store.begin_write().await?;
    // Used once also when two hosts redeem it at the same instant: the
    // second UPDATE waits for the first and then matches no row.
    let claimed = sqlx::query(
        "UPDATE sign_in_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(token::hash(secret))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed != 1 {
        return Err(bad_link());
    }
    let user: String = sqlx::query_scalar(
        "SELECT u.id FROM users u JOIN sign_in_links l ON u.email_lower = l.email_lower WHERE l.token_hash = $1",
    )
    .bind(token::hash(secret))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(bad_link)?;
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
    cookie_in(&parts.headers, name)
}

fn cookie_in(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
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
    set_cookie(cookie_name(secure), secret, SESSION_SECONDS, secure)
}

/// The `Set-Cookie` value that clears the session cookie (sign out).
pub fn cleared_cookie(secure: bool) -> String {
    set_cookie(cookie_name(secure), "", 0, secure)
}

/// A `Set-Cookie` value as every cookie of this host is set: HttpOnly,
/// SameSite=Strict, for the whole host, `Secure` behind https; `max_age` 0
/// clears it.
fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{}",
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
