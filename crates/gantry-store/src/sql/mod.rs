//! The two implementations. Both run the same SQL text (`$n` placeholders, `RETURNING`,
//! `ON CONFLICT`); each aggregate's file writes its methods once in a macro expanded for
//! [`SqliteStore`] and [`PostgresStore`]. Only the transaction start and the queue claim
//! differ per database.

mod builds;
mod logs;
mod notify;
mod preparing;
mod queue;
mod recovery;
mod repos;
mod rows;
mod runners;
mod secrets;
mod tokens;

use async_trait::async_trait;
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::Store;
use crate::connect::{DatabaseKind, StoreOptions};
use crate::error::StoreResult;
use crate::logs::LogCap;
use crate::secrets::SecretKey;

/// The store on an SQLite file.
pub(crate) struct SqliteStore {
    pool: SqlitePool,
    key: SecretKey,
    log_cap: LogCap,
}

/// The store on a Postgres database.
pub(crate) struct PostgresStore {
    pool: PgPool,
    key: SecretKey,
    log_cap: LogCap,
}

impl SqliteStore {
    pub(crate) fn new(pool: SqlitePool, options: StoreOptions) -> Self {
        SqliteStore {
            pool,
            key: options.secret_key,
            log_cap: options.log_cap,
        }
    }

    /// A write transaction. `BEGIN IMMEDIATE` takes the write lock up front, so two
    /// writers queue on the busy timeout instead of failing to upgrade a read lock.
    async fn write_tx(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl PostgresStore {
    pub(crate) fn new(pool: PgPool, options: StoreOptions) -> Self {
        PostgresStore {
            pool,
            key: options.secret_key,
            log_cap: options.log_cap,
        }
    }

    /// A write transaction (row locks serialise what must be serial).
    async fn write_tx(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

macro_rules! store_impl {
    ($store:ty, $kind:expr) => {
        #[async_trait]
        impl Store for $store {
            fn kind(&self) -> DatabaseKind {
                $kind
            }

            async fn ping(&self) -> bool {
                sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }

        impl std::fmt::Debug for $store {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($store))
                    .field("log_cap", &self.log_cap)
                    .finish_non_exhaustive()
            }
        }
    };
}

store_impl!(SqliteStore, DatabaseKind::Sqlite);
store_impl!(PostgresStore, DatabaseKind::Postgres);
