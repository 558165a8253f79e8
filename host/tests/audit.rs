//! The audit log keeps the exact envelope the module decided: handed back
//! to the module (wasmtime), the stored bytes get the recorded decision
//! byte for byte, and they are the bytes the gate sends for that question.
//! Rows written before envelopes were kept (only `request`) survive the
//! migration and are still replayed by `impact`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::Method;
use common::{T, TempDir, editor, root};
use gatehouse_host::Store;
use gatehouse_policy::json::Answer;
use gatehouse_policy::{Check, Decision};
use serde_json::{Value, json};

/// Allowed, denied (twice: one aggregated row), a stranger's attempt (the
/// host's log), a bulk job's items and a denied publish from the editor.
async fn history(t: &T) {
    let (s, b) = t
        .call(
            Some("olivia"),
            Method::PUT,
            "/v1/accounts/agency/members/sam/nickname",
            Some(json!({"nickname": "Sammy"})),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let (s, b) = t
        .post("ada", "/v1/accounts/agency/members/bea/suspend", json!({}))
        .await;
    assert!(s.is_success(), "{b}");
    for _ in 0..2 {
        let (s, b) = t
            .call(
                Some("olivia"),
                Method::DELETE,
                "/v1/accounts/agency/members/rita",
                None,
            )
            .await;
        assert_eq!(s.as_u16(), 403, "{b}");
    }
    let (s, _) = t
        .post(
            "stranger",
            "/v1/accounts/agency/members/bea/suspend",
            json!({}),
        )
        .await;
    assert_eq!(s.as_u16(), 404);
    let (s, b) = t
        .post(
            "olivia",
            "/v1/accounts/agency/bulk-removals",
            json!({"user": "sam"}),
        )
        .await;
    assert_eq!(s.as_u16(), 202, "{b}");
    t.host.run_jobs().await.unwrap();
    let (_, live) = t.get("olivia", "/v1/policies").await;
    let ada = t.browser("ada").await;
    let (s, b) = t
        .call_browser(
            &ada,
            Method::POST,
            "/v1/policies/publish",
            Some(json!({"policies": live["policies"], "message": "mine"})),
        )
        .await;
    assert_eq!(s.as_u16(), 403, "{b}");
}

/// The module's decision for `envelope`, asked of a fresh wasmtime runner.
fn ask(runner: &gatehouse_runner::Runner, envelope: &str) -> (String, Decision) {
    let out = runner.call(envelope.as_bytes()).unwrap();
    match serde_json::from_slice::<Answer>(&out).unwrap() {
        Answer::Success {
            policy_hash,
            decision: Some(d),
            ..
        } => (policy_hash, d),
        other => panic!("the module did not decide {envelope}: {other:?}"),
    }
}

#[tokio::test]
async fn the_audit_log_keeps_the_bytes_the_module_decided() {
    let t = editor().await;
    history(&t).await;
    let rows = t.rows("SELECT * FROM audit ORDER BY id").await;
    assert!(rows.len() >= 7, "{rows:#?}");
    assert!(
        rows.iter().any(|r| r["account_id"].is_null()),
        "no stranger's attempt: {rows:#?}"
    );
    assert!(rows.iter().any(|r| r["repeats"] == 2), "{rows:#?}");
    assert!(rows.iter().any(|r| r["action"] == "publish_policies"));
    assert!(rows.iter().any(|r| !r["job_id"].is_null()));

    let runner = gatehouse_runner::Runner::from_file(&common::module_path()).unwrap();
    for row in &rows {
        let id = &row["id"];
        let envelope = row["envelope"]
            .as_str()
            .unwrap_or_else(|| panic!("audit row {id} keeps no envelope: {row}"));
        assert!(row["request"].is_null(), "row {id}: {row}");
        assert!(
            envelope.starts_with(r#"{"op":"authorize","#),
            "row {id}: {envelope}"
        );

        // Handed back as is, the stored bytes get the recorded decision,
        // its reasons byte for byte, under the recorded policy hash.
        let (policy_hash, decision) = ask(&runner, envelope);
        assert_eq!(row["policy_hash"], policy_hash.as_str(), "row {id}");
        let word = if decision.allowed {
            "allowed"
        } else {
            "denied"
        };
        if row["decision"] != "failed" {
            assert_eq!(row["decision"], word, "row {id}");
            assert_eq!(
                row["reasons"].as_str().unwrap(),
                serde_json::to_string(&decision.reasons).unwrap(),
                "row {id}: the reasons differ"
            );
        }

        // They are the bytes the gate sends for that question.
        let mut body: serde_json::Map<String, Value> = serde_json::from_str(envelope).unwrap();
        assert_eq!(body.remove("op"), Some(json!("authorize")));
        let check: Check = serde_json::from_value(Value::Object(body)).unwrap();
        let sent = t.host.gate.authorize(&check).unwrap();
        assert_eq!(sent.envelope, envelope, "row {id}");
    }
}

/// A store migrated only up to 0004: the audit table as it was, with rows
/// that keep only `request`.
async fn store_before_envelopes(dir: &TempDir) -> std::path::PathBuf {
    let migrations = dir.0.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    for entry in std::fs::read_dir(root().join("host/migrations/sqlite")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.as_str() < "0005" {
            std::fs::copy(entry.path(), migrations.join(&name)).unwrap();
        }
    }
    let db = dir.0.join("old.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate::Migrator::new(migrations.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    pool.close().await;
    db
}

#[tokio::test]
async fn rows_from_before_envelopes_survive_the_migration_and_replay() {
    // A real decision (ada suspends bea), recorded as the log kept it
    // before 0005: the question re-serialized as JSON, without `op`.
    let t = common::acme().await;
    let (s, b) = t
        .post("ada", "/v1/accounts/agency/members/bea/suspend", json!({}))
        .await;
    assert!(s.is_success(), "{b}");
    let row = t.last_audit().await;
    let mut body: serde_json::Map<String, Value> =
        serde_json::from_str(row["envelope"].as_str().unwrap()).unwrap();
    body.remove("op");
    let check: Check = serde_json::from_value(Value::Object(body)).unwrap();
    let request = serde_json::to_value(&check).unwrap().to_string();

    let dir = TempDir::new();
    let db = store_before_envelopes(&dir).await;
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::query(
            "INSERT INTO audit (id, at, last_at, repeats, actor, action, account_id, target, decision, outcome, reasons, \
             policy_hash, module_hash, before_state, after_state, source, request, job_id) \
             VALUES (41, $1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, $12, $13, NULL)",
        )
        .bind(row["at"].as_i64())
        .bind(row["last_at"].as_i64())
        .bind(row["actor"].as_str())
        .bind(row["action"].as_str())
        .bind(row["account_id"].as_str())
        .bind(row["target"].as_str())
        .bind(row["decision"].as_str())
        .bind(row["outcome"].as_str())
        .bind(row["reasons"].as_str())
        .bind(row["policy_hash"].as_str())
        .bind(row["module_hash"].as_str())
        .bind(row["source"].as_str())
        .bind(&request)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }

    // Opening the store migrates it; the old row is kept as it was.
    let store = Store::open(&db).await.unwrap();
    let (kept, envelope): (String, Option<String>) =
        sqlx::query_as("SELECT request, envelope FROM audit WHERE id = 41")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(kept, request);
    assert_eq!(envelope, None);
    // A row keeps exactly one of the two.
    let neither = sqlx::query(
        "INSERT INTO audit (at, last_at, actor, action, target, decision, outcome, reasons, policy_hash, module_hash, source) \
         VALUES (0, 0, 'user:x', 'suspend', 't', 'denied', 'forbidden', '[]', 'p', 'm', 'api')",
    )
    .execute(store.pool())
    .await;
    assert!(neither.is_err(), "a row without a question was stored");

    // Replayed from `request`: unchanged under the policies it was decided
    // under, allow → deny when admins may no longer suspend.
    let engine = |dir: &std::path::Path| {
        let bundle = gatehouse_bake::read_policies(dir).unwrap();
        gatehouse_policy::Engine::from_bundle_bytes(&bundle.to_bytes()).unwrap()
    };
    let same = gatehouse_host::impact::replay(&store, &engine(&root().join("policies")), None)
        .await
        .unwrap();
    assert_eq!(same.replayed, 1);
    assert!(same.unreplayable.is_empty(), "{:?}", same.unreplayable);
    assert!(same.flips.is_empty(), "{:?}", same.flips);
    let stricter = common::policies_with("audit-legacy", "r07_suspend.cedar", |t| {
        t.replacen(
            "when { principal in resource.account.admins };",
            "when { principal in resource.account.owners };",
            1,
        )
    });
    let report = gatehouse_host::impact::replay(&store, &engine(&stricter), None)
        .await
        .unwrap();
    assert!(report.unreplayable.is_empty(), "{:?}", report.unreplayable);
    assert_eq!(report.flips.len(), 1, "{:?}", report.flips);
    let flip = &report.flips[0];
    assert_eq!(flip.audit_id, 41);
    assert_eq!(flip.kind, gatehouse_host::impact::Flip::AllowToDeny);
    assert_eq!(flip.account.as_deref(), Some("agency"));
    assert_eq!(flip.after.policies, ["R7.suspend"]);
}
