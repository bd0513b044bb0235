//! Pod-style networking on a real engine: the built-in sandbox image is imported and
//! runs, a configured sandbox image is used, services are reached by name and on
//! localhost, another workflow's sandbox and services are out of reach, the sandbox is
//! gone after every kind of ending, and steps run hardened.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::query_parameters::{InspectContainerOptions, RemoveImageOptions};
use common::{TestEnv, lines_of, plan, service, step, step_after, within_timeout};
use gantry_docker::{DockerConfig, sandbox_name};
use gantry_runner::{Backend, PipelineStatus, RunConfig, WorkflowId};
use tokio_util::sync::CancellationToken;

/// A service answering `hello-from-<name>` over HTTP on `port`.
fn web_service(name: &str, port: u16) -> gantry_pipeline::plan::Step {
    service(
        name,
        &[
            &format!("mkdir -p /www && echo hello-from-{name} > /www/index.html"),
            &format!("httpd -f -p {port} -h /www"),
        ],
    )
}

/// Fetches `url` until it answers (the service may still be starting).
fn fetch(url: &str) -> String {
    format!(
        "for i in $(seq 1 100); do wget -q -O - {url} && break; [ $i = 100 ] && exit 1; \
         sleep 0.1; done"
    )
}

/// Whether the workflow's sandbox container exists.
async fn sandbox_exists(env: &TestEnv, id: &WorkflowId) -> bool {
    env.backend
        .client()
        .inspect_container(&sandbox_name(id), None::<InspectContainerOptions>)
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_image_is_imported_and_a_configured_sandbox_image_is_used() {
    let Some(env) = TestEnv::new("sandbox-image").await else {
        return;
    };
    // A tag of this test's own: the real `gantry/pause:<version>` may be in use.
    let tag = format!("gantry-test/pause:{}", env.test_id);
    let docker = env.backend.client().clone();
    let remove = RemoveImageOptions {
        force: true,
        ..Default::default()
    };
    let _ = docker.remove_image(&tag, Some(remove.clone()), None).await;
    within_timeout(async {
        let labels = BTreeMap::from([("gantry.test".to_string(), env.test_id.clone())]);
        env.backend
            .import_sandbox_image(&tag, &labels)
            .await
            .expect("import");
        let image = docker.inspect_image(&tag).await.expect("imported image");
        let config = image.config.unwrap_or_default();
        assert_eq!(config.entrypoint, Some(vec!["/pause".to_string()]));
        assert_eq!(
            config.labels.unwrap_or_default().get("gantry.test"),
            Some(&env.test_id)
        );

        // A backend told to use it: the sandbox runs it and the steps run beside it.
        let configured = DockerConfig {
            sandbox_image: Some(tag.clone()),
            ..env.backend.config().clone()
        };
        let backend = gantry_docker::DockerBackend::connect(configured)
            .await
            .expect("connect");
        let id = env.workflow("w");
        let s = step("check", &["test -n \"$(hostname)\""]);
        backend
            .setup_workflow(&id, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        let sandbox = docker
            .inspect_container(&sandbox_name(&id), None::<InspectContainerOptions>)
            .await
            .expect("sandbox");
        assert_eq!(sandbox.config.and_then(|c| c.image), Some(tag.clone()));
        let running = sandbox.state.and_then(|s| s.running);
        assert_eq!(running, Some(true), "the pause program keeps it running");
        backend.start_step(&id, &s, &[]).await.expect("start");
        assert_eq!(backend.wait_step(&id, &s).await.expect("wait").code, 0);
        backend.destroy_workflow(&id).await.expect("destroy");
        assert!(!sandbox_exists(&env, &id).await);
    })
    .await;
    env.assert_nothing_left().await;
    docker
        .remove_image(&tag, Some(remove), None)
        .await
        .expect("remove the test image");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_configured_sandbox_image_is_a_clear_setup_error() {
    let Some(env) = TestEnv::new("sandbox-missing").await else {
        return;
    };
    within_timeout(async {
        let configured = DockerConfig {
            sandbox_image: Some("gantry-test/absent-sandbox:1".to_string()),
            ..env.backend.config().clone()
        };
        let backend = gantry_docker::DockerBackend::connect(configured)
            .await
            .expect("connect");
        let id = env.workflow("w");
        let err = backend
            .setup_workflow(&id, &plan(vec![], vec![]))
            .await
            .expect_err("no sandbox image");
        let text = err.to_string();
        assert!(
            text.contains("sandbox image") && text.contains("gantry-test/absent-sandbox:1"),
            "{text}"
        );
        backend.destroy_workflow(&id).await.expect("destroy");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_is_reached_by_name_and_on_localhost_and_shares_the_host_name() {
    let Some(env) = TestEnv::new("service-localhost").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let web = web_service("web", 8080);
        let probe = step(
            "probe",
            &[
                &fetch("http://web:8080/"),
                &fetch("http://localhost:8080/"),
                "grep -w web /etc/hosts",
                "hostname",
            ],
        );
        let after = step_after("after", &["probe"], &["hostname"]);
        let (outcome, events) = env.run(&id, &plan(vec![web], vec![probe, after])).await;
        assert_eq!(outcome.status, PipelineStatus::Success, "{outcome:?}");
        let lines = lines_of(&events, "probe");
        let hellos = lines.iter().filter(|l| *l == "hello-from-web").count();
        assert_eq!(hellos, 2, "{lines:?}");
        assert!(
            lines.iter().any(|l| l.starts_with("127.0.0.1")),
            "{lines:?}"
        );
        // Every container of the workflow has the sandbox's host name.
        let host = lines.last().cloned().unwrap_or_default();
        assert!(host.starts_with("gantry-"), "{lines:?}");
        assert_eq!(lines_of(&events, "after").last(), Some(&host));
    })
    .await;
    env.assert_nothing_left().await;
}

/// Workflow A runs a service; a step of workflow B reaches it neither by its name, nor on
/// localhost, nor at A's sandbox address or name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_workflows_sandbox_and_services_are_out_of_reach() {
    let Some(env) = TestEnv::new("sandbox-isolation").await else {
        return;
    };
    within_timeout(async {
        let b = env.backend.as_ref();
        let a = env.workflow("a");
        let web = web_service("web", 8080);
        let inside = step("inside", &[&fetch("http://web:8080/")]);
        b.setup_workflow(&a, &plan(vec![web.clone()], vec![inside.clone()]))
            .await
            .expect("setup a");
        b.start_step(&a, &web, &[]).await.expect("start web");
        // The service answers inside A: what B does not see is really there.
        b.start_step(&a, &inside, &[]).await.expect("start inside");
        assert_eq!(b.wait_step(&a, &inside).await.expect("wait").code, 0);

        let info = env
            .backend
            .client()
            .inspect_container(&sandbox_name(&a), None::<InspectContainerOptions>)
            .await
            .expect("sandbox of a");
        let networks = info.network_settings.and_then(|n| n.networks);
        let address = networks
            .and_then(|n| n.into_values().next())
            .and_then(|endpoint| endpoint.ip_address)
            .expect("sandbox address");
        let unreachable = |url: String| {
            format!("if timeout 5 wget -q -O - {url}; then echo reached {url}; exit 1; fi")
        };
        let other = step(
            "outside",
            &[
                &unreachable("http://web:8080/".to_string()),
                &unreachable("http://localhost:8080/".to_string()),
                &unreachable(format!("http://{address}:8080/")),
                &unreachable(format!("http://{}:8080/", sandbox_name(&a))),
            ],
        );
        let (outcome, events) = env
            .run(&env.workflow("b"), &plan(vec![], vec![other]))
            .await;
        assert_eq!(
            outcome.status,
            PipelineStatus::Success,
            "{:?}",
            lines_of(&events, "outside")
        );
        b.destroy_workflow(&a).await.expect("destroy a");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_is_removed_after_success_failure_and_cancel() {
    let Some(env) = TestEnv::new("sandbox-removed").await else {
        return;
    };
    within_timeout(async {
        for (name, commands) in [("ok", "true"), ("fails", "exit 1")] {
            let id = env.workflow(name);
            let p = plan(
                vec![service("idle", &["sleep 600"])],
                vec![step(name, &[commands])],
            );
            let (outcome, _) = env.run(&id, &p).await;
            assert_ne!(outcome.status, PipelineStatus::Cancelled);
            assert!(!sandbox_exists(&env, &id).await, "{name}: sandbox left");
        }
        let id = env.workflow("cancelled");
        let p = plan(vec![], vec![step("long", &["sleep 600"])]);
        let cancel = CancellationToken::new();
        let run = env.run_with(&id, &p, RunConfig::default(), cancel.clone());
        let watch = async {
            // Cancel once the sandbox and the step's container exist.
            while !(sandbox_exists(&env, &id).await
                && env.leftovers().await.iter().any(|o| o.ends_with("-long")))
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            cancel.cancel();
        };
        let ((outcome, _), ()) = tokio::join!(run, watch);
        assert_eq!(outcome.status, PipelineStatus::Cancelled);
        assert!(!sandbox_exists(&env, &id).await, "cancelled: sandbox left");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_run_without_new_privileges_and_with_a_process_limit() {
    let Some(env) = TestEnv::new("hardened").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let s = step(
            "look",
            &[
                "grep NoNewPrivs /proc/self/status",
                "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
            ],
        );
        let (outcome, events) = env.run(&id, &plan(vec![], vec![s])).await;
        assert_eq!(outcome.status, PipelineStatus::Success, "{outcome:?}");
        let lines = lines_of(&events, "look");
        assert!(
            lines
                .iter()
                .any(|l| l.split_whitespace().eq(["NoNewPrivs:", "1"])),
            "{lines:?}"
        );
        let limit = gantry_docker::DEFAULT_PIDS_LIMIT.to_string();
        assert_eq!(lines.last(), Some(&limit), "{lines:?}");
    })
    .await;
    env.assert_nothing_left().await;
}
