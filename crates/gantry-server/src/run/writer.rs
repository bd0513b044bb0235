//! Writes what a runner reports (checked by its session) to the store, then tells the
//! hub: step statuses (forward only) and log batches.

use std::collections::HashMap;

use gantry_runner::{LogBatch, OutputStream, StepReport, StepStatus};
use gantry_store::{LogLine, RunStatus, StatusChange, StepChange, now_ms};

use super::RunTarget;
use crate::live::{EventKind, LiveEvent};
use crate::state::AppState;

/// The store status of a runtime step status (`None`: nothing to record).
pub fn step_status(status: StepStatus) -> Option<RunStatus> {
    match status {
        StepStatus::Pending => None,
        StepStatus::Running => Some(RunStatus::Running),
        StepStatus::Blocked => Some(RunStatus::Blocked),
        StepStatus::Success => Some(RunStatus::Success),
        StepStatus::Failure => Some(RunStatus::Failure),
        StepStatus::Skipped => Some(RunStatus::Skipped),
        StepStatus::Cancelled => Some(RunStatus::Killed),
    }
}

/// Writes one workflow's reported step states and lines, in the order they come.
pub struct RunWriter {
    state: AppState,
    target: RunTarget,
    /// Step name → store id.
    step_ids: HashMap<String, i64>,
    /// Steps whose log reached the store's cap: later lines are not published.
    capped: HashMap<i64, bool>,
}

impl RunWriter {
    /// A writer for the steps of `target`'s workflow.
    pub fn new(state: AppState, target: RunTarget) -> Self {
        let step_ids = target
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.id))
            .collect();
        RunWriter {
            state,
            target,
            step_ids,
            capped: HashMap::new(),
        }
    }

    /// Stores a step's new state (and the build's, for an approval). An error is the
    /// store's: nothing is lost by calling it again with the same report (statuses move
    /// only forward).
    pub(crate) async fn step_changed(&mut self, report: &StepReport) -> Result<(), String> {
        let (Some(&step_id), Some(status)) =
            (self.step_ids.get(&report.step), step_status(report.status))
        else {
            return Ok(());
        };
        let change = StepChange {
            status,
            at: now_ms(),
            exit_code: report.exit_code,
            error: report.error.clone(),
            runner_id: Some(self.target.runner_id.clone()),
        };
        match self.state.store.update_step(step_id, &change).await {
            Ok(true) => self.announce_step(&report.step, status, report.error.clone()),
            Ok(false) => {}
            Err(error) => {
                tracing::error!(step.id = step_id, error = %error, "storing a step status failed");
                return Err(format!(
                    "storing the status of step `{}` failed: {error}",
                    report.step
                ));
            }
        }
        if status == RunStatus::Blocked {
            self.set_build(RunStatus::Blocked).await?;
        } else if status.is_terminal() {
            self.state.live.end_step(step_id);
            if self.target.approval_steps.contains(&report.step) {
                // The approval was decided: the build runs again.
                self.set_build(RunStatus::Running).await?;
            }
        }
        Ok(())
    }

    async fn set_build(&self, status: RunStatus) -> Result<(), String> {
        let change = StatusChange {
            status,
            at: now_ms(),
            error: None,
        };
        match self
            .state
            .store
            .update_build_status(self.target.build_id, &change)
            .await
        {
            Ok(true) => self.target.announce_build(&self.state, status, None),
            Ok(false) => {}
            Err(error) => {
                tracing::error!(build.id = self.target.build_id, error = %error, "storing a build status failed");
                return Err(format!("storing the build's status failed: {error}"));
            }
        }
        Ok(())
    }

    fn announce_step(&self, step: &str, status: RunStatus, error: Option<String>) {
        self.state.live.publish_event(LiveEvent {
            kind: EventKind::Step,
            repo_id: self.target.repo_id,
            repo: self.target.repo.clone(),
            build: self.target.build_number,
            step: Some(step.to_string()),
            status,
            error,
        });
    }

    /// Stores a batch of lines and publishes those the store did not hold yet (a batch
    /// sent again after a reconnect publishes nothing twice). An error is the store's:
    /// the batch can be stored again (lines are kept once by number).
    pub(crate) async fn logs(&mut self, batch: &LogBatch) -> Result<(), String> {
        let Some(&step_id) = self.step_ids.get(batch.step()) else {
            return Ok(());
        };
        let lines: Vec<LogLine> = batch
            .iter()
            .map(|line| LogLine {
                number: i64::try_from(line.number).unwrap_or(i64::MAX),
                stream: stream_name(line.stream).to_string(),
                text: line.text.to_string(),
                elapsed_ms: i64::try_from(line.elapsed_ms).unwrap_or(i64::MAX),
            })
            .collect();
        let outcome = match self.state.store.append_logs(step_id, &lines).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(step.id = step_id, error = %error, "storing log lines failed");
                return Err(format!(
                    "storing log lines of step `{}` failed: {error}",
                    batch.step()
                ));
            }
        };
        let capped = self.capped.entry(step_id).or_default();
        if *capped {
            // Followers read the rest (the notice) from the store when the step ends.
            return Ok(());
        }
        let past_cap = outcome.dropped > 0 || outcome.truncated_now;
        // Past the cap the store kept a prefix and its notice.
        *capped = past_cap;
        if outcome.stored == 0 {
            // Nothing new: a batch stored before was published then.
            return Ok(());
        }
        if past_cap {
            let kept: Vec<LogLine> = lines.into_iter().take(outcome.stored).collect();
            self.state.live.publish_lines(step_id, kept);
        } else {
            self.state.live.publish_lines(step_id, lines);
        }
        Ok(())
    }
}

