//! Notifications between server replicas that share one database: what one replica
//! publishes, every other one listening receives (Postgres `LISTEN`/`NOTIFY`).
//!
//! A notification is a hint, never data of record: it may be lost (a listener's
//! connection drops and reconnects), so receivers read the store for what it points at
//! and re-read it now and then anyway. SQLite serves one server process only: there,
//! nothing is sent and nobody listens.

use async_trait::async_trait;

use crate::error::StoreResult;

/// The Postgres channel every replica listens on.
pub const NOTIFY_CHANNEL: &str = "gantry_replicas";

/// Longest payload, in bytes (Postgres refuses 8,000 and more): a larger one is a
/// clear `InvalidInput` error, so senders keep payloads to pointers and short texts.
pub const MAX_NOTIFY_PAYLOAD: usize = 7_900;

/// What a listener receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A payload another (or this) replica sent, in the order they were committed.
    Payload(String),
    /// The listening connection was lost and opened again: notifications sent meanwhile
    /// are gone, so what depends on them should be read again from the store.
    Gap,
}

/// Listens on [`NOTIFY_CHANNEL`] until dropped.
pub struct NotifyListener {
    inner: sqlx::postgres::PgListener,
}

impl std::fmt::Debug for NotifyListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyListener").finish_non_exhaustive()
    }
}

impl NotifyListener {
    pub(crate) fn new(inner: sqlx::postgres::PgListener) -> Self {
        NotifyListener { inner }
    }

    /// The next notification; an error once the store is closed.
    pub async fn recv(&mut self) -> StoreResult<Notification> {
        Ok(match self.inner.try_recv().await? {
            Some(notification) => Notification::Payload(notification.payload().to_string()),
            None => Notification::Gap,
        })
    }
}

/// Cross-replica notifications.
#[async_trait]
pub trait NotifyStore: Send + Sync {
    /// Sends `payload` to every listener (this replica's included); does nothing on
    /// SQLite. Payloads over [`MAX_NOTIFY_PAYLOAD`] bytes are refused.
    async fn notify(&self, payload: &str) -> StoreResult<()>;
    /// Starts listening; None on SQLite, where no other replica can exist.
    async fn listen(&self) -> StoreResult<Option<NotifyListener>>;
}
