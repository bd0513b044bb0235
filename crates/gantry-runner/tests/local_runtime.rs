//! The runtime on the local backend: real processes, real files.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use common::{
    TempDir, plan, plan_with, process_alive, read_pid, run, run_cancellable, step, wait_for_file,
    within, workflow_id,
};
use gantry_runner::{LocalBackend, PipelineStatus, RunConfig, Runtime, StepReport, StepStatus};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn local_runtime(dir: &TempDir) -> Runtime {
    Runtime::new(
        Arc::new(LocalBackend::in_directory(dir.path())),
        RunConfig::default(),
    )
}

/// A script line that waits (bounded) until `file` exists, failing if it never does.
fn await_file(file: &str) -> String {
    format!("i=0; while [ ! -e {file} ]; do i=$((i+1)); [ $i -lt 600 ] || exit 9; sleep 0.05; done")
}

fn span(report: &StepReport) -> (SystemTime, SystemTime) {
    (
        report.started.expect("started"),
        report.finished.expect("finished"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_steps_run_in_order() {
    within(async {
        let dir = TempDir::new("seq");
        let steps = vec![
            step("a", &["echo a >> order"], json!({})),
            step("b", &["echo b >> order"], json!({"needs": ["a"]})),
            step("c", &["echo c >> order"], json!({"needs": ["b"]})),
        ];
        let done = run(&local_runtime(&dir), &workflow_id("seq"), &plan(steps)).await;
        assert_eq!(done.outcome.status, PipelineStatus::Success);
        let order = std::fs::read_to_string(dir.path().join("order")).unwrap();
        assert_eq!(order, "a\nb\nc\n");
        let a = done.texts("a");
        assert!(a.len() == 1 && a[0].contains("echo a >> order"), "{a:?}");
        assert_eq!(done.report("c").exit_code, Some(0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_branches_overlap_in_time() {
    within(async {
        let dir = TempDir::new("overlap");
        let steps = vec![
            step(
                "left",
                &["touch left.on", &await_file("right.on")],
                json!({}),
            ),
            step(
                "right",
                &["touch right.on", &await_file("left.on")],
                json!({}),
            ),
            step("join", &["true"], json!({"needs": ["left", "right"]})),
        ];
        let done = run(&local_runtime(&dir), &workflow_id("overlap"), &plan(steps)).await;
        assert_eq!(
            done.outcome.status,
            PipelineStatus::Success,
            "{:?}",
            done.outcome
        );
        let (left, right) = (span(done.report("left")), span(done.report("right")));
        assert!(
            left.0 < right.1 && right.0 < left.1,
            "{left:?} and {right:?} overlap"
        );
        let join = span(done.report("join"));
        assert!(
            join.0 >= left.1 && join.0 >= right.1,
            "join starts after both"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_starts_when_its_needs_are_done_not_its_level() {
    within(async {
        let dir = TempDir::new("dag");
        // `slow` only ends once `after-quick` (one level below it) has run.
        let steps = vec![
            step("quick", &["true"], json!({})),
            step("slow", &[&await_file("after-quick.done")], json!({})),
            step(
                "after-quick",
                &["touch after-quick.done"],
                json!({"needs": ["quick"]}),
            ),
        ];
        let done = run(&local_runtime(&dir), &workflow_id("dag"), &plan(steps)).await;
        assert_eq!(
            done.outcome.status,
            PipelineStatus::Success,
            "{:?}",
            done.outcome
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ignored_failure_does_not_fail_the_pipeline() {
    within(async {
        let dir = TempDir::new("ignore");
        let steps = vec![
            step("flaky", &["exit 3"], json!({"failure": "ignore"})),
            step(
                "next",
                &["echo status=$CI_BUILD_STATUS"],
                json!({"needs": ["flaky"]}),
            ),
        ];
        let done = run(&local_runtime(&dir), &workflow_id("ignore"), &plan(steps)).await;
        let flaky = done.report("flaky");
        assert_eq!(
            (flaky.status, flaky.exit_code),
            (StepStatus::Failure, Some(3))
        );
        assert_eq!(flaky.error.as_deref(), Some("exit code 3"));
        assert_eq!(done.status("next"), StepStatus::Success);
        assert!(done.texts("next").contains(&"status=success"));
        assert_eq!(done.outcome.status, PipelineStatus::Success);
    })
    .await;
}

fn failure_plan(first: &str) -> gantry_pipeline::plan::Plan {
    plan(vec![
        step("build", &[first], json!({})),
        step("test", &["true"], json!({"needs": ["build"]})),
        step(
            "notify",
            &["echo status=$CI_BUILD_STATUS drone=$DRONE_BUILD_STATUS"],
            json!({"needs": ["build"], "run_on": {"success": false, "failure": true}}),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_on_failure_runs_only_after_a_failure() {
    within(async {
        let dir = TempDir::new("onfail");
        let rt = local_runtime(&dir);
        let failed = run(&rt, &workflow_id("onfail"), &failure_plan("exit 1")).await;
        assert_eq!(failed.outcome.status, PipelineStatus::Failure);
        assert_eq!(failed.status("test"), StepStatus::Skipped);
        assert_eq!(failed.status("notify"), StepStatus::Success);
        assert!(
            failed
                .texts("notify")
                .contains(&"status=failure drone=failure")
        );

        let passed = run(&rt, &workflow_id("onpass"), &failure_plan("true")).await;
        assert_eq!(passed.outcome.status, PipelineStatus::Success);
        assert_eq!(passed.status("test"), StepStatus::Success);
        assert_eq!(passed.status("notify"), StepStatus::Skipped);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_step_and_its_children() {
    within(async {
        let dir = TempDir::new("timeout");
        let script = [
            "echo $$ > shell.pid",
            "sleep 300 & echo $! > child.pid; wait",
        ];
        let steps = vec![step("stuck", &script, json!({"timeout_secs": 1}))];
        let done = run(&local_runtime(&dir), &workflow_id("timeout"), &plan(steps)).await;
        let stuck = done.report("stuck");
        assert_eq!(stuck.status, StepStatus::Failure);
        assert_eq!(stuck.error.as_deref(), Some("timed out after 1s"));
        let shell = read_pid(&dir.path().join("shell.pid"));
        assert!(!process_alive(shell), "the step's shell is gone");
        // The orphaned child is killed at once but reaped by init, so allow for that.
        common::wait_until_dead(read_pid(&dir.path().join("child.pid"))).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_retried() {
    within(async {
        let dir = TempDir::new("retry");
        let script = "if [ -e tried ]; then echo second try; else touch tried; exit 1; fi";
        let steps = vec![step("flaky", &[script], json!({"retries": 2}))];
        let done = run(&local_runtime(&dir), &workflow_id("retry"), &plan(steps)).await;
        let flaky = done.report("flaky");
        assert_eq!((flaky.status, flaky.attempt), (StepStatus::Success, 2));
        let texts = done.texts("flaky");
        assert!(
            texts.contains(&"gantry: attempt 1 of 3 failed (exit code 1); retrying"),
            "{texts:?}"
        );
        assert!(texts.contains(&"second try"));
        let numbers: Vec<u64> = done.lines("flaky").iter().map(|l| l.number).collect();
        assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_kills_processes_and_removes_the_temp_workspace() {
    within(async {
        let base = TempDir::new("cancel-base");
        let pids = TempDir::new("cancel-pids");
        let pid_file = pids.path().join("sleeper.pid");
        let backend = Arc::new(LocalBackend::with_temp_workspaces(base.path()));
        let rt = Runtime::new(Arc::clone(&backend) as _, RunConfig::default());
        let env = json!({"environment": {"PID_FILE": pid_file.to_str().unwrap()}});
        let steps = vec![
            step(
                "sleeper",
                &[
                    "touch in-workspace",
                    "echo $$ > $PID_FILE.tmp; mv $PID_FILE.tmp $PID_FILE; exec sleep 300",
                ],
                env,
            ),
            step("after", &["true"], json!({"needs": ["sleeper"]})),
        ];
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        let watched = pid_file.clone();
        tokio::spawn(async move {
            wait_for_file(&watched).await;
            trigger.cancel();
        });
        let id = workflow_id("cancel");
        let done = run_cancellable(&rt, &id, &plan(steps), cancel).await;
        assert_eq!(done.outcome.status, PipelineStatus::Cancelled);
        assert_eq!(done.status("sleeper"), StepStatus::Cancelled);
        assert_eq!(done.status("after"), StepStatus::Cancelled);
        assert!(
            !process_alive(read_pid(&pid_file)),
            "the step's process is gone"
        );
        let left: Vec<_> = std::fs::read_dir(base.path()).unwrap().collect();
        assert!(left.is_empty(), "workspace left behind: {left:?}");
        assert_eq!(backend.workspace_of(&id), None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_09_secrets_are_masked_including_multi_line_ones() {
    within(async {
        let dir = TempDir::new("secrets");
        let secrets = BTreeMap::from([
            ("token".to_owned(), "s3cr3t-t0ken".to_owned()),
            (
                "key".to_owned(),
                "-----BEGIN-----\nAAAABBBBCCCC\n-----END-----".to_owned(),
            ),
        ]);
        let config = RunConfig {
            secrets,
            ..RunConfig::default()
        };
        let rt = Runtime::new(Arc::new(LocalBackend::in_directory(dir.path())), config);
        let uses = json!({"secrets": [
            {"env": "TOKEN", "secret": "token"}, {"env": "KEY", "secret": "key"}
        ]});
        let script = [
            "echo \"token is $TOKEN\" >&2",
            "printf '%s\\n' \"$KEY\"",
            "test \"$TOKEN\" = s3cr3t-t0ken",
        ];
        let steps = vec![step("leaky", &script, uses)];
        let done = run(&rt, &workflow_id("secrets"), &plan(steps)).await;
        assert_eq!(
            done.outcome.status,
            PipelineStatus::Success,
            "{:?}",
            done.outcome
        );
        let texts = done.texts("leaky");
        assert!(texts.contains(&"token is ********"), "{texts:?}");
        for line in ["-----BEGIN-----", "AAAABBBBCCCC", "-----END-----"] {
            assert!(!done.all_text().contains(line), "{line} leaked");
        }
        assert_eq!(
            texts.iter().filter(|t| **t == "********").count(),
            3,
            "{texts:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_detached_steps_run_until_the_end_then_die() {
    within(async {
        let dir = TempDir::new("services");
        let service = step(
            "db",
            &[
                // Ready is announced before the pid file that the test step waits for.
                "echo db ready",
                "echo $$ > db.tmp; mv db.tmp db.pid",
                "exec sleep 300",
            ],
            json!({"kind": "service"}),
        );
        let steps = vec![
            step(
                "server",
                &[
                    "echo $$ > server.tmp; mv server.tmp server.pid",
                    "exec sleep 300",
                ],
                json!({"detach": true}),
            ),
            step(
                "test",
                &[&await_file("db.pid"), &await_file("server.pid")],
                json!({}),
            ),
        ];
        let done = run(
            &local_runtime(&dir),
            &workflow_id("services"),
            &plan_with(vec![service], steps),
        )
        .await;
        assert_eq!(
            done.outcome.status,
            PipelineStatus::Success,
            "{:?}",
            done.outcome
        );
        assert_eq!(done.status("db"), StepStatus::Success);
        assert_eq!(done.status("server"), StepStatus::Success);
        assert!(
            done.texts("db").contains(&"db ready"),
            "{:?}",
            done.texts("db")
        );
        for pid_file in ["db.pid", "server.pid"] {
            let pid = read_pid(&dir.path().join(pid_file));
            assert!(!process_alive(pid), "{pid_file}: still running");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_children_die_with_their_step() {
    within(async {
        let dir = TempDir::new("orphans");
        let steps = vec![step(
            "spawner",
            &["sleep 300 & echo $! > bg.pid"],
            json!({}),
        )];
        let done = run(&local_runtime(&dir), &workflow_id("orphans"), &plan(steps)).await;
        assert_eq!(done.outcome.status, PipelineStatus::Success);
        common::wait_until_dead(read_pid(&dir.path().join("bg.pid"))).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lines_are_cut_and_the_last_line_is_flushed() {
    within(async {
        let dir = TempDir::new("lines");
        let script = "head -c 100000 /dev/zero | tr '\\0' x; printf tail";
        let steps = vec![step("wide", &[script], json!({}))];
        let done = run(&local_runtime(&dir), &workflow_id("lines"), &plan(steps)).await;
        let texts = done.texts("wide");
        let lengths: Vec<usize> = texts.iter().skip(1).map(|t| t.len()).collect();
        assert_eq!(lengths, [65536, 100004 - 65536]);
        assert!(texts.last().unwrap().ends_with("xtail"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_steps_without_entrypoint_need_docker() {
    within(async {
        let dir = TempDir::new("plugin");
        let steps = vec![step(
            "publish",
            &[],
            json!({"kind": "plugin", "image": "plugins/docker"}),
        )];
        let done = run(&local_runtime(&dir), &workflow_id("plugin"), &plan(steps)).await;
        let error = done.report("publish").error.clone().unwrap_or_default();
        assert!(
            error.contains("plugin steps need the docker backend"),
            "{error}"
        );
    })
    .await;
}
