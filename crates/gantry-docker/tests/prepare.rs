//! Prepared containers (`Backend::prepare_step`), on a real engine: created not started,
//! started only when made for exactly the step's environment, never pulled, and removed
//! when the step never starts.

mod common;

use bollard::query_parameters::InspectContainerOptions;
use common::{TestEnv, plan, step, within_timeout};
use futures_util::StreamExt;
use gantry_pipeline::plan::PullPolicy;
use gantry_runner::{Backend, BackendError, WorkflowId};

/// The state of the step's container (`created`, `running`, `exited`), or `None` if
/// there is none.
async fn container_state(env: &TestEnv, id: &WorkflowId, step: &str) -> Option<String> {
    let name = gantry_docker::container_name(id, step);
    let info = env
        .backend
        .client()
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
        .ok()?;
    info.state
        .and_then(|s| s.status)
        .map(|s| s.to_string().to_lowercase())
}

/// Everything the step wrote on stdout.
async fn stdout_of(env: &TestEnv, id: &WorkflowId, s: &gantry_pipeline::plan::Step) -> String {
    let mut logs = env.backend.logs(id, s).await.expect("logs");
    let mut out = Vec::new();
    while let Some(chunk) = logs.next().await {
        out.extend(chunk.expect("chunk").data);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_container_waits_created_then_runs_the_step() {
    let Some(env) = TestEnv::new("prepare-start").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let mut s = step("greet", &["echo hello $WHO"]);
        s.environment.insert("WHO".into(), "world".into());
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        b.prepare_step(&id, &s, &[]).await.expect("prepare");
        assert_eq!(
            container_state(&env, &id, "greet").await.as_deref(),
            Some("created")
        );
        b.start_step(&id, &s, &[]).await.expect("start");
        assert_eq!(b.wait_step(&id, &s).await.expect("wait").code, 0);
        assert!(stdout_of(&env, &id, &s).await.contains("hello world"));
        b.destroy_step(&id, &s).await.expect("destroy step");
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_prepared_for_another_environment_is_replaced() {
    let Some(env) = TestEnv::new("prepare-mismatch").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let mut s = step("status", &["echo status=$CI_BUILD_STATUS token=$TOKEN"]);
        s.environment
            .insert("CI_BUILD_STATUS".into(), "success".into());
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        let token = [("TOKEN".to_string(), "one".to_string())];
        b.prepare_step(&id, &s, &token).await.expect("prepare");
        // Meanwhile a step failed, and the secret is another one.
        s.environment
            .insert("CI_BUILD_STATUS".into(), "failure".into());
        let token = [("TOKEN".to_string(), "two".to_string())];
        b.start_step(&id, &s, &token).await.expect("start");
        assert_eq!(b.wait_step(&id, &s).await.expect("wait").code, 0);
        let out = stdout_of(&env, &id, &s).await;
        assert!(out.contains("status=failure token=two"), "{out}");
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_container_that_never_starts_is_removed_by_destroy_step() {
    let Some(env) = TestEnv::new("prepare-destroy").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let s = step("unused", &["true"]);
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        b.prepare_step(&id, &s, &[]).await.expect("prepare");
        b.destroy_step(&id, &s).await.expect("destroy step");
        assert_eq!(container_state(&env, &id, "unused").await, None);
        // Destroying again, or starting the step afterwards, still works.
        b.destroy_step(&id, &s).await.expect("destroy step again");
        b.start_step(&id, &s, &[]).await.expect("start after all");
        assert_eq!(b.wait_step(&id, &s).await.expect("wait").code, 0);
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_the_workflow_removes_prepared_containers() {
    let Some(env) = TestEnv::new("prepare-teardown").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let (a, c) = (step("a", &["true"]), step("c", &["true"]));
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![a.clone(), c.clone()]))
            .await
            .expect("setup");
        b.prepare_step(&id, &a, &[]).await.expect("prepare a");
        b.prepare_step(&id, &c, &[]).await.expect("prepare c");
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preparing_never_pulls_and_always_pull_steps_are_not_prepared() {
    let Some(env) = TestEnv::new("prepare-pull").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let mut absent = step("absent", &["true"]);
        absent.image = "gantry-test/never-built:nope".into();
        absent.pull = PullPolicy::Never;
        let mut fresh = step("fresh", &["true"]);
        fresh.pull = PullPolicy::Always;
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![absent.clone(), fresh.clone()]))
            .await
            .expect("setup");
        let err = b.prepare_step(&id, &absent, &[]).await.expect_err("absent");
        assert!(
            matches!(&err, BackendError::ImageNotFound { detail, .. } if detail.contains("never pulls")),
            "{err}"
        );
        // The start after a failed preparation reports the real problem.
        let err = b.start_step(&id, &absent, &[]).await.expect_err("absent");
        assert!(err.to_string().contains("pull policy is `never`"), "{err}");
        // `always` must pull at start, so a container made earlier would be stale.
        b.prepare_step(&id, &fresh, &[]).await.expect("prepare fresh");
        assert_eq!(container_state(&env, &id, "fresh").await, None);
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}
