//! `Backend::prepare_step`: the runtime prepares the steps that become ready when the
//! running ones finish, with the environment they would start with, never more than the
//! concurrency limit, and destroys a prepared step that never starts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake::{Call, FakeBackend, StepScript};
use common::{plan, run, step, within, workflow_id};
use gantry_pipeline::plan::Plan;
use gantry_runner::{
    PipelineStatus, RunConfig, RunEvent, RunOutcome, Runtime, StepExit, StepStatus,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn runtime(backend: &Arc<FakeBackend>, concurrency: usize) -> Runtime {
    let config = RunConfig {
        concurrency,
        ..RunConfig::default()
    };
    Runtime::new(backend.clone(), config)
}

/// A step whose `wait_step` returns (with `code`) only once `other` was prepared: if the
/// runtime did not prepare `other` while this step runs, the test times out.
fn held_until_prepared(other: &str, code: i64) -> StepScript {
    StepScript {
        wait_for_prepare_of: Some(other.to_owned()),
        exit: StepExit {
            code,
            oom_killed: false,
        },
        ..StepScript::default()
    }
}

/// Runs `plan`, cancelling it once `until` is over.
async fn run_until(
    runtime: &Runtime,
    plan: &Plan,
    until: impl std::future::Future<Output = ()>,
) -> RunOutcome {
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel::<RunEvent>(16);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let id = workflow_id("until");
    let run = runtime.run(&id, plan, tx, cancel.clone());
    let canceller = async {
        until.await;
        cancel.cancel();
    };
    let (outcome, ()) = tokio::join!(run, canceller);
    drain.await.expect("drain");
    outcome
}

fn position(calls: &[Call], call: &Call) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("{call:?} not in {calls:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_step_is_prepared_while_its_need_runs_then_started() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        backend.script("build", held_until_prepared("test", 0));
        let steps = vec![
            step("build", &[], json!({})),
            step("test", &[], json!({"needs": ["build"]})),
        ];
        let done = run(&runtime(&backend, 8), &workflow_id("chain"), &plan(steps)).await;
        assert_eq!(done.outcome.status, PipelineStatus::Success);
        let calls = backend.calls();
        let prepared = position(&calls, &Call::Prepare("test".into()));
        assert!(prepared < position(&calls, &Call::Start("test".into())));
        assert!(!calls.contains(&Call::Prepare("build".into())), "{calls:?}");
        let status = |call: Call| backend.build_status(&call);
        assert_eq!(
            status(Call::Prepare("test".into())).as_deref(),
            Some("success")
        );
        assert_eq!(
            status(Call::Start("test".into())).as_deref(),
            Some("success")
        );
    })
    .await;
}

