//! `gatehouse policy impact`: which recorded decisions a policy change
//! would flip.
//!
//! Why this works: every audit row keeps the exact envelope the module
//! decided, facts included (see [`crate::audit`]). Those bytes are handed
//! verbatim to the new policies (rows from before the envelope was kept
//! are replayed from their re-serialized question), so the report is exact
//! for every decision on record, not a sample or a guess. A flip is an
//! allowed decision that would be denied, a denied one that would be
//! allowed, or the same answer for different reasons (other policies, other
//! messages).
//!
//! Why only ids: the log spans every tenant, and a reason's message renders
//! the facts of its account (names, emails, what a member owns). The report
//! names each flip by audit id, time, action, account and the determining
//! policy ids, never by who or what it was about, and never with a message.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use gatehouse_policy::json::{self, Answer};
use gatehouse_policy::{Decision, Reason};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::store::Store;

/// How a decision changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flip {
    /// Allowed then, denied now.
    AllowToDeny,
    /// Denied then, allowed now.
    DenyToAllow,
    /// The same answer, other reasons.
    ReasonsChanged,
}

impl Flip {
    fn label(self) -> &'static str {
        match self {
            Flip::AllowToDeny => "allow → deny",
            Flip::DenyToAllow => "deny → allow",
            Flip::ReasonsChanged => "reasons changed",
        }
    }
}

/// One side of a flip: the answer and the ids of the policies that
/// determined it (no messages: they render facts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Side {
    /// Allowed?
    pub allowed: bool,
    /// The determining policies' `@id`s, in the decision's order, each once.
    pub policies: Vec<String>,
}

impl Side {
    fn of(allowed: bool, reasons: &[Reason]) -> Side {
        let mut policies: Vec<String> = Vec::with_capacity(reasons.len());
        for r in reasons {
            if !policies.contains(&r.policy) {
                policies.push(r.policy.clone());
            }
        }
        Side { allowed, policies }
    }
}

/// One recorded decision that would change.
#[derive(Debug, Clone, Serialize)]
pub struct Flipped {
    /// The audit row.
    pub audit_id: i64,
    /// When it was decided (unix seconds).
    pub at: i64,
    /// How many identical attempts the row stands for.
    pub repeats: i64,
    /// The action.
    pub action: String,
    /// The account it was in (none: a stranger's attempt, kept in the
    /// host's log).
    pub account: Option<String>,
    /// How it changes.
    pub kind: Flip,
    /// The policies that make the difference: those named on one side only
    /// (or on both, when only a message changed).
    pub rule: String,
    /// As recorded.
    pub before: Side,
    /// Under the new policies.
    pub after: Side,
}

/// A group of flips: one action, one rule, one kind.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The action.
    pub action: String,
    /// The policies that make the difference.
    pub rule: String,
    /// How they change.
    pub kind: Flip,
    /// Audit rows.
    pub decisions: usize,
    /// Attempts (repeats counted).
    pub attempts: i64,
}

/// A recorded decision that could not be replayed (its question no longer
/// fits the schema, say).
#[derive(Debug, Clone, Serialize)]
pub struct Unreplayable {
    /// The audit row.
    pub audit_id: i64,
    /// The action.
    pub action: String,
    /// The account it was in.
    pub account: Option<String>,
    /// Why: the module's error codes (their messages may quote the facts).
    pub error: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Only rows decided at or after this time (unix seconds).
    pub since: Option<i64>,
    /// Audit rows replayed.
    pub replayed: usize,
    /// Attempts they stand for (repeats counted).
    pub attempts: i64,
    /// Rows that flip, by count of kind.
    pub allow_to_deny: usize,
    /// …
    pub deny_to_allow: usize,
    /// …
    pub reasons_changed: usize,
    /// Grouped by action, rule and kind.
    pub groups: Vec<Group>,
    /// Every flipped row, oldest first.
    pub flips: Vec<Flipped>,
    /// Rows that could not be replayed.
    pub unreplayable: Vec<Unreplayable>,
}

fn key(reasons: &[Reason]) -> Vec<(&str, &str)> {
    let mut k: Vec<_> = reasons
        .iter()
        .map(|r| (r.policy.as_str(), r.message.as_str()))
        .collect();
    k.sort_unstable();
    k
}

