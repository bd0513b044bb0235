//! Pipelines run by the real `Runtime` on the Docker backend: ordering, DAG concurrency,
//! services, the shared workspace, exit codes, timeouts, cancellation, and containers
//! prepared ahead of their start that never start.

mod common;

use std::time::Duration;

use std::sync::Arc;

use common::gated::Gated;
use common::{TestEnv, lines_of, plan, run_plan, service, step, step_after, within_timeout};
use gantry_runner::{PipelineStatus, RunConfig, StepReport, StepStatus};
use tokio_util::sync::CancellationToken;

fn report<'a>(reports: &'a [StepReport], name: &str) -> &'a StepReport {
    reports
        .iter()
        .find(|r| r.step == name)
        .unwrap_or_else(|| panic!("no report for {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_steps_run_in_order_and_share_the_workspace() {
    let Some(env) = TestEnv::new("sequential").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let p = plan(
            vec![],
            vec![
                step("first", &["echo first >> order"]),
                step_after("second", &["first"], &["echo second >> order"]),
                step_after("third", &["second"], &["echo third >> order", "cat order"]),
            ],
        );
        let (outcome, events) = env.run(&id, &p).await;
        assert_eq!(outcome.status, PipelineStatus::Success, "{outcome:?}");
        assert_eq!(
            lines_of(&events, "third"),
            [
                "+ echo third >> order",
                "+ cat order",
                "first",
                "second",
                "third"
            ]
        );
        let steps = &outcome.steps;
        for (before, after) in [("first", "second"), ("second", "third")] {
            let done = report(steps, before).finished.expect("finished");
            let began = report(steps, after).started.expect("started");
            assert!(done <= began, "{after} started before {before} finished");
        }
    })
    .await;
    env.assert_nothing_left().await;
}