/// Preparation begins as soon as the step it needs is running, before the backend finished
/// starting it (on Docker a create did not measurably slow a concurrent start, and the
/// start is the longest part of a short step). `build`'s start returns only once `test`
/// was prepared; if preparing waited for it, this would hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_is_prepared_while_its_need_is_still_starting() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        let slow_start = StepScript {
            start_held: true,
            ..StepScript::default()
        };
        backend.script("build", slow_start);
        let steps = vec![
            step("build", &[], json!({})),
            step("test", &[], json!({"needs": ["build"]})),
        ];
        let runtime = runtime(&backend, 8);
        let id = workflow_id("while-starting");
        let p = plan(steps);
        let release = async {
            while !backend.calls().contains(&Call::Prepare("test".into())) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            backend.release_starts();
        };
        let (done, ()) = tokio::join!(run(&runtime, &id, &p), release);
        assert_eq!(done.outcome.status, PipelineStatus::Success);
        // `build`'s start was asked for; `test`'s preparation and that start run at once,
        // so which of the two the backend records first is up to the scheduler (the hang
        // guard above is what shows preparing did not wait for the start to finish).
        let calls = backend.calls();
        position(&calls, &Call::Start("build".into())); // panics when missing
        position(&calls, &Call::Prepare("test".into()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_step_skipped_after_a_failure_is_destroyed_never_started() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        backend.script("build", held_until_prepared("deploy", 1));
        let steps = vec![
            step("build", &[], json!({})),
            step("deploy", &[], json!({"needs": ["build"]})),
        ];
        let done = run(&runtime(&backend, 8), &workflow_id("skip"), &plan(steps)).await;
        assert_eq!(done.status("deploy"), StepStatus::Skipped);
        let calls = backend.calls();
        assert!(!calls.contains(&Call::Start("deploy".into())), "{calls:?}");
        let destroyed = position(&calls, &Call::Destroy("deploy".into()));
        assert!(destroyed > position(&calls, &Call::Prepare("deploy".into())));
        assert_eq!(calls.last(), Some(&Call::DestroyWorkflow));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_destroys_a_prepared_step_that_never_started() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        let hang = StepScript {
            hang: true,
            ..StepScript::default()
        };
        backend.script("long", hang);
        let steps = vec![
            step("long", &[], json!({})),
            step("after", &[], json!({"needs": ["long"]})),
        ];
        let outcome = run_until(&runtime(&backend, 8), &plan(steps), async {
            while !backend.calls().contains(&Call::Prepare("after".into())) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert_eq!(outcome.status, PipelineStatus::Cancelled);
        let calls = backend.calls();
        assert!(!calls.contains(&Call::Start("after".into())), "{calls:?}");
        assert!(calls.contains(&Call::Destroy("after".into())), "{calls:?}");
        assert_eq!(calls.last(), Some(&Call::DestroyWorkflow));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_preparation_does_not_stop_the_step() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        backend.script("build", held_until_prepared("test", 0));
        let broken = StepScript {
            prepare_error: Some("no room to prepare".into()),
            ..StepScript::default()
        };
        backend.script("test", broken);
        let steps = vec![
            step("build", &[], json!({})),
            step("test", &[], json!({"needs": ["build"]})),
        ];
        let done = run(
            &runtime(&backend, 8),
            &workflow_id("prep-error"),
            &plan(steps),
        )
        .await;
        assert_eq!(done.status("test"), StepStatus::Success);
        assert!(done.report("test").error.is_none());
    })
    .await;
}

/// While `long` runs nothing starts, so the two prepared steps stay prepared: a third
/// preparation would break the limit. (It would be spawned in the same pass as the two
/// others, so the pause below is ample for it to show.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_steps_are_prepared_than_the_concurrency_limit() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        let hang = StepScript {
            hang: true,
            ..StepScript::default()
        };
        backend.script("long", hang);
        let mut steps = vec![step("long", &[], json!({}))];
        for i in 1..=5 {
            steps.push(step(&format!("b{i}"), &[], json!({"needs": ["long"]})));
        }
        let outcome = run_until(&runtime(&backend, 2), &plan(steps), async {
            while !backend.calls().contains(&Call::Prepare("b2".into())) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        })
        .await;
        assert_eq!(outcome.status, PipelineStatus::Cancelled);
        // Prepared concurrently: in either order.
        let mut prepared: Vec<String> = backend
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Prepare(name) => Some(name),
                _ => None,
            })
            .collect();
        prepared.sort();
        assert_eq!(prepared, ["b1", "b2"]);
        assert_eq!(backend.prepared_peak(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_steps_that_would_run_and_reach_the_backend_are_prepared() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        // `plain` comes last in plan order: once it is prepared, the others were judged.
        backend.script("root", held_until_prepared("plain", 0));
        let steps = vec![
            step("root", &[], json!({})),
            step("gate", &[], json!({"needs": ["root"], "kind": "approval"})),
            step(
                "secretive",
                &[],
                json!({"needs": ["root"], "secrets": [{"secret": "nope", "env": "NOPE"}]}),
            ),
            step(
                "rescue",
                &[],
                json!({"needs": ["root"], "run_on": {"success": false, "failure": true}}),
            ),
            step("plain", &[], json!({"needs": ["root"]})),
        ];
        run(&runtime(&backend, 8), &workflow_id("which"), &plan(steps)).await;
        let prepared: Vec<Call> = backend
            .calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Prepare(_)))
            .collect();
        assert_eq!(prepared, [Call::Prepare("plain".into())]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_starts_with_the_status_at_its_start_not_at_its_preparation() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        backend.script("fails", held_until_prepared("report", 1));
        backend.script("works", held_until_prepared("report", 0));
        let always = json!({"success": true, "failure": true});
        let steps = vec![
            step("fails", &[], json!({})),
            step("works", &[], json!({})),
            step(
                "report",
                &[],
                json!({"needs": ["fails", "works"], "run_on": always}),
            ),
        ];
        let done = run(&runtime(&backend, 8), &workflow_id("status"), &plan(steps)).await;
        assert_eq!(done.status("report"), StepStatus::Success);
        let status = |call: Call| backend.build_status(&call);
        assert_eq!(
            status(Call::Prepare("report".into())).as_deref(),
            Some("success")
        );
        assert_eq!(
            status(Call::Start("report".into())).as_deref(),
            Some("failure")
        );
    })
    .await;
}
