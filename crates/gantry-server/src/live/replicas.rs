//! Server replicas on one Postgres share their live hubs: what one publishes (log lines,
//! step ends, build and step events, new work) and the approval decisions it records
//! reach the followers, runners and waiting approvers of the others, through the store's
//! `LISTEN`/`NOTIFY`.
//!
//! Notifications carry pointers, not data: "lines `first..=last` of step S are stored".
//! A replica with a follower of S reads those lines from the store and delivers them like
//! its own, so the follower's no-gap, no-duplicate rule (`stream.rs`) holds across
//! replicas. A notification lost while the listening connection reconnects costs only
//! latency: followers re-read the store every 2 s and runners poll the queue.
//!
//! A build cancelled on one replica is cancelled on the others: its `killed` event makes
//! them send `cancel` to their runners (the built-in one included). When notifications
//! may have been lost (a gap, or the listening connection failed), every lease a session
//! cached is checked in the store again before its runner's next message is stored.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gantry_store::{
    Approval, ApprovalDecision, MAX_LOG_PAGE, MAX_NOTIFY_PAYLOAD, Notification, NotifyListener,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use super::hub::LiveEvent;
use crate::builds::DecidedApproval;
use crate::state::AppState;

/// Longest error text relayed with an event (the store keeps the whole of it).
const MAX_RELAYED_ERROR: usize = 2_000;
/// Decisions remembered to tell those received from other replicas from this one's own.
const REMEMBERED_DECISIONS: usize = 1_024;
/// Publications sent as one batch at most (folding looks no further).
const OUTBOX_BATCH: usize = 256;
/// Pause after a failed listen before trying again.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// A publication of this replica's hub, on its way to the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "relay", rename_all = "snake_case")]
pub(crate) enum Relayed {
    /// Lines `first..=last` of a step are stored.
    Lines {
        /// Step id.
        step: i64,
        /// First line number.
        first: i64,
        /// Last line number.
        last: i64,
    },
    /// A step ended: no more lines will come.
    Ended {
        /// Step id.
        step: i64,
    },
    /// A build or step status changed.
    Event(LiveEvent),
    /// Work was enqueued.
    Work,
    /// An approval step was decided.
    Decision {
        /// Step id.
        step: i64,
        /// Who decided.
        by: String,
        /// When.
        at: i64,
        /// `approved` or `rejected`.
        approved: bool,
    },
}

/// What goes over the wire: the sending replica and its publication.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    origin: u64,
    #[serde(flatten)]
    message: Relayed,
}

/// Approval steps whose decision came from another replica (not to be sent back).
type Received = Arc<Mutex<VecDeque<i64>>>;

/// Links this replica's hub to the others' when the store can notify (Postgres); on
/// SQLite there is only one replica and nothing happens. Call before anything publishes.
pub async fn link_replicas(state: &AppState) -> anyhow::Result<()> {
    let Some(listener) = state.store.listen().await? else {
        return Ok(());
    };
    let origin = random_origin()?;
    let (relay, outbox) = mpsc::unbounded_channel();
    state.live.relay_to(relay.clone());
    let received = Received::default();
    tokio::spawn(send_relayed(state.clone(), origin, outbox));
    tokio::spawn(forward_decisions(
        state.clone(),
        state.approvals.subscribe(),
        relay,
        Arc::clone(&received),
    ));
    tokio::spawn(receive(state.clone(), origin, listener, received));
    tracing::info!("live logs, events and decisions are shared with other replicas");
    Ok(())
}

fn random_origin() -> anyhow::Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// Sends the hub's publications one after another, so they arrive in order; what waits
/// in the outbox meanwhile goes as one batch, consecutive line pointers of a step folded.
async fn send_relayed(state: AppState, origin: u64, mut outbox: mpsc::UnboundedReceiver<Relayed>) {
    loop {
        let first = tokio::select! {
            message = outbox.recv() => match message {
                Some(message) => message,
                None => return,
            },
            () = state.shutdown.cancelled() => return,
        };
        for message in take_batch(first, &mut outbox) {
            let Some(payload) = encode(origin, message) else {
                continue;
            };
            if let Err(error) = state.store.notify(&payload).await
                && !state.shutdown.is_cancelled()
            {
                tracing::warn!(error = %error, "telling the other replicas failed; their followers catch up from the store");
            }
        }
    }
}

