//! Whether the kernel killed a step for exceeding its memory limit.
//!
//! The engine's `State.OOMKilled` is the first witness, but it can come too late: the
//! OOM notice and the exit travel as separate events, and when the exit is handled first
//! the flag is still unset when the wait returns (Docker 20.10 then never sets it; newer
//! engines set it a moment later). So when the flag is unset but the step had a memory
//! limit and died of SIGKILL (exit code 137, the only way the OOM killer ends a process),
//! the engine's event log is asked whether it recorded an `oom` event for that container,
//! waiting a short moment for one still on its way. The verdict always rests on the
//! engine's own record: a `kill -9` under a memory limit is not called out of memory.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;
use gantry_pipeline::plan::Step;
use gantry_runner::BackendError;

use crate::{DockerBackend, errors};

/// Exit code of a process ended by SIGKILL (128 + 9).
pub const SIGKILL_EXIT: i64 = 137;
/// How long to wait for an `oom` event that has not arrived yet.
const LATE_EVENT_WAIT: Duration = Duration::from_secs(2);
/// How far back the event log is searched (OOM kills come right before the exit).
const LOOK_BACK_SECS: u64 = 300;

/// Whether a step that ended with `code` and no OOM flag may still have been OOM-killed.
pub fn worth_a_second_look(step: &Step, code: i64) -> bool {
    step.resources.memory.is_some() && code == SIGKILL_EXIT
}

impl DockerBackend {
    /// Whether container `name` of `step`, which exited with `code`, was OOM-killed.
    pub(crate) async fn oom_killed(
        &self,
        name: &str,
        step: &Step,
        code: i64,
    ) -> Result<bool, BackendError> {
        let info = match self.docker.inspect_container(name, None).await {
            Ok(info) => info,
            Err(e) if errors::is_not_found(&e) => return Ok(false),
            Err(e) => {
                return Err(errors::failed(
                    format_args!("inspect step `{}`", step.name),
                    &e,
                ));
            }
        };
        if info.state.and_then(|s| s.oom_killed).unwrap_or(false) {
            return Ok(true);
        }
        match info.id {
            Some(id) if worth_a_second_look(step, code) => Ok(self.oom_event_seen(&id).await),
            _ => Ok(false),
        }
    }

    /// Whether the engine's event log has (or gets within [`LATE_EVENT_WAIT`]) an `oom`
    /// event for container `id`. An unreadable log counts as "no".
    async fn oom_event_seen(&self, id: &str) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let options = EventsOptions {
            since: Some(now.saturating_sub(LOOK_BACK_SECS).to_string()),
            // An `until` in the future makes the engine wait for events until then.
            until: Some((now + LATE_EVENT_WAIT.as_secs()).to_string()),
            filters: Some(HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                ("container".to_string(), vec![id.to_string()]),
                ("event".to_string(), vec!["oom".to_string()]),
            ])),
        };
        let mut events = self.docker.events(Some(options));
        let first = tokio::time::timeout(LATE_EVENT_WAIT * 2, events.next()).await;
        let seen = matches!(&first, Ok(Some(Ok(event))) if is_oom(event));
        tracing::debug!(container = id, seen, "looked for a late OOM event");
        seen
    }
}

fn is_oom(event: &bollard::models::EventMessage) -> bool {
    event.action.as_deref() == Some("oom")
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_pipeline::plan::StepKind;

    fn step(memory: Option<u64>) -> Step {
        let mut s = crate::unit_fixtures::step("hog", StepKind::Commands, &["true"]);
        s.resources.memory = memory;
        s
    }

    #[test]
    fn only_a_sigkill_under_a_memory_limit_gets_a_second_look() {
        assert!(worth_a_second_look(&step(Some(16 << 20)), 137));
        assert!(!worth_a_second_look(&step(None), 137));
        assert!(!worth_a_second_look(&step(Some(16 << 20)), 1));
        assert!(!worth_a_second_look(&step(Some(16 << 20)), 0));
    }
}
