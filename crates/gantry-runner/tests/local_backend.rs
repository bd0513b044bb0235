//! The local backend on its own: workspaces, environment, idempotent destroy, reaping.

mod common;

use common::{TempDir, plan, step, within, workflow_id};
use futures_util::StreamExt;
use gantry_runner::{Backend, LocalBackend, WorkflowId};
use serde_json::json;

/// Runs one step directly on the backend and returns its stdout.
async fn output_of(backend: &LocalBackend, id: &WorkflowId, commands: &[&str]) -> String {
    let step = step(
        "probe",
        commands,
        json!({"environment": {"FROM_STEP": "yes"}}),
    );
    let secrets = [("FROM_SECRET".to_owned(), "hidden".to_owned())];
    backend
        .start_step(id, &step, &secrets)
        .await
        .expect("start");
    let mut output = backend.logs(id, &step).await.expect("logs");
    let mut text = Vec::new();
    while let Some(chunk) = output.next().await {
        text.extend(chunk.expect("chunk").data);
    }
    let exit = backend.wait_step(id, &step).await.expect("wait");
    assert_eq!(exit.code, 0, "{}", String::from_utf8_lossy(&text));
    backend.destroy_step(id, &step).await.expect("destroy");
    String::from_utf8(text).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_see_a_minimal_environment_plus_their_own() {
    within(async {
        let base = TempDir::new("env");
        let backend = LocalBackend::with_temp_workspaces(base.path());
        let id = workflow_id("env");
        backend.probe().await.expect("probe");
        backend
            .setup_workflow(&id, &plan(vec![]))
            .await
            .expect("setup");
        let out = output_of(&backend, &id, &["env | sort", "pwd"]).await;
        assert!(out.contains("FROM_STEP=yes\n"), "{out}");
        assert!(out.contains("FROM_SECRET=hidden\n"), "{out}");
        assert!(out.contains("PATH="), "{out}");
        assert!(!out.contains("CARGO"), "host variables leak in: {out}");
        let workspace = backend.workspace_of(&id).expect("set up");
        assert!(
            out.trim_end().ends_with(workspace.to_str().unwrap()),
            "{out}"
        );
        backend.destroy_workflow(&id).await.expect("destroy");
        assert!(!workspace.exists());
        // Destroying again, or a step that is gone, is fine.
        backend.destroy_workflow(&id).await.expect("destroy twice");
        let gone = step("gone", &[], json!({}));
        backend
            .destroy_step(&id, &gone)
            .await
            .expect("destroy a missing step");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_07_workflow_ids_that_are_not_plain_names_are_refused() {
    within(async {
        let base = TempDir::new("ids");
        let backend = LocalBackend::with_temp_workspaces(base.path());
        for bad in ["../escape", "a/b", "", ".hidden", "nul\0byte"] {
            let err = backend
                .setup_workflow(&WorkflowId(bad.into()), &plan(vec![]))
                .await
                .expect_err(bad);
            assert!(err.to_string().contains("cannot name a directory"), "{err}");
        }
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_07_workdirs_cannot_leave_the_workspace() {
    within(async {
        let dir = TempDir::new("workdir");
        let backend = LocalBackend::in_directory(dir.path());
        let id = workflow_id("workdir");
        backend
            .setup_workflow(&id, &plan(vec![]))
            .await
            .expect("setup");
        let sneaky = step(
            "sneaky",
            &["true"],
            json!({"workdir": "/workspace/../../etc"}),
        );
        let err = backend
            .start_step(&id, &sneaky, &[])
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("leaves the workspace"), "{err}");
        backend.destroy_workflow(&id).await.expect("destroy");
        assert!(dir.path().exists(), "a fixed workspace is never removed");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaping_removes_only_workspaces_of_dead_runners() {
    within(async {
        let base = TempDir::new("reap");
        let make = |name: &str, owner: &str| {
            let dir = base.path().join(name);
            std::fs::create_dir_all(dir.join("workspace")).unwrap();
            std::fs::write(dir.join("owner"), owner).unwrap();
            dir
        };
        // No process has a pid above the kernel's maximum (at most 2^22).
        let dead = make("gantry-dead", "99999999");
        let garbled = make("gantry-garbled", "not a pid");
        let alive = make("gantry-alive", "1");
        let unrelated = make("something-else", "99999999");
        let backend = LocalBackend::with_temp_workspaces(base.path());
        let active = workflow_id("active");
        backend
            .setup_workflow(&active, &plan(vec![]))
            .await
            .expect("setup");
        assert_eq!(backend.reap_leftovers().await.expect("reap"), 2);
        assert!(!dead.exists() && !garbled.exists());
        assert!(alive.exists() && unrelated.exists());
        assert!(backend.workspace_of(&active).expect("active").exists());
        backend.destroy_workflow(&active).await.expect("destroy");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_up_again_replaces_a_leftover_workspace() {
    within(async {
        let base = TempDir::new("again");
        let backend = LocalBackend::with_temp_workspaces(base.path());
        let id = workflow_id("again");
        backend
            .setup_workflow(&id, &plan(vec![]))
            .await
            .expect("setup");
        let workspace = backend.workspace_of(&id).unwrap();
        std::fs::write(workspace.join("stale"), "old run").unwrap();
        backend
            .setup_workflow(&id, &plan(vec![]))
            .await
            .expect("setup again");
        assert!(!workspace.join("stale").exists());
        backend.destroy_workflow(&id).await.expect("destroy");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_before_setup_is_a_clear_error() {
    within(async {
        let backend = LocalBackend::in_directory(".");
        let err = backend
            .start_step(
                &workflow_id("nosetup"),
                &step("a", &["true"], json!({})),
                &[],
            )
            .await
            .expect_err("not set up");
        assert!(err.to_string().contains("is not set up"), "{err}");
    })
    .await;
}

#[test]
fn steps_die_with_the_tokio_runtime() {
    let dir = TempDir::new("shutdown");
    let pid_file = dir.path().join("sleeper.pid");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let backend = LocalBackend::in_directory(dir.path());
    tokio.block_on(within(async {
        let id = workflow_id("shutdown");
        backend
            .setup_workflow(&id, &plan(vec![]))
            .await
            .expect("setup");
        let sleeper = step(
            "sleeper",
            &["echo $$ > pid.tmp; mv pid.tmp sleeper.pid; exec sleep 300"],
            json!({}),
        );
        backend.start_step(&id, &sleeper, &[]).await.expect("start");
        common::wait_for_file(&pid_file).await;
    }));
    let pid = common::read_pid(&pid_file);
    drop(tokio);
    // Bounded poll: the kill happens when the runtime drops its tasks.
    let deadline = std::time::Instant::now() + common::TEST_TIMEOUT;
    while common::process_alive(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "step {pid} outlived the runtime"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
