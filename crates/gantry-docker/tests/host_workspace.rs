//! `gantry exec` binds the checkout as the workspace instead of a volume.

mod common;

use common::{TestEnv, plan, step, within_timeout};
use gantry_docker::DockerConfig;
use gantry_runner::PipelineStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_see_and_change_the_host_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("input.txt"), "from-host\n").expect("write");
    let config = DockerConfig {
        host_workspace: Some(dir.path().to_path_buf()),
        ..DockerConfig::default()
    };
    let Some(env) = TestEnv::with_config("host-workspace", config).await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let p = plan(
            vec![],
            vec![step(
                "copy",
                &["cat input.txt", "echo from-step > output.txt"],
            )],
        );
        let (outcome, events) = env.run(&id, &p).await;
        assert_eq!(outcome.status, PipelineStatus::Success, "{outcome:?}");
        assert!(common::lines_of(&events, "copy").contains(&"from-host".to_string()));
    })
    .await;
    let written = std::fs::read_to_string(dir.path().join("output.txt")).unwrap_or_default();
    assert_eq!(written, "from-step\n");
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_host_workspace_is_a_clear_setup_error() {
    let config = DockerConfig {
        host_workspace: Some("/nonexistent/gantry/checkout".into()),
        ..DockerConfig::default()
    };
    let Some(env) = TestEnv::with_config("host-workspace-missing", config).await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let (outcome, _) = env
            .run(&id, &plan(vec![], vec![step("x", &["true"])]))
            .await;
        assert_eq!(outcome.status, PipelineStatus::Error);
        let error = outcome.error.unwrap_or_default();
        assert!(
            error.contains("`/nonexistent/gantry/checkout`") && error.contains("workspace"),
            "{error}"
        );
    })
    .await;
    env.assert_nothing_left().await;
}
