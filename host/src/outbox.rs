//! Emails the rules require, written to the outbox in the change's own
//! transaction (so a mail exists exactly when its change does) and delivered
//! by a worker over SMTP when one is configured. Without SMTP they stay
//! readable with `gatehouse outbox`.

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};
use sqlx::Row;

use crate::error::ApiError;
use crate::store::{Store, Tx};

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
    sqlx::query("INSERT INTO outbox (created_at, to_email, subject, body) VALUES (?, ?, ?, ?)")
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
    let rows = sqlx::query(
        "SELECT id, created_at, to_email, subject, body, sent_at, attempts, last_error FROM outbox ORDER BY id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(json!({
            "id": r.try_get::<i64, _>("id")?,
            "created_at": r.try_get::<i64, _>("created_at")?,
            "to": r.try_get::<String, _>("to_email")?,
            "subject": r.try_get::<String, _>("subject")?,
            "body": r.try_get::<String, _>("body")?,
            "sent_at": r.try_get::<Option<i64>, _>("sent_at")?,
            "attempts": r.try_get::<i64, _>("attempts")?,
            "last_error": r.try_get::<Option<String>, _>("last_error")?,
        }));
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
pub async fn deliver(store: &Store, smtp: &Smtp, now: i64) -> Result<usize, ApiError> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&smtp.url)
        .map_err(|e| ApiError::BadRequest(format!("SMTP URL: {e}")))?
        .build();
    let from: Mailbox = smtp
        .from
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("--mail-from: {e}")))?;
    let rows = sqlx::query(
        "SELECT id, to_email, subject, body FROM outbox WHERE sent_at IS NULL AND attempts < 5 ORDER BY id LIMIT 100",
    )
    .fetch_all(store.pool())
    .await?;
    let mut sent = 0;
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let to: String = r.try_get("to_email")?;
        let result = match to.parse::<Mailbox>() {
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
        };
        match result {
            Ok(()) => {
                sent += 1;
                sqlx::query("UPDATE outbox SET sent_at = ?, attempts = attempts + 1 WHERE id = ?")
                    .bind(now)
                    .bind(id)
                    .execute(store.pool())
                    .await?;
            }
            Err(e) => {
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                )
                .bind(e)
                .bind(id)
                .execute(store.pool())
                .await?;
            }
        }
    }
    Ok(sent)
}
