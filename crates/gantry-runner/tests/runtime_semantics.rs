//! Runtime semantics against a scripted backend: scheduling, statuses, masking, approvals,
//! cleanup calls.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use common::fake::{Call, FakeBackend, StepScript};
use common::{plan, plan_with, run, run_cancellable, step, within, workflow_id};
use gantry_pipeline::plan::Step;
use gantry_runner::{
    ApprovalDecision, Approver, PipelineStatus, RunConfig, RunEvent, Runtime, StepExit, StepStatus,
    WorkflowId,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn runtime(backend: &Arc<FakeBackend>, secrets: &[(&str, &str)]) -> Runtime {
    let config = RunConfig {
        secrets: secrets
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        ..RunConfig::default()
    };
    Runtime::new(Arc::clone(backend) as _, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_is_respected_and_reached() {
    within(async {
        let backend = Arc::new(FakeBackend::with_gate(2));
        let steps = (0..6)
            .map(|i| step(&format!("s{i}"), &[], json!({})))
            .collect();
        let config = RunConfig {
            concurrency: 2,
            ..RunConfig::default()
        };
        let runtime = Runtime::new(Arc::clone(&backend) as _, config);
        let done = run(&runtime, &workflow_id("limit"), &plan(steps)).await;
        assert_eq!(done.outcome.status, PipelineStatus::Success);
        assert_eq!(
            backend.peak(),
            2,
            "never more than 2 at once, and 2 did run together"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_oom_become_clear_failures() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        let exit = |code, oom_killed| StepScript {
            exit: StepExit { code, oom_killed },
            ..StepScript::default()
        };
        backend.script("three", exit(3, false));
        backend.script("oom", exit(137, true));
        let steps = vec![
            step("three", &[], json!({"failure": "ignore"})),
            step("oom", &[], json!({"resources": {"memory": 67_108_864}})),
        ];
        let done = run(&runtime(&backend, &[]), &workflow_id("exit"), &plan(steps)).await;
        let three = done.report("three");
        assert_eq!(
            (three.status, three.exit_code),
            (StepStatus::Failure, Some(3))
        );
        assert_eq!(three.error.as_deref(), Some("exit code 3"));
        let oom = done.report("oom");
        assert_eq!(oom.status, StepStatus::Failure);
        assert_eq!(
            oom.error.as_deref(),
            Some("killed: out of memory (limit 64 MiB)")
        );
        assert_eq!(done.outcome.status, PipelineStatus::Failure);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_errors_fail_the_step_with_their_message() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        backend.script(
            "build",
            StepScript {
                start_error: Some("image `nope:1` not found: pulling is disabled".into()),
                ..StepScript::default()
            },
        );
        let done = run(
            &runtime(&backend, &[]),
            &workflow_id("start-error"),
            &plan(vec![step("build", &[], json!({}))]),
        )
        .await;
        let build = done.report("build");
        assert_eq!(build.status, StepStatus::Failure);
        assert_eq!(
            build.error.as_deref(),
            Some("image `nope:1` not found: pulling is disabled")
        );
        assert!(backend.calls().contains(&Call::Destroy("build".into())));
        assert_eq!(backend.calls().last(), Some(&Call::DestroyWorkflow));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_setup_is_an_error_and_still_cleans_up() {
    within(async {
        let backend = Arc::new(FakeBackend::failing_setup("docker is not running"));
        let done = run(
            &runtime(&backend, &[]),
            &workflow_id("setup"),
            &plan(vec![step("a", &[], json!({}))]),
        )
        .await;
        assert_eq!(done.outcome.status, PipelineStatus::Error);
        let error = done.outcome.error.as_deref().unwrap_or_default();
        assert!(error.contains("docker is not running"), "{error}");
        assert_eq!(done.status("a"), StepStatus::Skipped);
        assert_eq!(backend.calls(), [Call::Setup, Call::DestroyWorkflow]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_09_a_secret_split_across_chunks_is_masked() {
    within(async {
        let secret = "tok-0123456789";
        let line = format!("login with {secret} ok\n");
        let bytes = line.as_bytes();
        let start = line.find(secret).unwrap();
        // One step per split point inside the secret, each splitting it there.
        let mut steps = Vec::new();
        let backend = Arc::new(FakeBackend::new());
        for cut in start + 1..start + secret.len() {
            let name = format!("cut{cut}");
            backend.script(&name, StepScript::output(&[&bytes[..cut], &bytes[cut..]]));
            steps.push(step(&name, &[], json!({})));
        }
        let done = run(
            &runtime(&backend, &[("token", secret)]),
            &workflow_id("split"),
            &plan(steps),
        )
        .await;
        assert_eq!(done.outcome.status, PipelineStatus::Success);
        for cut in start + 1..start + secret.len() {
            assert_eq!(done.texts(&format!("cut{cut}")), ["login with ******** ok"]);
        }
        assert!(!done.all_text().contains("tok-"), "{}", done.all_text());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_09_secrets_are_masked_in_error_messages() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        backend.script(
            "push",
            StepScript {
                start_error: Some("registry said: bad password p4ssw0rd-xyz".into()),
                ..StepScript::default()
            },
        );
        let steps = vec![step(
            "push",
            &[],
            json!({"secrets": [{"env": "PASSWORD", "secret": "registry_password"}]}),
        )];
        let rt = runtime(&backend, &[("registry_password", "p4ssw0rd-xyz")]);
        let done = run(&rt, &workflow_id("mask-error"), &plan(steps)).await;
        let error = done.report("push").error.clone().unwrap_or_default();
        assert_eq!(error, "registry said: bad password ********");
        let leaked = done
            .events
            .iter()
            .any(|e| format!("{e:?}").contains("p4ssw0rd"));
        assert!(!leaked, "an event carried the secret");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_fails_the_step_before_it_starts() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        let steps = vec![step(
            "deploy",
            &[],
            json!({"secrets": [{"env": "TOKEN", "secret": "deploy_token"}]}),
        )];
        let done = run(
            &runtime(&backend, &[]),
            &workflow_id("missing"),
            &plan(steps),
        )
        .await;
        let deploy = done.report("deploy");
        assert_eq!(deploy.status, StepStatus::Failure);
        let error = deploy.error.as_deref().unwrap_or_default();
        assert!(error.contains("secret `deploy_token`"), "{error}");
        assert!(error.contains("$TOKEN"), "{error}");
        assert!(!backend.calls().contains(&Call::Start("deploy".into())));
        assert_eq!(done.outcome.status, PipelineStatus::Failure);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_cancels_running_and_pending_steps_and_cleans_up() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        backend.script(
            "hang",
            StepScript {
                hang: true,
                ..StepScript::default()
            },
        );
        let steps = vec![
            step("hang", &[], json!({})),
            step("later", &[], json!({"needs": ["hang"]})),
        ];
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        let watcher = Arc::clone(&backend);
        tokio::spawn(async move {
            while !watcher.calls().contains(&Call::Start("hang".into())) {
                tokio::task::yield_now().await;
            }
            trigger.cancel();
        });
        let rt = runtime(&backend, &[]);
        let done = run_cancellable(&rt, &workflow_id("cancel"), &plan(steps), cancel).await;
        assert_eq!(done.outcome.status, PipelineStatus::Cancelled);
        assert_eq!(done.status("hang"), StepStatus::Cancelled);
        assert_eq!(done.status("later"), StepStatus::Cancelled);
        let calls = backend.calls();
        assert!(calls.contains(&Call::Destroy("hang".into())), "{calls:?}");
        assert!(!calls.contains(&Call::Start("later".into())), "{calls:?}");
        assert_eq!(calls.last(), Some(&Call::DestroyWorkflow));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_future_still_cleans_up() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        backend.script(
            "hang",
            StepScript {
                hang: true,
                ..StepScript::default()
            },
        );
        let rt = runtime(&backend, &[]);
        let p = plan(vec![step("hang", &[], json!({}))]);
        let id = workflow_id("drop");
        let (tx, _rx) = tokio::sync::mpsc::channel(1024);
        // Boxed so that `drop` really drops the future (a pinned local would live on).
        let mut run = Box::pin(rt.run(&id, &p, tx, CancellationToken::new()));
        loop {
            tokio::select! {
                _ = &mut run => panic!("a hanging step cannot finish"),
                () = tokio::task::yield_now() => {}
            }
            if backend.calls().contains(&Call::Start("hang".into())) {
                break;
            }
        }
        drop(run);
        while backend.calls().last() != Some(&Call::DestroyWorkflow) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(backend.calls().contains(&Call::Destroy("hang".into())));
    })
    .await;
}

struct FixedApprover(ApprovalDecision);

#[async_trait]
impl Approver for FixedApprover {
    async fn decide(&self, _workflow: &WorkflowId, _step: &Step) -> ApprovalDecision {
        self.0.clone()
    }
}

struct SilentApprover;

#[async_trait]
impl Approver for SilentApprover {
    async fn decide(&self, _workflow: &WorkflowId, _step: &Step) -> ApprovalDecision {
        std::future::pending().await
    }
}

fn approval_plan(timeout: Option<u64>) -> gantry_pipeline::plan::Plan {
    let gate = step(
        "approve",
        &[],
        json!({"kind": "approval", "image": "", "approval_timeout_secs": timeout}),
    );
    plan(vec![
        gate,
        step("deploy", &[], json!({"needs": ["approve"]})),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_block_then_follow_the_decision() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        let approved = runtime(&backend, &[]).with_approver(Arc::new(FixedApprover(
            ApprovalDecision::Approved { by: "alice".into() },
        )));
        let done = run(&approved, &workflow_id("approve"), &approval_plan(None)).await;
        assert_eq!(done.outcome.status, PipelineStatus::Success);
        let blocked = done.events.iter().any(|e| {
            matches!(e, RunEvent::Step(r) if r.step == "approve" && r.status == StepStatus::Blocked)
        });
        assert!(blocked, "the approval step was reported blocked first");
        assert_eq!(done.texts("approve"), ["approved by alice"]);
        assert_eq!(done.status("deploy"), StepStatus::Success);

        let rejected = runtime(&backend, &[]).with_approver(Arc::new(FixedApprover(
            ApprovalDecision::Rejected {
                by: "bob".into(),
                reason: "not today".into(),
            },
        )));
        let done = run(&rejected, &workflow_id("reject"), &approval_plan(None)).await;
        assert_eq!(
            done.report("approve").error.as_deref(),
            Some("rejected by bob: not today")
        );
        assert_eq!(done.status("deploy"), StepStatus::Skipped);
        assert_eq!(done.outcome.status, PipelineStatus::Failure);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_approver_approvals_are_rejected() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        let done = run(
            &runtime(&backend, &[]),
            &workflow_id("noappr"),
            &approval_plan(None),
        )
        .await;
        assert_eq!(
            done.report("approve").error.as_deref(),
            Some("rejected by gantry: no approver")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_approval_times_out() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        let rt = runtime(&backend, &[]).with_approver(Arc::new(SilentApprover));
        let done = run(&rt, &workflow_id("appr-timeout"), &approval_plan(Some(1))).await;
        assert_eq!(
            done.report("approve").error.as_deref(),
            Some("approval timed out after 1s")
        );
        assert_eq!(done.outcome.status, PipelineStatus::Failure);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_approval_holds_no_concurrency_slot() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        let config = RunConfig {
            concurrency: 1,
            ..RunConfig::default()
        };
        // The approval times out after 1s; meanwhile the independent branch must run
        // although the limit is one step at a time.
        let rt =
            Runtime::new(Arc::clone(&backend) as _, config).with_approver(Arc::new(SilentApprover));
        let mut steps = approval_plan(Some(1)).steps;
        steps.push(step("independent", &[], json!({})));
        let done = run(&rt, &workflow_id("appr-slot"), &plan(steps)).await;
        assert_eq!(done.status("independent"), StepStatus::Success);
        let finished_at = |name: &str| {
            done.events
                .iter()
                .position(
                    |e| matches!(e, RunEvent::Step(r) if r.step == name && r.status.is_final()),
                )
                .unwrap_or(usize::MAX)
        };
        assert!(
            finished_at("independent") < finished_at("approve"),
            "the independent step waited for the approval"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_that_cannot_be_met_end_the_run_with_an_error() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        let steps = vec![
            step("a", &[], json!({"needs": ["b"]})),
            step("b", &[], json!({"needs": ["a"]})),
            step("c", &[], json!({"needs": ["ghost"]})),
        ];
        let done = run(&runtime(&backend, &[]), &workflow_id("cycle"), &plan(steps)).await;
        assert_eq!(done.outcome.status, PipelineStatus::Error);
        let c_error = done.report("c").error.clone().unwrap_or_default();
        assert!(c_error.contains("`ghost`"), "{c_error}");
        let error = done.outcome.error.clone().unwrap_or_default();
        assert!(error.contains("cycle: a, b"), "{error}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_gets_pending_then_a_final_report_and_services_come_first() {
    within(async {
        let backend = Arc::new(FakeBackend::new());
        let services = vec![step("db", &[], json!({"kind": "service"}))];
        let steps = vec![step("a", &[], json!({}))];
        let done = run(
            &runtime(&backend, &[]),
            &workflow_id("order"),
            &plan_with(services, steps),
        )
        .await;
        let names: Vec<&str> = done.outcome.steps.iter().map(|r| r.step.as_str()).collect();
        assert_eq!(names, ["db", "a"]);
        assert_eq!(done.status("db"), StepStatus::Success);
        let calls = backend.calls();
        assert_eq!(
            calls[..3],
            [
                Call::Setup,
                Call::Start("db".into()),
                Call::Start("a".into())
            ]
        );
        assert_eq!(calls.last(), Some(&Call::DestroyWorkflow));
        let first_a = done.events.iter().find_map(|e| match e {
            RunEvent::Step(r) if r.step == "a" => Some(r.status),
            _ => None,
        });
        assert_eq!(first_a, Some(StepStatus::Pending));
    })
    .await;
}
