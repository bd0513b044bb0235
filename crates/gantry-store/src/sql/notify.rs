//! `LISTEN`/`NOTIFY` on Postgres; nothing on SQLite (one server process per file).

use async_trait::async_trait;

use super::{PostgresStore, SqliteStore};
use crate::error::{StoreError, StoreResult};
use crate::notify::{MAX_NOTIFY_PAYLOAD, NOTIFY_CHANNEL, NotifyListener, NotifyStore};

fn check_payload(payload: &str) -> StoreResult<()> {
    if payload.len() > MAX_NOTIFY_PAYLOAD {
        return Err(StoreError::InvalidInput {
            field: "notification".to_string(),
            reason: format!(
                "{} bytes; at most {MAX_NOTIFY_PAYLOAD} fit: send a pointer to stored data instead",
                payload.len()
            ),
        });
    }
    Ok(())
}

#[async_trait]
impl NotifyStore for SqliteStore {
    async fn notify(&self, payload: &str) -> StoreResult<()> {
        check_payload(payload)
    }

    async fn listen(&self) -> StoreResult<Option<NotifyListener>> {
        Ok(None)
    }
}

#[async_trait]
impl NotifyStore for PostgresStore {
    async fn notify(&self, payload: &str) -> StoreResult<()> {
        check_payload(payload)?;
        // Outside a transaction: delivered at once, in the order the calls complete.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(NOTIFY_CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn listen(&self) -> StoreResult<Option<NotifyListener>> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        Ok(Some(NotifyListener::new(listener)))
    }
}
