//! DAG scheduling: a step starts as soon as every step it `needs` has finished, bounded by
//! the concurrency limit; ready steps start in plan order. Steps that become ready when the
//! running ones finish are prepared meanwhile (see [`super::prepare`]).

use std::collections::HashMap;
use std::sync::Arc;

use gantry_pipeline::plan::{FailurePolicy, Plan, RunOn, StepKind};
use tokio::task::{JoinError, JoinSet};

use super::prepare::Preparations;
use super::step::run_step;
use super::{RunContext, StepDone};
use crate::report::{StepReport, StepStatus};

/// Where a step is, as far as scheduling goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Waiting,
    Running,
    Done,
}

/// What scheduling the steps came to.
pub(super) struct Scheduled {
    /// Final report of each step, in plan order.
    pub(super) reports: Vec<StepReport>,
    /// A non-ignored step failed.
    pub(super) failed: bool,
    /// Why some steps could never start (a cycle in `needs`).
    pub(super) error: Option<String>,
}

/// Runs a plan's steps on the run's context.
pub(super) struct Scheduler<'p> {
    ctx: Arc<RunContext>,
    plan: &'p Plan,
    needs: Vec<Vec<usize>>,
    slots: Vec<Slot>,
    reports: Vec<StepReport>,
    failed: bool,
    /// Step tasks alive.
    running: usize,
    /// Step tasks alive that count against `limit`: an approval waiting for a person holds
    /// no slot, so it never stalls the independent branches.
    busy: usize,
    limit: usize,
    task_steps: HashMap<tokio::task::Id, usize>,
    preparations: Preparations,
}

impl<'p> Scheduler<'p> {
    /// A scheduler for `plan`; `failed` is the status the services left behind.
    pub(super) fn new(ctx: Arc<RunContext>, plan: &'p Plan, failed: bool) -> Self {
        let limit = ctx.concurrency.max(1);
        let preparations = Preparations::new(Arc::clone(&ctx), plan.steps.len(), limit);
        Self {
            ctx,
            plan,
            needs: vec![Vec::new(); plan.steps.len()],
            slots: vec![Slot::Waiting; plan.steps.len()],
            reports: plan
                .steps
                .iter()
                .map(|s| StepReport::pending(&s.name))
                .collect(),
            failed,
            running: 0,
            busy: 0,
            limit,
            task_steps: HashMap::new(),
            preparations,
        }
    }

    /// Runs every step to a final status (or until cancelled), spawning step tasks on
    /// `tasks`.
    pub(super) async fn run(mut self, tasks: &mut JoinSet<StepDone>) -> Scheduled {
        self.resolve_needs().await;
        loop {
            if !self.ctx.cancel.is_cancelled() {
                self.start_ready(tasks).await;
                self.prepare_upcoming();
            }
            if self.running == 0 {
                break;
            }
            // Step tasks watch the cancel token themselves and end promptly.
            match tasks.join_next_with_id().await {
                Some(joined) => self.record(joined).await,
                None => break,
            }
        }
        let error = self.close_waiting().await;
        Scheduled {
            reports: self.reports,
            failed: self.failed,
            error,
        }
    }

    /// Turns `needs` names into indices; a step naming an unknown step fails.
    async fn resolve_needs(&mut self) {
        let index: HashMap<&str, usize> = (self.plan.steps.iter().enumerate())
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        for (i, step) in self.plan.steps.iter().enumerate() {
            for name in &step.needs {
                match index.get(name.as_str()) {
                    Some(&j) => self.needs[i].push(j),
                    None => {
                        let error = format!(
                            "needs `{name}`, which is not a step of this pipeline: \
                             fix `depends_on`/`needs` of step `{}`",
                            step.name
                        );
                        self.finish(i, StepStatus::Failure, Some(error)).await;
                        break;
                    }
                }
            }
        }
    }

