//! Emails the rules require, written to the outbox in the change's own
//! transaction (so a mail exists exactly when its change does) and delivered
//! by a worker over SMTP when one is configured. Without SMTP they stay
//! readable with `gatehouse outbox`.

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;
use sqlx::Row;

use crate::error::ApiError;
use crate::store::{Dialect, Store, Tx};

/// One email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Queues a mail in the current transaction.
pub async fn enqueue(tx: &mut Tx, mail: &Mail, now: i64) -> Result<(), ApiError> {
    sqlx::query("INSERT INTO outbox (created_at, to_email, subject, body) VALUES ($1, $2, $3, $4)")
        .bind(now)
        .bind(&mail.to)
        .bind(&mail.subject)
        .bind(&mail.body)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The newest `limit` mails, newest first.
pub async fn list(store: &Store, limit: i64) -> Result<Vec<Value>, ApiError> {
    mails(store, limit, None)
        .await?
        .iter()
        .map(|m| serde_json::to_value(m).map_err(ApiError::internal))
        .collect()
}

/// The newest `limit` mails (to `to` only, case-insensitively, when
/// given), newest first, as the API shows them.
pub async fn mails(
    store: &Store,
    limit: i64,
    to: Option<&str>,
) -> Result<Vec<gatehouse_api::Mail>, ApiError> {
    let rows = match to {
        None => sqlx::query(
            "SELECT id, created_at, to_email, subject, body, sent_at, attempts, last_error FROM outbox ORDER BY id DESC LIMIT $1",
        )
        .bind(limit),
        Some(to) => sqlx::query(
            "SELECT id, created_at, to_email, subject, body, sent_at, attempts, last_error FROM outbox WHERE LOWER(to_email) = $2 ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .bind(to.trim().to_lowercase()),
    }
    .fetch_all(store.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(gatehouse_api::Mail {
            id: r.try_get::<i64, _>("id")?,
            created_at: r.try_get::<i64, _>("created_at")?,
            to: r.try_get::<String, _>("to_email")?,
            subject: r.try_get::<String, _>("subject")?,
            body: r.try_get::<String, _>("body")?,
            sent_at: r.try_get::<Option<i64>, _>("sent_at")?,
            attempts: r.try_get::<i64, _>("attempts")?,
            last_error: r.try_get::<Option<String>, _>("last_error")?,
        });
    }
    Ok(out)
}

/// Where to deliver mail.
#[derive(Debug, Clone)]
pub struct Smtp {
    /// An SMTP URL as lettre reads it, e.g. `smtps://user:pass@smtp.example.com`.
    pub url: String,
    /// The From address.
    pub from: String,
}

/// Sends every unsent mail once (at most 5 attempts each); returns how many went out.
///
/// PostgreSQL, where several hosts deliver from one outbox: each mail is
/// claimed in a transaction of its own with `FOR UPDATE SKIP LOCKED` and
/// marked sent before that transaction commits, so two hosts never send
/// the same mail (a host that dies mid-send releases its claim, and the
/// mail goes out again later: at least once, never twice in a row). SQLite
/// has one host per file and reads the batch without claiming it.
pub async fn deliver(store: &Store, smtp: &Smtp, now: i64) -> Result<usize, ApiError> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&smtp.url)
        .map_err(|e| ApiError::BadRequest(format!("SMTP URL: {e}")))?
        .build();
    let from: Mailbox = smtp
        .from
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("--mail-from: {e}")))?;
    if store.dialect() == Dialect::Postgres {
        return deliver_claimed(store, &transport, &from, now).await;
    }
    let rows = sqlx::query(
        "SELECT id, to_email, subject, body FROM outbox WHERE sent_at IS NULL AND attempts < 5 ORDER BY id LIMIT 100",
    )
    .fetch_all(store.pool())
    .await?;
    let mut sent = 0;
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let result = send(&transport, &from, &r).await?;
        if mark(store.pool(), id, result, now).await? {
            sent += 1;
        }
    }
    Ok(sent)
}

/// [`deliver`] on PostgreSQL: one claimed mail at a time, in id order, each
/// tried once per pass.
async fn deliver_claimed(
    store: &Store,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    now: i64,
) -> Result<usize, ApiError> {
    let mut sent = 0;
    let mut after = 0i64;
    for _ in 0..100 {
        let mut tx = store.begin_write().await?;
        let Some(r) = sqlx::query(
            "SELECT id, to_email, subject, body FROM outbox WHERE sent_at IS NULL AND attempts < 5 AND id > $1 \
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .bind(after)
        .fetch_optional(&mut *tx)
        .await?
        else {
            break;
        };
        let id: i64 = r.try_get("id")?;
        after = id;
        let result = send(transport, from, &r).await?;
        if mark(&mut *tx, id, result, now).await? {
            sent += 1;
        }
        tx.commit().await?;
    }
    Ok(sent)
}

/// Sends one outbox row: `Err` holds why it did not go out.
async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    r: &crate::store::StoreRow,
) -> Result<Result<(), String>, ApiError> {
    let to: String = r.try_get("to_email")?;
    Ok(match to.parse::<Mailbox>() {
        Ok(to) => match Message::builder()
            .from(from.clone())
            .to(to)
            .subject(r.try_get::<String, _>("subject")?)
            .body(r.try_get::<String, _>("body")?)
        {
            Ok(message) => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    })
}

/// Records an attempt: sent (returns true) or the error.
async fn mark<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(
    db: E,
    id: i64,
    result: Result<(), String>,
    now: i64,
) -> Result<bool, ApiError> {
    match result {
        Ok(()) => {
            sqlx::query("UPDATE outbox SET sent_at = $1, attempts = attempts + 1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(db)
                .await?;
            Ok(true)
        }
        Err(e) => {
            sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $1 WHERE id = $2")
                .bind(e)
                .bind(id)
                .execute(db)
                .await?;
            Ok(false)
        }
    }
}