/// `first` and what waits behind it (at most `OUTBOX_BATCH`), in order, each line
/// pointer folded into the step's previous one when that is the step's latest message
/// and the lines follow on (many busy steps interleave their batches).
fn take_batch(first: Relayed, outbox: &mut mpsc::UnboundedReceiver<Relayed>) -> Vec<Relayed> {
    let mut batch = vec![first];
    while batch.len() < OUTBOX_BATCH {
        let Ok(message) = outbox.try_recv() else {
            break;
        };
        if let Relayed::Lines { step, first, last } = message {
            let latest = batch.iter_mut().rev().find(|m| step_of(m) == Some(step));
            if let Some(Relayed::Lines { last: end, .. }) = latest
                && first == end.saturating_add(1)
            {
                *end = last;
                continue;
            }
        }
        batch.push(message);
    }
    batch
}

/// The step a line pointer or a step end is about.
fn step_of(message: &Relayed) -> Option<i64> {
    match message {
        Relayed::Lines { step, .. } | Relayed::Ended { step } => Some(*step),
        _ => None,
    }
}

/// The payload, with a long error cut short; None (and a debug line) if it cannot fit.
fn encode(origin: u64, mut message: Relayed) -> Option<String> {
    if let Relayed::Event(LiveEvent {
        error: Some(error), ..
    }) = &mut message
        && error.len() > MAX_RELAYED_ERROR
    {
        let mut cut = MAX_RELAYED_ERROR;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
        error.push('…');
    }
    let payload = serde_json::to_string(&Envelope { origin, message }).ok()?;
    if payload.len() > MAX_NOTIFY_PAYLOAD {
        tracing::debug!(
            payload.bytes = payload.len(),
            "a publication too large to relay was left to the store"
        );
        return None;
    }
    Some(payload)
}