    /// Starts (or skips) every step whose needs are done, while slots are free. Skipping
    /// can make other steps ready, so it repeats until nothing changes.
    async fn start_ready(&mut self, tasks: &mut JoinSet<StepDone>) {
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..self.plan.steps.len() {
                if self.slots[i] != Slot::Waiting || !self.needs_done(i) {
                    continue;
                }
                let step = &self.plan.steps[i];
                let holds_slot = step.kind != StepKind::Approval;
                if holds_slot && self.busy >= self.limit {
                    continue;
                }
                if !runs_under(step.run_on, self.failed) {
                    self.finish(i, StepStatus::Skipped, None).await;
                    changed = true;
                    continue;
                }
                let prepared = self.preparations.take(i);
                let ctx = Arc::clone(&self.ctx);
                let task = run_step(ctx, step.clone(), self.failed, prepared);
                let handle = tasks.spawn(async move { (i, task.await) });
                self.task_steps.insert(handle.id(), i);
                self.slots[i] = Slot::Running;
                self.running += 1;
                self.busy += usize::from(holds_slot);
            }
        }
    }

    fn needs_done(&self, i: usize) -> bool {
        self.needs[i].iter().all(|&j| self.slots[j] == Slot::Done)
    }

    /// Prepares the waiting steps that can start once the running steps finish (every
    /// need running or done) and would run under the status so far, in plan order.
    fn prepare_upcoming(&mut self) {
        for i in 0..self.plan.steps.len() {
            let step = &self.plan.steps[i];
            if self.slots[i] != Slot::Waiting
                || !self.preparations.may_prepare(i, step)
                || !self.needs[i]
                    .iter()
                    .all(|&j| self.slots[j] != Slot::Waiting)
                || !runs_under(step.run_on, self.failed)
            {
                continue;
            }
            self.preparations.prepare(i, step, self.failed);
        }
    }

    /// Takes in the result of a finished step task.
    async fn record(&mut self, joined: Result<(tokio::task::Id, StepDone), JoinError>) {
        self.running -= 1;
        let index = match &joined {
            Ok((_, (i, _))) => Some(*i),
            Err(e) => self.task_steps.get(&e.id()).copied(),
        };
        if index.is_some_and(|i| self.plan.steps[i].kind != StepKind::Approval) {
            self.busy = self.busy.saturating_sub(1);
        }
        match joined {
            Ok((_, (i, report))) => {
                self.slots[i] = Slot::Done;
                self.note_failure(i, report.status);
                self.reports[i] = report;
            }
            Err(e) => {
                let Some(&i) = self.task_steps.get(&e.id()) else {
                    return;
                };
                tracing::error!(step.name = %self.plan.steps[i].name, error = %e, "step task ended abnormally");
                let error = "internal error: the step's task stopped unexpectedly".to_owned();
                self.finish(i, StepStatus::Failure, Some(error)).await;
            }
        }
    }

    /// Gives every step still waiting its final status: cancelled, or (without
    /// cancellation) failed because its needs can never be met. Returns the run's error.
    async fn close_waiting(&mut self) -> Option<String> {
        let waiting: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i] == Slot::Waiting)
            .collect();
        if waiting.is_empty() {
            return None;
        }
        if self.ctx.cancel.is_cancelled() {
            for i in waiting {
                self.finish(i, StepStatus::Cancelled, None).await;
            }
            return None;
        }
        let names: Vec<&str> = waiting
            .iter()
            .map(|&i| self.plan.steps[i].name.as_str())
            .collect();
        let error = format!(
            "steps never became ready because their needs form a cycle: {}",
            names.join(", ")
        );
        for i in waiting {
            self.finish(i, StepStatus::Failure, Some(error.clone()))
                .await;
        }
        Some(error)
    }

    /// Sets a final status decided by the scheduler itself and reports it.
    async fn finish(&mut self, i: usize, status: StepStatus, error: Option<String>) {
        self.preparations.discard(i);
        let report = std::mem::replace(&mut self.reports[i], StepReport::pending(""));
        self.reports[i] = self.ctx.finish(report, status, error).await;
        self.slots[i] = Slot::Done;
        self.note_failure(i, status);
    }

    fn note_failure(&mut self, i: usize, status: StepStatus) {
        if status == StepStatus::Failure && self.plan.steps[i].failure == FailurePolicy::Fail {
            self.failed = true;
        }
    }
}

/// Whether a step with `run_on` runs when the pipeline has (not) failed so far.
fn runs_under(run_on: RunOn, failed: bool) -> bool {
    if failed {
        run_on.failure
    } else {
        run_on.success
    }
}
