//! Opens a fresh store for one test case on SQLite (temp file) or Postgres (own database),
//! runs the case under a timeout, and cleans up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use gantry_store::{LogCap, SecretKey, Store, StoreOptions, connect};
use sqlx::Connection as _;

/// Longest a case may take before it counts as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// A conformance case: one behaviour, checked against whatever store it is given.
pub type Case = fn(Arc<Harness>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// A store under test plus raw access to its database.
pub struct Harness {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The database URL.
    pub url: String,
    key: SecretKey,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn open(url: String, dir: Option<tempfile::TempDir>) -> Harness {
        let key = SecretKey::generate().expect("random key");
        let store = connect(&url, StoreOptions::new(key.clone()))
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        Harness {
            store,
            url,
            key,
            _dir: dir,
        }
    }

    /// A second store on the same database with other options.
    pub async fn reopen(&self, log_cap: LogCap, key: Option<SecretKey>) -> Arc<dyn Store> {
        let mut options = StoreOptions::new(key.unwrap_or_else(|| self.key.clone()));
        options.log_cap = log_cap;
        connect(&self.url, options).await.expect("reopen")
    }

    /// Every value of one TEXT column, read past the store.
    pub async fn raw_text(&self, sql: &'static str) -> Vec<String> {
        if self.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap();
            rows.into_iter().map(|r| r.0).collect()
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap();
            rows.into_iter().map(|r| r.0).collect()
        }
    }

    /// Every value of one BLOB/BYTEA column, read past the store.
    pub async fn raw_column(&self, sql: &'static str) -> Vec<Vec<u8>> {
        if self.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            let rows: Vec<(Vec<u8>,)> = sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap();
            rows.into_iter().map(|r| r.0).collect()
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            let rows: Vec<(Vec<u8>,)> = sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap();
            rows.into_iter().map(|r| r.0).collect()
        }
    }
}

async fn run_with_timeout(harness: Arc<Harness>, case: Case) {
    let store = harness.store.clone();
    let outcome = tokio::time::timeout(CASE_TIMEOUT, case(harness)).await;
    store.close().await;
    outcome.expect("the case did not finish in time");
}

/// Runs a case on a new SQLite file.
pub async fn run_sqlite(case: Case) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = gantry_store::default_database_url(dir.path());
    let harness = Arc::new(Harness::open(url, Some(dir)).await);
    run_with_timeout(harness, case).await;
}

/// Runs a case on a new Postgres database; skips (or fails under CI=true) without one.
pub async fn run_postgres(case: Case) {
    let admin = match gantry_testsupport::postgres::admin_url() {
        Ok(url) => url,
        Err(reason) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("Postgres is required under CI=true: {reason}");
            }
            eprintln!("skipped: Postgres is not available: {reason}");
            return;
        }
    };
    let name = format!("t_{:016x}", rand_u64());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("admin connection");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let url = match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("admin URL {admin} has no database part"),
    };
    let harness = Arc::new(Harness::open(url, None).await);
    run_with_timeout(harness, case).await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await;
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random");
    u64::from_le_bytes(bytes)
}
