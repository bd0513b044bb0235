//! The repository's build timeout stops a build that runs too long (the shortest timeout
//! is one minute, so this test takes a little over one).

mod run_common;

use gantry_server::BackendChoice;
use gantry_store::{RepoSettings, RunStatus};
use run_common::{SHA, start, step, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_past_the_repository_timeout_ends_in_error_saying_so() {
    within(150, "timeout", async {
        let t = start(BackendChoice::Local).await;
        let repo = t.repo("slowpoke", false).await;
        let settings = RepoSettings {
            timeout_minutes: 1,
            ..RepoSettings::default()
        };
        let repo = t
            .state()
            .store
            .update_repo(repo.id, &settings)
            .await
            .unwrap();
        let yaml = "steps:\n  - name: forever\n    image: busybox\n    commands: [sleep 600]\n";
        let queued = t.queue(&repo, yaml, false, SHA).await;
        let done = t.finished(queued.build.id).await;
        assert_eq!(done.build.status, RunStatus::Error, "{done:#?}");
        let why = done.build.error.clone().unwrap_or_default();
        assert!(why.contains("timeout of 1 minute and"), "{why}");
        assert_eq!(step(&done, "forever").status, RunStatus::Killed);
        t.server.shutdown().await;
    })
    .await;
}
