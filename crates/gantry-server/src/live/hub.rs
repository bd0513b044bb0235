//! The in-memory fan-out: new log lines per step, and build/step status changes.
//!
//! The hub holds nothing durable: the store is the truth, the hub only tells followers
//! that something new is there. A follower subscribes first, then reads the store, then
//! skips live lines it already has, so it sees every line once (see `stream.rs`).
//!
//! With replicas on one Postgres, every publication is also relayed to the other
//! replicas (`replicas.rs`), which deliver it to their own followers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use gantry_store::{LogLine, RunStatus};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, mpsc};

use super::replicas::Relayed;

/// Lines a step's channel buffers for a slow follower before it must re-read the store.
const STEP_CHANNEL_DEPTH: usize = 256;
/// Status changes buffered for a slow `/api/events` follower.
const EVENT_CHANNEL_DEPTH: usize = 1024;

/// What a step's live channel carries.
#[derive(Debug, Clone)]
pub enum StepFeed {
    /// Lines just stored, in order.
    Lines(Arc<[LogLine]>),
    /// The step reached a final status: no more lines will come.
    Ended,
}

/// Whether a status change is about a build or one of its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A build's status changed.
    Build,
    /// A step's status changed.
    Step,
}

/// A build or step status change, as `/api/events` sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveEvent {
    /// Build or step.
    pub kind: EventKind,
    /// Repository id (used to decide who may see the event).
    pub repo_id: i64,
    /// `owner/name` of the repository.
    pub repo: String,
    /// Build number within the repository.
    pub build: i64,
    /// Step name, for step events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The new status.
    pub status: RunStatus,
    /// Why, when the status is `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Fans out log lines and status changes to websocket followers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    steps: Mutex<HashMap<i64, broadcast::Sender<StepFeed>>>,
    events: broadcast::Sender<LiveEvent>,
    /// The changes this replica made only (metrics count each change once over replicas).
    own_events: broadcast::Sender<LiveEvent>,
    work: Notify,
    /// Where publications go to reach the other replicas (unset: this server is alone).
    relay: OnceLock<mpsc::UnboundedSender<Relayed>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Hub {
            inner: Arc::new(HubInner {
                steps: Mutex::new(HashMap::new()),
                events: broadcast::channel(EVENT_CHANNEL_DEPTH).0,
                own_events: broadcast::channel(EVENT_CHANNEL_DEPTH).0,
                work: Notify::new(),
                relay: OnceLock::new(),
            }),
        }
    }

    fn steps(&self) -> MutexGuard<'_, HashMap<i64, broadcast::Sender<StepFeed>>> {
        // The map is only ever inserted into or removed from: a panic cannot corrupt it.
        self.inner
            .steps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Relays every publication from now on to the other replicas through `relay`.
    pub(crate) fn relay_to(&self, relay: mpsc::UnboundedSender<Relayed>) {
        let _ = self.inner.relay.set(relay);
    }

    fn relay(&self, message: Relayed) {
        if let Some(relay) = self.inner.relay.get() {
            let _ = relay.send(message);
        }
    }

    /// True when a follower of this replica has a channel for the step.
    pub(crate) fn follows_step(&self, step_id: i64) -> bool {
        self.steps().contains_key(&step_id)
    }

    /// Follows the live lines of a step from now on.
    pub fn subscribe_step(&self, step_id: i64) -> broadcast::Receiver<StepFeed> {
        self.steps()
            .entry(step_id)
            .or_insert_with(|| broadcast::channel(STEP_CHANNEL_DEPTH).0)
            .subscribe()
    }

    /// Tells a step's followers about lines already written to the store.
    pub fn publish_lines(&self, step_id: i64, lines: Vec<LogLine>) {
        if let (Some(first), Some(last)) = (lines.first(), lines.last()) {
            self.relay(Relayed::Lines {
                step: step_id,
                first: first.number,
                last: last.number,
            });
        }
        self.deliver_lines(step_id, lines);
    }

    /// Tells this replica's followers of a step about stored lines.
    pub(crate) fn deliver_lines(&self, step_id: i64, lines: Vec<LogLine>) {
        if lines.is_empty() {
            return;
        }
        let steps = self.steps();
        if let Some(sender) = steps.get(&step_id) {
            // No follower is fine: the store holds the lines.
            let _ = sender.send(StepFeed::Lines(lines.into()));
        }
    }

    /// Tells a step's followers that it ended (after its final status is stored) and
    /// forgets the step.
    pub fn end_step(&self, step_id: i64) {
        self.relay(Relayed::Ended { step: step_id });
        self.deliver_end(step_id);
    }

    /// Tells this replica's followers of a step that it ended.
    pub(crate) fn deliver_end(&self, step_id: i64) {
        if let Some(sender) = self.steps().remove(&step_id) {
            let _ = sender.send(StepFeed::Ended);
        }
    }

    /// Forgets a step's channel once nobody follows it (a follower that joined after
    /// the step ended made one that no runner will close).
    pub fn release_step(&self, step_id: i64) {
        let mut steps = self.steps();
        if steps
            .get(&step_id)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            steps.remove(&step_id);
        }
    }

    /// Number of steps with a live channel (for tests and metrics).
    pub fn live_steps(&self) -> usize {
        self.steps().len()
    }

    /// Follows build and step status changes from now on.
    pub fn subscribe_events(&self) -> broadcast::Receiver<LiveEvent> {
        self.inner.events.subscribe()
    }

    /// Follows the status changes this replica makes, without those relayed from others.
    pub fn subscribe_own_events(&self) -> broadcast::Receiver<LiveEvent> {
        self.inner.own_events.subscribe()
    }

    /// Announces a status change already written to the store.
    pub fn publish_event(&self, event: LiveEvent) {
        self.relay(Relayed::Event(event.clone()));
        let _ = self.inner.own_events.send(event.clone());
        self.deliver_event(event);
    }

    /// Tells this replica's `/api/events` followers about a status change.
    pub(crate) fn deliver_event(&self, event: LiveEvent) {
        let _ = self.inner.events.send(event);
    }

    /// Wakes a runner's session: work was enqueued (call after the store commit).
    pub fn announce_work(&self) {
        self.relay(Relayed::Work);
        self.deliver_work();
    }

    /// Wakes this replica's runners.
    pub(crate) fn deliver_work(&self) {
        self.inner.work.notify_one();
    }

    /// Waits until `announce_work` is called (a call made while nobody waits is kept).
    pub async fn work_announced(&self) {
        self.inner.work.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(number: i64) -> LogLine {
        LogLine {
            number,
            stream: "stdout".into(),
            text: format!("line {number}"),
            elapsed_ms: 0,
        }
    }

    #[test]
    fn followers_get_lines_then_the_end_and_the_channel_is_forgotten() {
        let hub = Hub::new();
        let mut rx = hub.subscribe_step(7);
        hub.publish_lines(7, vec![line(1), line(2)]);
        hub.end_step(7);
        match rx.try_recv().unwrap() {
            StepFeed::Lines(lines) => assert_eq!(lines.len(), 2),
            StepFeed::Ended => panic!("lines come first"),
        }
        assert!(matches!(rx.try_recv().unwrap(), StepFeed::Ended));
        assert_eq!(hub.live_steps(), 0);
    }

    #[test]
    fn own_events_leave_out_those_of_other_replicas() {
        let hub = Hub::new();
        let (mut all, mut own) = (hub.subscribe_events(), hub.subscribe_own_events());
        let event = |build| LiveEvent {
            kind: EventKind::Build,
            repo_id: 1,
            repo: "acme/app".into(),
            build,
            step: None,
            status: RunStatus::Success,
            error: None,
        };
        hub.deliver_event(event(1)); // relayed from another replica
        hub.publish_event(event(2));
        assert_eq!(all.try_recv().unwrap().build, 1);
        assert_eq!(all.try_recv().unwrap().build, 2);
        assert_eq!(own.try_recv().unwrap().build, 2);
        assert!(own.try_recv().is_err(), "nothing else is this replica's");
    }

    #[test]
    fn a_channel_without_followers_is_released() {
        let hub = Hub::new();
        let rx = hub.subscribe_step(3);
        hub.release_step(3);
        assert_eq!(hub.live_steps(), 1, "a follower still listens");
        drop(rx);
        hub.release_step(3);
        assert_eq!(hub.live_steps(), 0);
    }
}
