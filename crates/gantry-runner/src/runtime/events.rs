//! The run's side of the event channel: how long a send may wait for a slow consumer.
//!
//! Until the run is cancelled, every send waits for room: a slow consumer slows the run
//! down (its steps' output waits in their pipes), which bounds what the run holds in
//! memory. Cancellation must not depend on the consumer, so from then on no send waits
//! for long: a final step report waits for room until [`RunEvents::grace`] after the first
//! send that found the channel full since the cancel (one deadline for the whole run, so
//! the delay does not add up step by step); any other event (log lines, a running report)
//! is sent only if there is room at once.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::report::RunEvent;

/// Sends a run's events, waiting for room as the module docs describe.
pub(super) struct RunEvents {
    tx: mpsc::Sender<RunEvent>,
    cancel: CancellationToken,
    grace: Duration,
    /// When final reports stop waiting for room; set once the run is cancelled.
    deadline: OnceLock<Instant>,
}

impl RunEvents {
    pub(super) fn new(
        tx: mpsc::Sender<RunEvent>,
        cancel: CancellationToken,
        grace: Duration,
    ) -> Self {
        Self {
            tx,
            cancel,
            grace,
            deadline: OnceLock::new(),
        }
    }

    /// Sends `event`, or drops it if the consumer is gone (or, after a cancel, too slow).
    pub(super) async fn send(&self, event: RunEvent) {
        let is_final = matches!(&event, RunEvent::Step(report) if report.status.is_final());
        if let Some(permit) = self.room(is_final).await {
            permit.send(event);
        }
    }

    /// Room for one event: `None` when it is to be dropped. Dropping this future while it
    /// waits loses nothing, so a caller can keep its event for a later try.
    pub(super) async fn room(&self, is_final: bool) -> Option<mpsc::Permit<'_, RunEvent>> {
        match self.tx.try_reserve() {
            Ok(permit) => return Some(permit),
            Err(mpsc::error::TrySendError::Closed(())) => return None,
            Err(mpsc::error::TrySendError::Full(())) => {}
        }
        tokio::select! {
            biased;
            permit = self.tx.reserve() => return permit.ok(),
            () = self.cancel.cancelled() => {}
        }
        if !is_final {
            return None;
        }
        let deadline = *self.deadline.get_or_init(|| Instant::now() + self.grace);
        match tokio::time::timeout_at(deadline, self.tx.reserve()).await {
            Ok(permit) => permit.ok(),
            Err(_) => {
                tracing::debug!(
                    "the event consumer is not reading: a final step report was dropped"
                );
                None
            }
        }
    }
}