/// Each branch announces itself in the workspace and waits to see the other: they can
/// only both succeed if they run at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dag_branches_really_overlap() {
    let Some(env) = TestEnv::new("dag-overlap").await else {
        return;
    };
    let rendezvous = |me: &str, other: &str| {
        format!(
            "touch {me}.here; for i in $(seq 1 200); do [ -e {other}.here ] && exit 0; \
             sleep 0.1; done; echo never saw {other}; exit 1"
        )
    };
    within_timeout(async {
        let id = env.workflow("w");
        let p = plan(
            vec![],
            vec![
                step("root", &["true"]),
                step_after("left", &["root"], &[&rendezvous("left", "right")]),
                step_after("right", &["root"], &[&rendezvous("right", "left")]),
                step_after("join", &["left", "right"], &["ls left.here right.here"]),
            ],
        );
        let (outcome, _) = env.run(&id, &p).await;
        assert_eq!(outcome.status, PipelineStatus::Success, "{outcome:?}");
        let (left, right) = (
            report(&outcome.steps, "left"),
            report(&outcome.steps, "right"),
        );
        let (ls, le) = (left.started.expect("start"), left.finished.expect("end"));
        let (rs, re) = (right.started.expect("start"), right.finished.expect("end"));
        assert!(
            ls < re && rs < le,
            "branches did not overlap: {left:?} {right:?}"
        );
        let join_start = report(&outcome.steps, "join").started.expect("start");
        assert!(
            join_start >= le.max(re),
            "join started before both branches ended"
        );
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_is_reached_by_its_name() {
    let Some(env) = TestEnv::new("service").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let web = service(
            "web",
            &[
                "mkdir -p /www && echo hello-from-web > /www/index.html",
                "httpd -f -p 8080 -h /www",
            ],
        );
        let fetch = step(
            "fetch",
            &[
                "for i in $(seq 1 100); do wget -q -O - http://web:8080/ && exit 0; sleep 0.1; \
               done; exit 1",
            ],
        );
        let (outcome, events) = env.run(&id, &plan(vec![web], vec![fetch])).await;
        assert_eq!(outcome.status, PipelineStatus::Success, "{outcome:?}");
        assert!(
            lines_of(&events, "fetch").contains(&"hello-from-web".to_string()),
            "{:?}",
            lines_of(&events, "fetch")
        );
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_reports_its_exit_code() {
    let Some(env) = TestEnv::new("runtime-exit").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let (outcome, _) = env
            .run(&id, &plan(vec![], vec![step("fail", &["exit 3"])]))
            .await;
        assert_eq!(outcome.status, PipelineStatus::Failure);
        let fail = report(&outcome.steps, "fail");
        assert_eq!(
            (fail.status, fail.exit_code),
            (StepStatus::Failure, Some(3))
        );
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_is_named_in_the_step_error() {
    let Some(env) = TestEnv::new("runtime-oom").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let mut hog = step("hog", &[r#"x=$(head -c 64000000 /dev/zero | tr "\0" x)"#]);
        hog.resources.memory = Some(16 * 1024 * 1024);
        let (outcome, _) = env.run(&id, &plan(vec![], vec![hog])).await;
        let hog = report(&outcome.steps, "hog");
        assert_eq!(hog.status, StepStatus::Failure);
        let error = hog.error.clone().unwrap_or_default();
        assert!(error.contains("out of memory"), "{error}");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_step_is_killed_and_removed() {
    let Some(env) = TestEnv::new("timeout").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let mut slow = step("slow", &["sleep 600"]);
        slow.timeout_secs = Some(1);
        let (outcome, _) = env.run(&id, &plan(vec![], vec![slow])).await;
        let slow = report(&outcome.steps, "slow");
        assert_eq!(slow.status, StepStatus::Failure);
        let error = slow.error.clone().unwrap_or_default();
        assert!(error.contains("timed out"), "{error}");
    })
    .await;
    // `sleep 600` finished within the test's timeout: its container was killed.
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_stops_and_removes_everything() {
    let Some(env) = TestEnv::new("cancel").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let p = plan(
            vec![service("idle", &["sleep 600"])],
            vec![
                step("long", &["sleep 600"]),
                step_after("after", &["long"], &["true"]),
            ],
        );
        let cancel = CancellationToken::new();
        let canceller = {
            let (cancel, env_backend, label) = (
                cancel.clone(),
                env.backend.clone(),
                format!("gantry.test={}", env.test_id),
            );
            tokio::spawn(async move {
                // Cancel once the long step runs and the container of the step after it
                // was prepared (created, never to be started).
                loop {
                    let objects = common::leftovers_labelled(&env_backend, &label).await;
                    let exists = |step: &str| objects.iter().any(|o| o.ends_with(step));
                    if exists("-long") && exists("-after") {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                cancel.cancel();
            })
        };
        let (outcome, _) = env.run_with(&id, &p, RunConfig::default(), cancel).await;
        canceller.await.expect("canceller");
        assert_eq!(outcome.status, PipelineStatus::Cancelled, "{outcome:?}");
        assert_eq!(report(&outcome.steps, "long").status, StepStatus::Cancelled);
        assert_eq!(
            report(&outcome.steps, "after").status,
            StepStatus::Cancelled
        );
    })
    .await;
    env.assert_nothing_left().await;
}

/// `deploy` is prepared while `build` runs (the gate holds `build` until it is), then
/// skipped because `build` fails: its created container must not outlive the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_step_skipped_after_a_failure_leaves_nothing() {
    let Some(env) = TestEnv::new("skip-prepared").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let p = plan(
            vec![],
            vec![
                step("build", &["exit 1"]),
                step_after("deploy", &["build"], &["echo deployed"]),
            ],
        );
        let gated = Arc::new(Gated::new(env.backend.clone(), "build", "deploy"));
        let (outcome, _) = run_plan(
            gated.clone(),
            &id,
            &p,
            RunConfig::default(),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(gated.prepare_outcome(), Some(Ok(())));
        assert_eq!(outcome.status, PipelineStatus::Failure);
        assert_eq!(report(&outcome.steps, "deploy").status, StepStatus::Skipped);
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_step_runs_again_under_the_same_name() {
    let Some(env) = TestEnv::new("retry").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let mut flaky = step(
            "flaky",
            &["if [ -e tried ]; then echo second-attempt; else touch tried; exit 1; fi"],
        );
        flaky.retries = 1;
        let (outcome, events) = env.run(&id, &plan(vec![], vec![flaky])).await;
        assert_eq!(outcome.status, PipelineStatus::Success, "{outcome:?}");
        let flaky = report(&outcome.steps, "flaky");
        assert_eq!((flaky.attempt, flaky.exit_code), (2, Some(0)));
        assert!(lines_of(&events, "flaky").contains(&"second-attempt".to_string()));
    })
    .await;
    env.assert_nothing_left().await;
}
