//! Runs a compiled [`Plan`](gantry_pipeline::plan::Plan) on a [`Backend`].
//!
//! [`Runtime`] schedules a plan's steps as a DAG on any [`Backend`], masks secrets in
//! everything it reports, and always cleans up. [`LocalBackend`] runs steps as host
//! processes.

mod approval;
pub mod backend;
mod config;
pub mod lines;
mod local;
mod log_batch;
pub mod mask;
mod report;
mod runtime;

pub use approval::{ApprovalDecision, Approver};
pub use backend::{Backend, BackendError, LogChunk, LogStream, OutputStream, StepExit, WorkflowId};
pub use config::RunConfig;
pub use local::LocalBackend;
pub use log_batch::{LogBatch, LogLine, LogLines};
pub use report::{PipelineStatus, RunEvent, RunOutcome, StepReport, StepStatus};
pub use runtime::Runtime;
