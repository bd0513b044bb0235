//! Gantry's persistence: repositories, builds (with workflows and steps), logs, the work
//! queue, webhook deliveries (and the hook builds they recorded, until prepared), secrets,
//! API tokens, crash recovery and notifications between server replicas (Postgres), on
//! SQLite (the default, a file in the data directory) or Postgres.
//!
//! Open a store with [`connect`]; it runs the embedded migrations and returns an
//! `Arc<dyn Store>`. Every operation is a method of one of the per-aggregate traits that
//! [`Store`] groups, and both databases pass the same conformance suite
//! (`tests/conformance`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), gantry_store::StoreError> {
//! use gantry_store::{connect, default_database_url, ForgeKind, NewRepo, SecretKey, StoreOptions};
//! let data_dir = std::path::Path::new("/var/lib/gantry");
//! let options = StoreOptions::new(SecretKey::load(data_dir)?);
//! let store = connect(&default_database_url(data_dir), options).await?;
//! let repo = store
//!     .create_repo(&NewRepo::new("acme", "app", ForgeKind::Github, "https://example.invalid/acme/app.git", "s3cret"))
//!     .await?;
//! # let _ = repo; Ok(()) }
//! ```
//!
//! Times are i64 unix milliseconds ([`Millis`]); JSON (plans, diagnostics) is TEXT.

mod builds;
mod connect;
mod deliveries;
mod error;
mod logs;
mod notify;
mod preparing;
mod queue;
mod recovery;
mod repos;
mod runners;
mod secrets;
mod sql;
mod status;
mod time;
mod tokens;

use async_trait::async_trait;

pub use builds::{
    Approval, ApprovalDecision, Build, BuildDetail, BuildPage, BuildStore, MAX_BUILD_PAGE,
    NewBuild, NewStep, NewWorkflow, StatusChange, Step, StepChange, Workflow, WorkflowDetail,
};
pub use connect::{DatabaseKind, StoreOptions, connect, default_database_url, redact_url};
pub use deliveries::DeliveryStore;
pub use error::{StoreError, StoreResult};
pub use logs::{AppendOutcome, LogCap, LogLine, LogStore, MAX_LOG_PAGE};
pub use notify::{MAX_NOTIFY_PAYLOAD, NOTIFY_CHANNEL, Notification, NotifyListener, NotifyStore};
pub use preparing::{Preparation, PreparationClaim, PreparationStore, PreparingBuild};
pub use queue::{Completion, QueueItem, QueueState, QueueStore, RequeueOutcome, labels_fit};
pub use recovery::{InterruptedBuild, InterruptedStep, Recovered, RecoveryRequest, RecoveryStore};
pub use repos::{
    DEFAULT_CONFIG_PATH, DEFAULT_TIMEOUT_MINUTES, NewRepo, Repo, RepoSettings, RepoStore,
};
pub use runners::{RunnerPresence, RunnerStore};
pub use secrets::{
    SECRET_KEY_ENV, SECRET_KEY_FILE, SecretInfo, SecretKey, SecretStore, SecretValue,
};
pub use status::{BuildEvent, ForgeKind, RunStatus};
pub use time::{Millis, now_ms, utc_minutes};
pub use tokens::{
    ApiToken, MAX_SCOPE_CHARS, MAX_SCOPE_ENTRIES, NewToken, PlaintextToken, RunnerScope,
    TOKEN_PREFIX, TokenRole, TokenStore, repo_pattern_matches, token_hash,
};

/// Everything the server persists: one object, shared as `Arc<dyn Store>`.
#[async_trait]
pub trait Store:
    std::fmt::Debug
    + RepoStore
    + BuildStore
    + LogStore
    + QueueStore
    + DeliveryStore
    + PreparationStore
    + SecretStore
    + TokenStore
    + RecoveryStore
    + RunnerStore
    + NotifyStore
{
    /// Which database is behind it.
    fn kind(&self) -> DatabaseKind;
    /// True when the database answers (for `/readyz`).
    async fn ping(&self) -> bool;
    /// Closes the connections; later calls fail.
    async fn close(&self);
}