/// Compares a recorded decision (allowed?, its reasons) with a new one.
/// Messages count (a reworded `@reason` is a change) but are not returned.
pub fn compare(allowed: bool, reasons: &[Reason], after: &Decision) -> Option<(Flip, String)> {
    let kind = match (allowed, after.allowed) {
        (true, false) => Flip::AllowToDeny,
        (false, true) => Flip::DenyToAllow,
        _ if key(reasons) != key(&after.reasons) => Flip::ReasonsChanged,
        _ => return None,
    };
    let ids = |rs: &[Reason]| {
        let mut v: Vec<String> = rs.iter().map(|r| r.policy.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let (old, new) = (ids(reasons), ids(&after.reasons));
    let mut differ: Vec<String> = old
        .iter()
        .filter(|p| !new.contains(p))
        .chain(new.iter().filter(|p| !old.contains(p)))
        .cloned()
        .collect();
    if differ.is_empty() {
        differ = new;
    }
    differ.sort();
    Some((kind, differ.join(", ")))
}

/// Progress on standard error, only on a terminal and only once the work
/// has taken more than a moment.
struct Progress {
    total: i64,
    start: Instant,
    last: Instant,
    shown: bool,
    tty: bool,
}

impl Progress {
    fn new(total: i64) -> Progress {
        let now = Instant::now();
        Progress {
            total,
            start: now,
            last: now,
            shown: false,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn tick(&mut self, done: usize) {
        if !self.tty || self.start.elapsed() < Duration::from_millis(500) {
            return;
        }
        if self.last.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let total = self.total.max(1) as usize;
        let width = 30;
        let filled = (done * width / total).min(width);
        eprint!(
            "\rreplaying [{}{}] {done}/{total}",
            "#".repeat(filled),
            " ".repeat(width - filled)
        );
    }

    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

/// Replays every audit row decided since `since` under `engine` (the new
/// policies).
pub async fn replay(
    store: &Store,
    engine: &gatehouse_policy::engine::Engine,
    since: Option<i64>,
) -> Result<Report, String> {
    use futures_util::TryStreamExt as _;
    let since_at = since.unwrap_or(i64::MIN);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit WHERE at >= $1")
        .bind(since_at)
        .fetch_one(store.pool())
        .await
        .map_err(|e| e.to_string())?;
    let mut rows = sqlx::query(
        "SELECT id, at, repeats, action, account_id, decision, reasons, envelope, request \
         FROM audit WHERE at >= $1 ORDER BY id",
    )
    .bind(since_at)
    .fetch(store.pool());
    let mut progress = Progress::new(total);
    let mut report = Report {
        since,
        replayed: 0,
        attempts: 0,
        allow_to_deny: 0,
        deny_to_allow: 0,
        reasons_changed: 0,
        groups: Vec::new(),
        flips: Vec::new(),
        unreplayable: Vec::new(),
    };
    // Keyed kind first: allow → deny, the riskiest, is listed first.
    let mut groups: BTreeMap<(Flip, String, String), (usize, i64)> = BTreeMap::new();
    while let Some(row) = rows.try_next().await.map_err(|e| e.to_string())? {
        let get = |c: &str| row.try_get::<String, _>(c).map_err(|e| e.to_string());
        let opt = |c: &str| {
            row.try_get::<Option<String>, _>(c)
                .map_err(|e| e.to_string())
        };
        let id: i64 = row.try_get("id").map_err(|e| e.to_string())?;
        let repeats: i64 = row.try_get("repeats").map_err(|e| e.to_string())?;
        report.replayed += 1;
        report.attempts += repeats;
        progress.tick(report.replayed);
        // A failed row was allowed and then failed to apply.
        let allowed = get("decision")? != "denied";
        let reasons: Vec<Reason> = serde_json::from_str(&get("reasons")?)
            .map_err(|e| format!("audit row {id}: reasons: {e}"))?;
        let action = get("action")?;
        let account = opt("account_id")?;
        let asked = match (opt("envelope")?, opt("request")?) {
            (Some(envelope), _) => ask(engine, envelope.as_bytes()),
            (None, Some(request)) => legacy_envelope(&request).and_then(|e| ask(engine, &e)),
            (None, None) => Err("the row keeps no question".to_owned()),
        };
        let after = match asked {
            Ok(d) => d,
            Err(error) => {
                report.unreplayable.push(Unreplayable {
                    audit_id: id,
                    action,
                    account,
                    error,
                });
                continue;
            }
        };
        let Some((kind, rule)) = compare(allowed, &reasons, &after) else {
            continue;
        };
        let g = groups
            .entry((kind, action.clone(), rule.clone()))
            .or_default();
        g.0 += 1;
        g.1 += repeats;
        match kind {
            Flip::AllowToDeny => report.allow_to_deny += 1,
            Flip::DenyToAllow => report.deny_to_allow += 1,
            Flip::ReasonsChanged => report.reasons_changed += 1,
        }
        report.flips.push(Flipped {
            audit_id: id,
            at: row.try_get("at").map_err(|e| e.to_string())?,
            repeats,
            action,
            account,
            kind,
            rule,
            before: Side::of(allowed, &reasons),
            after: Side::of(after.allowed, &after.reasons),
        });
    }
    progress.finish();
    report.groups = groups
        .into_iter()
        .map(|((kind, action, rule), (decisions, attempts))| Group {
            action,
            rule,
            kind,
            decisions,
            attempts,
        })
        .collect();
    Ok(report)
}

/// The envelope of a row written before the audit kept envelopes: its
/// `request` (a `Check` re-serialized as JSON) with `"op":"authorize"`.
fn legacy_envelope(request: &str) -> Result<Vec<u8>, String> {
    let mut envelope: serde_json::Map<String, Value> = serde_json::from_str(request)
        .map_err(|e| format!("the recorded question is not a JSON object ({e})"))?;
    envelope.insert("op".into(), Value::from("authorize"));
    serde_json::to_vec(&envelope).map_err(|e| e.to_string())
}

/// Hands `engine` a recorded envelope, as is, and reads its decision. An
/// error says only the module's error codes: its messages may quote facts.
fn ask(engine: &gatehouse_policy::engine::Engine, envelope: &[u8]) -> Result<Decision, String> {
    match serde_json::from_slice::<Answer>(&json::handle(Some(engine), envelope)) {
        Ok(Answer::Success {
            decision: Some(d), ..
        }) => Ok(d),
        Ok(Answer::Success { .. }) => Err("the module's answer holds no decision".to_owned()),
        Ok(Answer::Failure { errors }) => Err(format!(
            "the module refused it: {}",
            errors
                .iter()
                .map(|e| e.code.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(e) => Err(format!("the module's answer is not JSON ({e})")),
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for unix seconds.
pub fn utc(at: i64) -> String {
    let (days, secs) = (at.div_euclid(86_400), at.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Unix seconds for `--since`: `YYYY-MM-DD` (UTC midnight), a duration
/// back from `now` (`90m`, `24h`, `7d`), or unix seconds.
pub fn parse_since(text: &str, now: i64) -> Result<i64, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "`{text}` is not a time: write a date (2026-11-01), a duration back from now (90m, 24h, 7d) or unix seconds"
        )
    };
    if let Some((n, unit)) = t
        .char_indices()
        .last()
        .filter(|(_, c)| matches!(c, 'm' | 'h' | 'd'))
        .map(|(i, c)| (&t[..i], c))
    {
        let n: i64 = n.parse().map_err(|_| bad())?;
        let secs = match unit {
            'm' => 60,
            'h' => 3600,
            _ => 86_400,
        };
        return Ok(now - n * secs);
    }
    if let [y, m, d] = t.split('-').collect::<Vec<_>>()[..] {
        let (y, m, d): (i64, i64, i64) = (
            y.parse().map_err(|_| bad())?,
            m.parse().map_err(|_| bad())?,
            d.parse().map_err(|_| bad())?,
        );
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return Err(bad());
        }
        // days-from-civil.
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return Ok((era * 146_097 + doe - 719_468) * 86_400);
    }
    t.parse().map_err(|_| bad())
}

/// The report for people: a summary, then each group with its decisions.
pub fn render(report: &Report, dir: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let flips = report.flips.len();
    let _ = writeln!(
        out,
        "replayed {} recorded decisions ({} attempts){} under {dir}",
        report.replayed,
        report.attempts,
        report
            .since
            .map(|s| format!(" since {}", utc(s)))
            .unwrap_or_default()
    );
    if flips == 0 {
        let _ = writeln!(out, "no decision would change");
    } else {
        let _ = writeln!(
            out,
            "{flips} would change: {} allow → deny, {} deny → allow, {} reasons changed",
            report.allow_to_deny, report.deny_to_allow, report.reasons_changed
        );
    }
    for g in &report.groups {
        let _ = writeln!(
            out,
            "\n{} · {} · {}: {} decision{}{}",
            g.action,
            g.rule,
            g.kind.label(),
            g.decisions,
            if g.decisions == 1 { "" } else { "s" },
            if g.attempts as usize == g.decisions {
                String::new()
            } else {
                format!(" ({} attempts, repeats counted)", g.attempts)
            }
        );
        let rows: Vec<_> = report
            .flips
            .iter()
            .filter(|f| f.action == g.action && f.rule == g.rule && f.kind == g.kind)
            .collect();
        for f in rows.iter().take(10) {
            let side = |s: &Side| {
                format!(
                    "{} [{}]",
                    if s.allowed { "allowed" } else { "denied" },
                    s.policies.join(", ")
                )
            };
            let _ = writeln!(
                out,
                "  #{} {} in {}: was {}, now {}",
                f.audit_id,
                utc(f.at),
                f.account.as_deref().unwrap_or("(no account)"),
                side(&f.before),
                side(&f.after)
            );
        }
        if rows.len() > 10 {
            let _ = writeln!(out, "  … and {} more (--json lists all)", rows.len() - 10);
        }
    }
    for u in &report.unreplayable {
        let _ = writeln!(
            out,
            "\ncannot replay audit row #{} ({} in {}): {}",
            u.audit_id,
            u.action,
            u.account.as_deref().unwrap_or("(no account)"),
            u.error
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_767_225_600), "2026-01-01 00:00:00");
        assert_eq!(parse_since("2026-01-01", 0), Ok(1_767_225_600));
        assert_eq!(
            parse_since("2024-02-29", 0).map(utc),
            Ok("2024-02-29 00:00:00".into())
        );
        assert_eq!(parse_since("7d", 1_000_000), Ok(1_000_000 - 7 * 86_400));
        assert_eq!(parse_since("90m", 10_000), Ok(10_000 - 5400));
        assert_eq!(parse_since("1767225600", 0), Ok(1_767_225_600));
        assert!(parse_since("yesterday", 0).is_err());
        assert!(parse_since("2026-13-01", 0).is_err());
    }
}
