//! The built-in runner (an ordinary runner over an in-memory channel) on the local backend:
//! builds queued in the store run to their final status, with statuses and logs written
//! to the store.

mod run_common;

use gantry_server::BackendChoice;
use gantry_server::builds::DecidedApproval;
use gantry_store::{Approval, ApprovalDecision, RunStatus, SecretValue, now_ms};
use run_common::{ADMIN, SHA, start, step, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_build_runs_to_success_and_its_logs_are_stored() {
    within(60, "build runs", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("ok", false).await;
        let yaml = "steps:\n  - name: hello\n    image: busybox\n    commands:\n      - echo hello\n      - echo world\n  - name: after\n    image: busybox\n    commands: [echo done]\n    depends_on: [hello]\n";
        let queued = t.queue(&repo, yaml, false, SHA).await;
        let done = t.finished(queued.build.id).await;
        assert_eq!(done.build.status, RunStatus::Success, "{done:#?}");
        assert_eq!(step(&done, "hello").status, RunStatus::Success);
        assert_eq!(step(&done, "after").exit_code, Some(0));
        assert!(done.build.started_at.is_some() && done.build.finished_at.is_some());

        let (status, text) = t.get("/api/repos/test/ok/builds/1/steps/hello/logs", ADMIN).await;
        assert_eq!(status, 200);
        assert!(text.contains("hello\n") && text.contains("world\n"), "{text}");
        let (status, json) = t.get("/api/repos/test/ok/builds/1/steps/hello/logs?after=0", ADMIN).await;
        assert_eq!(status, 200);
        let lines: Vec<serde_json::Value> =
            json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(lines.iter().any(|l| l["text"] == "world"), "{json}");
        let first = lines[0]["number"].as_i64().unwrap();
        let (_, rest) = t
            .get(&format!("/api/repos/test/ok/builds/1/steps/hello/logs?after={first}"), ADMIN)
            .await;
        assert_eq!(rest.lines().count(), lines.len() - 1, "after=N skips line N and before");
        t.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_ends_the_build_in_failure() {
    within(60, "failing build", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("bad", false).await;
        let yaml = "steps:\n  - name: fail\n    image: busybox\n    commands: [echo oops, exit 3]\n  - name: never\n    image: busybox\n    commands: [echo no]\n    depends_on: [fail]\n";
        let queued = t.queue(&repo, yaml, false, SHA).await;
        let done = t.finished(queued.build.id).await;
        assert_eq!(done.build.status, RunStatus::Failure);
        assert_eq!(step(&done, "fail").exit_code, Some(3));
        assert!(step(&done, "never").status.is_terminal());
        t.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_build_kills_it() {
    within(60, "cancel", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("long", false).await;
        let yaml =
            "steps:\n  - name: sleep\n    image: busybox\n    commands: [echo started, sleep 30]\n";
        let queued = t.queue(&repo, yaml, false, SHA).await;
        t.wait_build(queued.build.id, |d| {
            step(d, "sleep").status == RunStatus::Running
        })
        .await;
        // The built-in runner is a connected runner: it hears the cancel as a message.
        let cancelled = t
            .http
            .post(format!("{}/api/repos/test/long/builds/1/cancel", t.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert!(
            cancelled.status().is_success(),
            "{}",
            cancelled.text().await.unwrap()
        );
        let done = t
            .wait_build(queued.build.id, |d| {
                d.build.status.is_terminal() && d.workflows[0].workflow.status.is_terminal()
            })
            .await;
        assert_eq!(done.build.status, RunStatus::Killed, "{done:#?}");
        assert_eq!(step(&done, "sleep").status, RunStatus::Killed);
        // Its slot is free again: the next build runs.
        let next = t
            .queue(
                &repo,
                "steps:\n  - name: s\n    image: busybox\n    commands: [echo next]\n",
                false,
                SHA,
            )
            .await;
        assert_eq!(
            t.finished(next.build.id).await.build.status,
            RunStatus::Success
        );
        t.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_blocks_the_build_until_it_is_decided() {
    within(60, "approval", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("gate", false).await;
        let yaml = "steps:\n  - name: gate\n    approval:\n      timeout: 1h\n  - name: deploy\n    image: busybox\n    commands: [echo deploying]\n    depends_on: [gate]\n";
        let queued = t.queue(&repo, yaml, false, SHA).await;
        let blocked = t.wait_build(queued.build.id, |d| d.build.status == RunStatus::Blocked).await;
        assert_eq!(step(&blocked, "gate").status, RunStatus::Blocked);
        assert_eq!(step(&blocked, "deploy").status, RunStatus::Pending);
        let gate = step(&blocked, "gate").id;
        let approval = Approval { by: "alice".into(), at: now_ms(), decision: ApprovalDecision::Approved };
        assert!(t.state().store.decide_approval(gate, &approval).await.unwrap());
        t.state().approvals.announce(DecidedApproval { step_id: gate, approval });
        let done = t.finished(queued.build.id).await;
        assert_eq!(done.build.status, RunStatus::Success, "{done:#?}");
        assert_eq!(step(&done, "gate").approval.as_ref().unwrap().by, "alice");
        assert_eq!(step(&done, "deploy").status, RunStatus::Success);
        t.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_09_secrets_are_masked_in_stored_logs() {
    within(60, "masking", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("masked", false).await;
        let value = SecretValue::new("hunter2-very-secret");
        t.state().store.set_secret(repo.id, "token", &value, now_ms()).await.unwrap();
        let yaml = "steps:\n  - name: leak\n    image: busybox\n    environment:\n      TOKEN:\n        from_secret: token\n    commands: [echo \"the token is $TOKEN\"]\n";
        let queued = t.queue(&repo, yaml, false, SHA).await;
        let done = t.finished(queued.build.id).await;
        assert_eq!(done.build.status, RunStatus::Success, "{done:#?}");
        let (_, text) = t.get("/api/repos/test/masked/builds/1/steps/leak/logs", ADMIN).await;
        assert!(text.contains("the token is"), "{text}");
        assert!(!text.contains("hunter2-very-secret"), "secret leaked: {text}");
        t.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_plan_that_cannot_be_read_ends_the_build_in_error_with_a_reason() {
    within(60, "bad plan", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("broken", false).await;
        let workflow = gantry_store::NewWorkflow {
            name: "default".into(),
            plan: "{not a plan".into(),
            labels: Default::default(),
            steps: vec![gantry_store::NewStep {
                name: "x".into(),
                kind: "commands".into(),
                needs: vec![],
            }],
        };
        let build = gantry_store::NewBuild {
            repo_id: repo.id,
            event: gantry_store::BuildEvent::Manual,
            git_ref: "refs/heads/main".into(),
            sha: SHA.into(),
            before: String::new(),
            message: String::new(),
            author: String::new(),
            sender: "admin".into(),
            status: RunStatus::Pending,
            error: None,
            parent_id: None,
            deploy_target: None,
            diagnostics: None,
            created_at: now_ms(),
        };
        let queued = t
            .state()
            .store
            .create_build(&build, &[workflow])
            .await
            .unwrap();
        t.state().live.announce_work();
        let done = t.finished(queued.build.id).await;
        assert_eq!(done.build.status, RunStatus::Error);
        let why = done.build.error.clone().unwrap_or_default();
        assert!(why.contains("cannot be read"), "{why}");
        assert_eq!(step(&done, "x").status, RunStatus::Skipped);
        t.server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_run_only_when_their_labels_fit_the_in_process_runner() {
    within(60, "labels", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("labelled", false).await;
        let gpu = "labels:\n  gpu: \"yes\"\nsteps:\n  - name: s\n    image: busybox\n    commands: [echo gpu]\n";
        let waiting = t.queue(&repo, gpu, false, SHA).await;
        let linux = "labels:\n  os: linux\n  backend: local\nsteps:\n  - name: s\n    image: busybox\n    commands: [echo linux]\n";
        let runs = t.queue(&repo, linux, false, SHA).await;
        let done = t.finished(runs.build.id).await;
        assert_eq!(done.build.status, RunStatus::Success);
        let still = t.state().store.build_by_id(waiting.build.id).await.unwrap().unwrap();
        assert_eq!(still.build.status, RunStatus::Pending, "no runner here has a gpu");
        t.server.shutdown().await;
    })
    .await;
}
