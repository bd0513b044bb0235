//! `/metrics` in the Prometheus text format, written by hand: a few counters and
//! histograms do not need an exporter crate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use tokio::sync::broadcast::error::RecvError;

use crate::live::{EventKind, LiveEvent};
use crate::state::AppState;

/// Bucket bounds of the duration histograms, in seconds.
const BUCKETS: [f64; 10] = [
    0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
];

/// Counters and histograms the server updates as work happens.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    builds_created: BTreeMap<String, u64>,
    builds_finished: BTreeMap<String, u64>,
    steps_finished: BTreeMap<String, u64>,
    hooks: BTreeMap<String, u64>,
    build_seconds: Histogram,
    step_seconds: Histogram,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, slot) in BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *slot += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, n) in BUCKETS.iter().zip(self.buckets.iter()) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

impl Metrics {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A build was created with this initial status.
    pub fn build_created(&self, status: &str) {
        *self
            .counts()
            .builds_created
            .entry(status.into())
            .or_default() += 1;
    }

    /// A build reached a final status, after running this long if it ran.
    pub fn build_finished(&self, status: &str, seconds: Option<f64>) {
        let mut counts = self.counts();
        *counts.builds_finished.entry(status.into()).or_default() += 1;
        if let Some(seconds) = seconds {
            counts.build_seconds.observe(seconds);
        }
    }

    /// A step reached a final status, after running this long if it ran.
    pub fn step_finished(&self, status: &str, seconds: Option<f64>) {
        let mut counts = self.counts();
        *counts.steps_finished.entry(status.into()).or_default() += 1;
        if let Some(seconds) = seconds {
            counts.step_seconds.observe(seconds);
        }
    }

    /// A webhook was answered with this outcome (`accepted`, `ignored`, `replayed`,
    /// `rejected`).
    pub fn hook(&self, outcome: &str) {
        *self.counts().hooks.entry(outcome.into()).or_default() += 1;
    }

    /// The text exposition, with the queue depth read at scrape time.
    pub fn render(&self, queue_depth: Option<usize>) -> String {
        let counts = self.counts();
        let mut out = String::new();
        write_family(
            &mut out,
            "gantry_builds_created_total",
            "Builds created, by initial status.",
            "status",
            &counts.builds_created,
        );
        write_family(
            &mut out,
            "gantry_builds_finished_total",
            "Builds finished, by final status.",
            "status",
            &counts.builds_finished,
        );
        write_family(
            &mut out,
            "gantry_steps_finished_total",
            "Steps finished, by final status.",
            "status",
            &counts.steps_finished,
        );
        write_family(
            &mut out,
            "gantry_webhooks_total",
            "Webhooks answered, by outcome.",
            "outcome",
            &counts.hooks,
        );
        counts
            .build_seconds
            .write(&mut out, "gantry_build_duration_seconds", "Build run time.");
        counts
            .step_seconds
            .write(&mut out, "gantry_step_duration_seconds", "Step run time.");
        if let Some(depth) = queue_depth {
            let _ = writeln!(
                out,
                "# HELP gantry_queue_depth Workflows waiting for a runner.\n# TYPE gantry_queue_depth gauge\ngantry_queue_depth {depth}"
            );
        }
        out
    }
}

fn write_family(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &BTreeMap<String, u64>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, n) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}

/// Counts finished builds and steps from the live status events, until shutdown: the
/// runner announces every status it writes, so the counters need no hook in the runner.
pub fn follow(state: AppState) {
    // Only this replica's own changes: summed over replicas, each build counts once.
    let mut events = state.live.subscribe_own_events();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                () = state.shutdown.cancelled() => return,
            };
            match event {
                Ok(event) if event.status.is_terminal() => record_finished(&state, &event).await,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Adds a finished build or step, with its run time when it ran.
async fn record_finished(state: &AppState, event: &LiveEvent) {
    let Ok(Some(detail)) = state
        .store
        .build_by_number(event.repo_id, event.build)
        .await
    else {
        return;
    };
    let seconds = |started: Option<i64>, finished: Option<i64>| match (started, finished) {
        (Some(s), Some(f)) if f >= s => Some((f - s) as f64 / 1000.0),
        _ => None,
    };
    let status = event.status.as_str();
    match (&event.kind, &event.step) {
        (EventKind::Build, _) => {
            let b = &detail.build;
            state
                .metrics
                .build_finished(status, seconds(b.started_at, b.finished_at));
        }
        (EventKind::Step, Some(name)) => {
            let step = detail
                .workflows
                .iter()
                .flat_map(|w| &w.steps)
                .find(|s| &s.name == name);
            let took = step.and_then(|s| seconds(s.started_at, s.finished_at));
            state.metrics.step_finished(status, took);
        }
        (EventKind::Step, None) => {}
    }
}

/// `GET /metrics`: aggregate figures only, no repository names, so it needs no token.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let depth = match state.store.list_pending().await {
        Ok(items) => Some(items.len()),
        Err(error) => {
            tracing::warn!(error = %error, "queue depth unavailable for /metrics");
            None
        }
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(depth),
    )
}
