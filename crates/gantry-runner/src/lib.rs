//! Runs a compiled [`Plan`](gantry_pipeline::plan::Plan) on a [`Backend`].

pub mod backend;

pub use backend::{Backend, BackendError, LogChunk, LogStream, OutputStream, StepExit, WorkflowId};
