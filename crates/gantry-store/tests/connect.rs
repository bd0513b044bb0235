//! Opening a store: URL schemes, SQLite settings, migrations, clear errors.

use std::time::Duration;

use gantry_store::{
    DatabaseKind, SecretKey, StoreError, StoreOptions, connect, default_database_url,
};
use sqlx::Connection as _;

fn options() -> StoreOptions {
    StoreOptions::new(SecretKey::generate().unwrap())
}

async fn with_timeout<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the test did not finish in time");
}

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode_with_foreign_keys_and_migrated() {
    with_timeout(async {
        let dir = tempfile::tempdir().unwrap();
        let url = default_database_url(dir.path());
        assert!(url.starts_with("sqlite://") && url.ends_with("/gantry.db"));
        let store = connect(&url, options()).await.unwrap();
        assert_eq!(store.kind(), DatabaseKind::Sqlite);
        assert!(store.ping().await);
        store.close().await;
        assert!(dir.path().join("gantry.db").is_file());

        let mut raw = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut raw)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'queue_items'",
        )
        .fetch_one(&mut raw)
        .await
        .unwrap();
        assert_eq!(tables, 1);

        let again = connect(&url, options()).await.unwrap();
        assert!(again.ping().await, "migrations run again without harm");
        again.close().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_scheme_is_a_clear_error() {
    with_timeout(async {
        let error = connect("mysql://root:hunter2@db/gantry", options())
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::InvalidUrl { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("`mysql` is not supported"), "{message}");
        assert!(
            message.contains("sqlite://") && message.contains("postgres://"),
            "{message}"
        );
        assert!(
            !message.contains("hunter2"),
            "the password is hidden: {message}"
        );
    })
    .await;
}

#[tokio::test]
async fn sqlite_file_in_a_missing_directory_is_a_clear_error() {
    with_timeout(async {
        let error = connect("sqlite:///nonexistent-gantry-dir/x/gantry.db", options())
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot open the database file"), "{error}");
    })
    .await;
}

#[tokio::test]
async fn unreachable_postgres_is_a_clear_error_without_the_password() {
    with_timeout(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut opts = options();
        opts.max_connections = 1;
        let url = format!("postgres://gantry:hunter2@127.0.0.1:{port}/gantry?connect_timeout=2");
        let error = connect(&url, opts).await.unwrap_err().to_string();
        assert!(error.contains("cannot connect"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    })
    .await;
}