/// Relays the decisions recorded on this replica (those received from others excepted).
async fn forward_decisions(
    state: AppState,
    mut board: broadcast::Receiver<DecidedApproval>,
    relay: mpsc::UnboundedSender<Relayed>,
    received: Received,
) {
    loop {
        let decided = tokio::select! {
            decided = board.recv() => match decided {
                Ok(decided) => decided,
                // A missed decision is still in the store: the approver reads it when
                // its own board lags, and a restarted build reads it first.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = state.shutdown.cancelled() => return,
        };
        let from_elsewhere = {
            let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
            let index = received.iter().position(|&s| s == decided.step_id);
            index.and_then(|i| received.remove(i)).is_some()
        };
        if !from_elsewhere {
            let _ = relay.send(Relayed::Decision {
                step: decided.step_id,
                by: decided.approval.by,
                at: decided.approval.at,
                approved: decided.approval.decision == ApprovalDecision::Approved,
            });
        }
    }
}

/// Delivers what the other replicas publish, until the server stops.
async fn receive(state: AppState, origin: u64, mut listener: NotifyListener, received: Received) {
    loop {
        let notification = tokio::select! {
            notification = listener.recv() => notification,
            () = state.shutdown.cancelled() => return,
        };
        match notification {
            Ok(Notification::Payload(payload)) => {
                match serde_json::from_str::<Envelope>(&payload) {
                    Ok(envelope) if envelope.origin == origin => {}
                    Ok(envelope) => deliver(&state, envelope.message, &received).await,
                    Err(error) => {
                        tracing::debug!(error = %error, "ignored a notification of another form")
                    }
                }
            }
            // Notifications may be lost: runners look at the queue again, and a `killed`
            // event among them must not leave a cancelled build's lease trusted.
            Ok(Notification::Gap) => {
                crate::runners::forget_all_leases();
                state.live.deliver_work();
            }
            Err(error) => {
                if state.shutdown.is_cancelled() {
                    return;
                }
                crate::runners::forget_all_leases();
                tracing::warn!(error = %error, "listening to the other replicas failed; retrying");
                tokio::time::sleep(LISTEN_RETRY).await;
            }
        }
    }
}

/// Hands one publication of another replica to this one's followers and runners.
async fn deliver(state: &AppState, message: Relayed, received: &Received) {
    match message {
        Relayed::Lines { step, first, last } => deliver_lines(state, step, first, last).await,
        Relayed::Ended { step } => state.live.deliver_end(step),
        // A cancel reaches this replica's runners (the built-in one too) from the event.
        Relayed::Event(event) => state.live.deliver_event(event),
        Relayed::Work => state.live.deliver_work(),
        Relayed::Decision {
            step,
            by,
            at,
            approved,
        } => {
            {
                let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
                if received.len() == REMEMBERED_DECISIONS {
                    received.pop_front();
                }
                received.push_back(step);
            }
            let decision = if approved {
                ApprovalDecision::Approved
            } else {
                ApprovalDecision::Rejected
            };
            state.approvals.announce(DecidedApproval {
                step_id: step,
                approval: Approval { by, at, decision },
            });
        }
    }
}

/// Reads the lines a pointer names and delivers them, when someone here follows the step.
async fn deliver_lines(state: &AppState, step: i64, first: i64, last: i64) {
    let mut after = first.saturating_sub(1);
    while after < last && state.live.follows_step(step) {
        let page =
            u32::try_from(last.saturating_sub(after)).map_or(MAX_LOG_PAGE, |n| n.min(MAX_LOG_PAGE));
        let lines = match state.store.read_logs(step, Some(after), page).await {
            Ok(lines) => lines,
            Err(error) => {
                // The follower's periodic re-read of the store fills the gap.
                tracing::debug!(step.id = step, error = %error, "reading relayed lines failed");
                return;
            }
        };
        let Some(end) = lines.last().map(|l| l.number) else {
            return;
        };
        state.live.deliver_lines(step, lines);
        after = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::EventKind;
    use gantry_store::RunStatus;

    #[test]
    fn line_pointers_fold_per_step_through_interleaving_and_never_past_an_end() {
        let lines = |step, first, last| Relayed::Lines { step, first, last };
        let (tx, mut rx) = mpsc::unbounded_channel();
        for message in [
            lines(2, 1, 3),
            lines(1, 6, 9),
            lines(2, 4, 4),
            lines(1, 10, 10),
            Relayed::Ended { step: 1 },
            lines(1, 11, 12),
            lines(2, 9, 9), // not next to 4: sent as it is
        ] {
            tx.send(message).unwrap();
        }
        let batch = take_batch(lines(1, 1, 5), &mut rx);
        let expected = [
            lines(1, 1, 10),
            lines(2, 1, 4),
            Relayed::Ended { step: 1 },
            lines(1, 11, 12),
            lines(2, 9, 9),
        ];
        assert_eq!(batch, expected);
    }

    #[test]
    fn a_long_error_is_cut_to_fit_and_the_payload_reads_back() {
        let event = LiveEvent {
            kind: EventKind::Build,
            repo_id: 1,
            repo: "acme/app".into(),
            build: 7,
            step: None,
            status: RunStatus::Error,
            error: Some("é".repeat(10_000)),
        };
        let payload = encode(42, Relayed::Event(event)).expect("fits once cut");
        assert!(payload.len() <= MAX_NOTIFY_PAYLOAD);
        let envelope: Envelope = serde_json::from_str(&payload).unwrap();
        assert_eq!(envelope.origin, 42);
        let Relayed::Event(back) = envelope.message else {
            panic!("an event: {payload}");
        };
        assert!(back.error.unwrap().len() <= MAX_RELAYED_ERROR + '…'.len_utf8());
    }
}
