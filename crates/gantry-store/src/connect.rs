//! Opening a store from a database URL.

use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::Store;
use crate::error::{StoreError, StoreResult};
use crate::logs::LogCap;
use crate::secrets::SecretKey;
use crate::sql::{PostgresStore, SqliteStore};

/// A pooled Postgres connection idle longer than this is pinged before it is handed out.
pub(crate) const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// An SQLite file.
    Sqlite,
    /// A Postgres server.
    Postgres,
}

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Key that encrypts secrets.
    pub secret_key: SecretKey,
    /// Per-step log cap.
    pub log_cap: LogCap,
    /// Most connections in the pool (SQLite: readers; one writer at a time anyway).
    pub max_connections: u32,
}

impl StoreOptions {
    /// Default cap (5 MiB / 100,000 lines) and 8 connections.
    pub fn new(secret_key: SecretKey) -> Self {
        StoreOptions {
            secret_key,
            log_cap: LogCap::default(),
            max_connections: 8,
        }
    }
}

/// The URL of the default database: `sqlite://<data_dir>/gantry.db`.
pub fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("gantry.db").display())
}

/// The URL with any password replaced by `****`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or("");
            let hidden = if user_info.contains(':') { ":****" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Opens the database the URL names (`sqlite://path` or `postgres://...`), applies the
/// embedded migrations and returns the store.
///
/// SQLite: the file is created if missing and opened in WAL mode with foreign keys on and
/// a 10 s busy timeout. A URL of any other scheme is a clear error.
pub async fn connect(url: &str, options: StoreOptions) -> StoreResult<Arc<dyn Store>> {
    let invalid = |reason: String| StoreError::InvalidUrl {
        url: redact_url(url),
        reason,
    };
    if url.starts_with("sqlite:") {
        let connect_options = SqliteConnectOptions::from_str(url)
            .map_err(|e| invalid(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-32768")
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect_with(connect_options)
            .await
            .map_err(|e| invalid(format!("cannot open the database file: {e}")))?;
        sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
        Ok(Arc::new(SqliteStore::new(pool, options)))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let connect_options =
            PgConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
        // One direct attempt first: a pool retries until its timeout, which would turn
        // "connection refused" or a bad password into a slow, vague failure.
        let probe = PgConnection::connect_with(&connect_options)
            .await
            .map_err(|e| invalid(format!("cannot connect: {e}")))?;
        probe.close().await.ok();
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            // A ping before every acquire doubles the round trips of a busy pool (log
            // batches arrive back to back); only a connection idle for a while is checked,
            // which is when a restarted database has most likely closed it.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > PING_AFTER_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect_options)
            .await
            .map_err(|e| invalid(format!("cannot connect: {e}")))?;
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await?;
        Ok(Arc::new(PostgresStore::new(pool, options)))
    } else {
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        Err(invalid(format!("the scheme `{scheme}` is not supported")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_urls() {
        assert_eq!(
            redact_url("postgres://gantry:hunter2@db:5432/gantry"),
            "postgres://gantry:****@db:5432/gantry"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
