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

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
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
    /// Connections kept out of the pool between log batches (see [`ParkedConnections`]).
    log_connections: Arc<ParkedConnections>,
}

/// A few connections a log append keeps for the next one instead of returning them to
/// the pool, most recently used first. Returning a connection costs a round trip (the
/// pool pings it on release, in a task of its own) and the pool hands out its idle
/// connections oldest first, so back-to-back batches went round every connection of the
/// pool, each time to a backend whose caches had gone cold: a quarter to a third of
/// Postgres's time per batch. Only a connection whose last query completed is parked,
/// and one parked longer than the pool's `PING_AFTER_IDLE` (10 s) goes back to the pool,
/// which pings it before handing it out again, rather than being used as it is: at the
/// next append, or from a check every `PING_AFTER_IDLE` when no append comes. Once the
/// store closes nothing is parked any more: an append that finishes during the close
/// returns its connection, which the pool's close waits for.
struct ParkedConnections {
    parked: Mutex<Parked>,
    /// At most this many are parked: a quarter of the pool, none for a pool under 4.
    limit: usize,
}

#[derive(Default)]
struct Parked {
    /// Oldest first.
    connections: Vec<(PoolConnection<Postgres>, Instant)>,
    /// Set by [`ParkedConnections::release`]: the store is closing.
    closed: bool,
}

impl Parked {
    /// Takes out the connections parked too long (the oldest are first).
    fn stale(&mut self) -> Vec<(PoolConnection<Postgres>, Instant)> {
        let stale = self
            .connections
            .iter()
            .take_while(|(_, at)| at.elapsed() > crate::connect::PING_AFTER_IDLE)
            .count();
        self.connections.drain(..stale).collect()
    }
}

impl ParkedConnections {
    fn new(max_connections: u32) -> Self {
        ParkedConnections {
            parked: Mutex::new(Parked::default()),
            limit: usize::try_from(max_connections / 4).unwrap_or(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Parked> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently parked connection, if it was used recently enough. Those parked
    /// too long go back to the pool (dropped once the lock is released).
    fn take(&self) -> Option<PoolConnection<Postgres>> {
        let (taken, _stale) = {
            let mut parked = self.lock();
            let stale = parked.stale();
            (parked.connections.pop(), stale)
        };
        taken.map(|(connection, _)| connection)
    }

    /// Keeps a connection whose last query completed, unless enough are kept or the store
    /// (or its pool) is closing: then it goes back to the pool.
    fn park(&self, connection: PoolConnection<Postgres>, pool_closed: bool) {
        let (returned, _stale) = {
            let mut parked = self.lock();
            let stale = parked.stale();
            if parked.closed || pool_closed || parked.connections.len() >= self.limit {
                (Some(connection), stale)
            } else {
                parked.connections.push((connection, Instant::now()));
                (None, stale)
            }
        };
        drop(returned);
    }

    /// Returns the connections parked too long to the pool; false once the store closes.
    fn return_stale(&self) -> bool {
        let (open, _stale) = {
            let mut parked = self.lock();
            let stale = parked.stale();
            (!parked.closed, stale)
        };
        open
    }

    /// Returns every parked connection to the pool and parks none from now on (before the
    /// pool closes, which waits for all of them).
    fn release(&self) {
        let mut parked = self.lock();
        parked.closed = true;
        let released = std::mem::take(&mut parked.connections);
        drop(parked);
        drop(released);
    }

    /// Every `PING_AFTER_IDLE`, returns the connections parked too long, until the store
    /// closes or is dropped.
    fn watch(parked: std::sync::Weak<ParkedConnections>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(crate::connect::PING_AFTER_IDLE).await;
                match parked.upgrade() {
                    Some(parked) if parked.return_stale() => {}
                    _ => return,
                }
            }
        });
    }
}

impl Drop for ParkedConnections {
    /// A pooled connection dropped outside a Tokio runtime cannot go back to its pool (the
    /// pool spawns a task for that): such a one is closed instead.
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            let parked = self
                .parked
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner);
            for (connection, _) in parked.connections.drain(..) {
                drop(connection.detach());
            }
        }
    }
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

    /// Nothing is kept out of the pool on SQLite.
    fn release_parked(&self) {}
}

impl PostgresStore {
    pub(crate) fn new(pool: PgPool, options: StoreOptions) -> Self {
        let log_connections = Arc::new(ParkedConnections::new(options.max_connections.max(1)));
        ParkedConnections::watch(Arc::downgrade(&log_connections));
        PostgresStore {
            pool,
            key: options.secret_key,
            log_cap: options.log_cap,
            log_connections,
        }
    }

    /// Returns the connections log appends kept to the pool.
    fn release_parked(&self) {
        self.log_connections.release();
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
                self.release_parked();
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
