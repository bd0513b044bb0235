//! Getting steps ready before they can start: [`Backend::prepare_step`] for the steps that
//! become ready when the running ones finish, so the backend can overlap, say, creating a
//! container with the run of the step before it. A step is prepared as soon as every step
//! it needs is running (or finished), which on Docker means while they are being started:
//! a create did not measurably slow a concurrent start (see `bench/docker/README.md`).
//!
//! A step is prepared at most once, with the environment it would start with if the
//! pipeline's status stayed as it is, and at most `concurrency` steps are prepared and not
//! started at any time. A prepared step that will not start after all (skipped, cancelled,
//! its needs failed) is destroyed at once; the run's cleanup destroys any that is left.
//!
//! [`Backend::prepare_step`]: crate::Backend::prepare_step

use std::collections::HashMap;
use std::sync::Arc;

use gantry_pipeline::plan::{Step, StepKind};
use tokio::sync::oneshot;

use super::RunContext;
use super::step::{resolve_secrets, with_build_status};

/// A preparation under way or done; the step must not start before it is over.
pub(super) struct Prepared {
    done: oneshot::Receiver<()>,
}

impl Prepared {
    /// Waits until the preparation is over (whether it worked or not).
    pub(super) async fn finished(self) {
        // The sender is dropped when the preparation ends, also when it is aborted.
        let _ = self.done.await;
    }
}

/// The run's preparations: which steps were prepared and are not started yet.
pub(super) struct Preparations {
    ctx: Arc<RunContext>,
    limit: usize,
    /// Steps already prepared once (never prepared twice).
    tried: Vec<bool>,
    /// Prepared, not started: step index → (the prepared step, its preparation).
    pending: HashMap<usize, (Step, Prepared)>,
}

impl Preparations {
    /// Preparations for a plan of `steps` steps, at most `limit` pending at once.
    pub(super) fn new(ctx: Arc<RunContext>, steps: usize, limit: usize) -> Self {
        Self {
            ctx,
            limit: limit.max(1),
            tried: vec![false; steps],
            pending: HashMap::new(),
        }
    }

    /// True when step `i` may be prepared now: never tried, room left, a step that reaches
    /// the backend, and the run not cancelled.
    pub(super) fn may_prepare(&self, i: usize, step: &Step) -> bool {
        !self.tried.get(i).copied().unwrap_or(true)
            && self.pending.len() < self.limit
            && step.kind != StepKind::Approval
            && !self.ctx.cancel.is_cancelled()
    }

    /// Starts preparing step `i` as it would start under the status so far.
    pub(super) fn prepare(&mut self, i: usize, step: &Step, failed_so_far: bool) {
        if let Some(tried) = self.tried.get_mut(i) {
            *tried = true;
        }
        let Ok(secrets) = resolve_secrets(&self.ctx.secrets, step) else {
            // It fails when it is due, with the error naming the missing secret.
            return;
        };
        let step = with_build_status(step.clone(), failed_so_far);
        self.ctx.cleanup.starting(&step);
        let (finished, done) = oneshot::channel::<()>();
        let ctx = Arc::clone(&self.ctx);
        let prepared_step = step.clone();
        self.ctx.cleanup.spawn_preparation(async move {
            if let Err(e) = ctx.backend.prepare_step(&ctx.id, &step, &secrets).await {
                // Starting the step does the work again and reports what goes wrong.
                tracing::debug!(
                    workflow.id = %ctx.id, step.name = %step.name, error = %ctx.masker.mask(&e.to_string()),
                    "preparing a step failed"
                );
            }
            drop(finished);
        });
        self.pending.insert(i, (prepared_step, Prepared { done }));
    }

    /// The preparation of step `i`, which is about to start (if it was prepared).
    pub(super) fn take(&mut self, i: usize) -> Option<Prepared> {
        self.pending.remove(&i).map(|(_, prepared)| prepared)
    }

    /// Step `i` will not start: what was prepared for it is destroyed (in the background,
    /// once the preparation is over).
    pub(super) fn discard(&mut self, i: usize) {
        let Some((step, prepared)) = self.pending.remove(&i) else {
            return;
        };
        let cleanup = Arc::clone(&self.ctx.cleanup);
        self.ctx.cleanup.spawn_preparation(async move {
            prepared.finished().await;
            cleanup.destroy_step(&step).await;
        });
    }
}
