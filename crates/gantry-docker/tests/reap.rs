//! Leftovers of dead `gantry exec` runs are reaped; live owners' objects are not.

mod common;

use common::{TestEnv, plan, step, within_timeout};
use gantry_docker::DockerConfig;
use gantry_runner::Backend;

/// Above the kernel's largest pid (2^22): no live process has it.
const DEAD_PID: u32 = (1 << 22) + 11;

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_dead_owner_are_reaped_and_a_live_owners_are_kept() {
    let Some(env) = TestEnv::new("reap").await else {
        return;
    };
    within_timeout(async {
        // A "crashed" gantry exec: same test label, an owner whose process is gone.
        let dead = DockerConfig {
            owner: format!("exec:{}:{DEAD_PID}", hostname()),
            extra_labels: env.backend.config().extra_labels.clone(),
            ..DockerConfig::default()
        };
        let crashed = gantry_docker::DockerBackend::connect(dead)
            .await
            .expect("connect");
        let lost = env.workflow("crashed");
        let s = step("stuck", &["sleep 600"]);
        crashed
            .setup_workflow(&lost, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        crashed.start_step(&lost, &s, &[]).await.expect("start");
        // ... and a live run of this process.
        let live = env.workflow("live");
        let b = env.backend.as_ref();
        b.setup_workflow(&live, &plan(vec![], vec![]))
            .await
            .expect("setup");

        let sandbox = format!("container:/{}", gantry_docker::sandbox_name(&lost));
        assert!(env.leftovers().await.contains(&sandbox), "{sandbox}");
        let reaped = b.reap_leftovers().await.expect("reap");
        // The step's container, the sandbox, the network and the workspace volume of the
        // dead run.
        assert_eq!(reaped, 4);
        let left = env.leftovers().await;
        assert!(
            !left.is_empty() && left.iter().all(|o| o.contains("-live")),
            "{left:?}"
        );
        assert_eq!(b.reap_leftovers().await.expect("reap again"), 0);
        b.destroy_workflow(&live).await.expect("destroy");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_of_other_kinds_are_left_alone() {
    let Some(env) = TestEnv::new("reap-server").await else {
        return;
    };
    within_timeout(async {
        let server = DockerConfig {
            owner: "server:gantry-0".to_string(),
            extra_labels: env.backend.config().extra_labels.clone(),
            ..DockerConfig::default()
        };
        let server = gantry_docker::DockerBackend::connect(server)
            .await
            .expect("connect");
        let id = env.workflow("server-run");
        server
            .setup_workflow(&id, &plan(vec![], vec![]))
            .await
            .expect("setup");
        assert_eq!(env.backend.reap_leftovers().await.expect("reap"), 0);
        assert_eq!(
            env.leftovers().await.len(),
            3,
            "network, sandbox and workspace kept"
        );
        server.destroy_workflow(&id).await.expect("destroy");
    })
    .await;
    env.assert_nothing_left().await;
}
