//! The one error type of the store.

/// What went wrong in a store call. Messages say what, where and what to do; they never
/// contain a secret value or a token.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL could not be used.
    #[error(
        "database URL `{url}` cannot be used: {reason} \
         (use sqlite://<path to file> or postgres://user:password@host:port/database)"
    )]
    InvalidUrl {
        /// The URL with any password hidden.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A row with the same unique key exists already.
    #[error("{what} already exists")]
    Conflict {
        /// What collided, e.g. "repository acme/app".
        what: String,
    },
    /// The row an operation needs does not exist.
    #[error("{what} was not found")]
    NotFound {
        /// What was looked for, e.g. "build 7 of repository 3".
        what: String,
    },
    /// The caller passed a value the store cannot accept.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field, e.g. "repo.name".
        field: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The secret key is missing, malformed, or cannot be read or written.
    #[error("secret key: {0}")]
    SecretKey(String),
    /// A stored secret could not be decrypted (wrong key or damaged row).
    #[error(
        "secret `{name}` of repository {repo_id} cannot be decrypted: the secret key is not the \
         one it was stored with, or the row is damaged; set it again"
    )]
    Decrypt {
        /// The repository the secret belongs to.
        repo_id: i64,
        /// The secret's name (never its value).
        name: String,
    },
    /// A value read from the database is not one the store wrote.
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// The table the row came from.
        table: &'static str,
        /// What could not be read.
        reason: String,
    },
    /// The database failed to apply the migrations.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Database(error)
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// True when the error is a unique-constraint violation (both databases).
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}