fn stream_name(stream: OutputStream) -> &'static str {
    match stream {
        OutputStream::Stdout => "stdout",
        OutputStream::Stderr => "stderr",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackendChoice, ServerConfig};
    use gantry_runner::StepReport;
    use gantry_store::{BuildEvent, ForgeKind, NewBuild, NewRepo, NewStep, NewWorkflow};

    async fn build_with_steps(state: &AppState, name: &str, steps: &[&str]) -> RunTarget {
        let new = NewRepo::new(
            "o",
            name,
            ForgeKind::Generic,
            "file:///x.git",
            "s3cret-s3cret-s3cret",
        );
        let repo = state.store.create_repo(&new).await.unwrap();
        let workflow = NewWorkflow {
            name: "w".into(),
            plan: "{}".into(),
            labels: Default::default(),
            steps: steps
                .iter()
                .map(|s| NewStep {
                    name: (*s).into(),
                    kind: "commands".into(),
                    needs: vec![],
                })
                .collect(),
        };
        let build = NewBuild {
            repo_id: repo.id,
            event: BuildEvent::Manual,
            git_ref: "refs/heads/main".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            before: String::new(),
            message: String::new(),
            author: String::new(),
            sender: "t".into(),
            status: RunStatus::Pending,
            error: None,
            parent_id: None,
            deploy_target: None,
            diagnostics: None,
            created_at: now_ms(),
        };
        let detail = state.store.create_build(&build, &[workflow]).await.unwrap();
        let wf = &detail.workflows[0];
        RunTarget {
            runner_id: "server:test".into(),
            repo_id: repo.id,
            repo: repo.full_name(),
            build_id: detail.build.id,
            build_number: detail.build.number,
            workflow_id: wf.workflow.id,
            steps: wf.steps.clone(),
            approval_steps: vec![],
        }
    }

    fn report(step: &str, status: StepStatus) -> StepReport {
        StepReport {
            status,
            ..StepReport::pending(step)
        }
    }

    #[tokio::test]
    async fn sec_05_runner_reports_move_steps_forward_only_and_stay_in_their_workflow() {
        let run = async {
            let dir = tempfile::tempdir().unwrap();
            let mut config = ServerConfig::new(dir.path());
            config.backend = BackendChoice::Local;
            config.no_local_runner = true;
            config.admin_token = Some("writer-test-admin-token-0123".into());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let server = crate::launch(listener, config).await.unwrap();
            let state = server.state().clone();
            let mine = build_with_steps(&state, "mine", &["build"]).await;
            let other = build_with_steps(&state, "other", &["deploy"]).await;

            let mut writer = RunWriter::new(state.clone(), mine.clone());
            writer
                .step_changed(&report("build", StepStatus::Running))
                .await
                .unwrap();
            writer
                .step_changed(&report("build", StepStatus::Success))
                .await
                .unwrap();
            // A late or forged report cannot move the finished step back.
            writer
                .step_changed(&report("build", StepStatus::Running))
                .await
                .unwrap();
            // Names outside this workflow (another build's step) are not written.
            writer
                .step_changed(&report("deploy", StepStatus::Failure))
                .await
                .unwrap();
            let mut batch = gantry_runner::LogBatch::new("deploy", 1);
            batch.push(gantry_runner::OutputStream::Stdout, "injected", 0);
            writer.logs(&batch).await.unwrap();

            let step_of = |target: &RunTarget| target.steps[0].id;
            let mine_now = state
                .store
                .build_by_id(mine.build_id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(mine_now.workflows[0].steps[0].status, RunStatus::Success);
            let other_now = state
                .store
                .build_by_id(other.build_id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(other_now.workflows[0].steps[0].status, RunStatus::Pending);
            let lines = state
                .store
                .read_logs(step_of(&other), None, 0)
                .await
                .unwrap();
            assert!(lines.is_empty(), "no line reached another workflow's step");
            server.shutdown().await;
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), run)
            .await
            .expect("finishes in time");
    }
}
