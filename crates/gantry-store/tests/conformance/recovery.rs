//! Crash recovery.

use std::collections::BTreeMap;
use std::sync::Arc;

use gantry_store::{
    BuildDetail, QueueState, RecoveryRequest, RunStatus, StatusChange, StepChange, Store,
};

use crate::fixtures;
use crate::support::Harness;

const MESSAGE: &str = "the server stopped while this build ran";

fn request(now: i64, dead: &[&str]) -> RecoveryRequest {
    RecoveryRequest {
        now,
        dead_runners: dead.iter().map(|r| r.to_string()).collect(),
        message: MESSAGE.to_string(),
    }
}

/// Claims the next item as `runner` and, when `start`, marks its workflow and first step running.
async fn claim(store: &dyn Store, runner: &str, lease: i64, start: bool) -> i64 {
    let item = store
        .claim_next(runner, &BTreeMap::new(), 0, lease)
        .await
        .unwrap()
        .unwrap();
    if start {
        let running = StatusChange {
            status: RunStatus::Running,
            at: 5,
            error: None,
        };
        store
            .update_build_status(item.build_id, &running)
            .await
            .unwrap();
        store
            .update_workflow_status(item.workflow_id, &running)
            .await
            .unwrap();
        let detail = store.build_by_id(item.build_id).await.unwrap().unwrap();
        let step = detail.workflows[0].steps[0].id;
        let change = StepChange {
            status: RunStatus::Running,
            at: 6,
            exit_code: None,
            error: None,
            runner_id: Some(runner.into()),
        };
        store.update_step(step, &change).await.unwrap();
    }
    item.id
}

async fn detail(store: &dyn Store, build: &BuildDetail) -> BuildDetail {
    store.build_by_id(build.build.id).await.unwrap().unwrap()
}

pub async fn recovery_errors_started_builds_and_requeues_unstarted_work(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let started = fixtures::pending_build(store, repo.id).await;
    let unstarted = fixtures::pending_build(store, repo.id).await;
    let healthy = fixtures::pending_build(store, repo.id).await;
    claim(store, "in-process", 1_000_000, true).await;
    let unstarted_item = claim(store, "remote-a", 100, false).await;
    claim(store, "remote-b", 1_000_000, true).await;

    let recovered = store
        .recover_interrupted(&request(500, &["in-process"]))
        .await
        .unwrap();
    assert_eq!(recovered.requeued_items, [unstarted_item]);
    assert_eq!(recovered.interrupted.len(), 1);
    let interrupted = &recovered.interrupted[0];
    assert_eq!(
        (interrupted.build_id, interrupted.number),
        (started.build.id, 1)
    );
    assert_eq!(interrupted.workflow_ids, [started.workflows[0].workflow.id]);
    assert_eq!(
        interrupted.steps.len(),
        1,
        "only the running step had a container"
    );
    assert_eq!(
        interrupted.steps[0].runner_id.as_deref(),
        Some("in-process")
    );

    let ended = detail(store, &started).await;
    assert_eq!(
        (ended.build.status, ended.build.error.as_deref()),
        (RunStatus::Error, Some(MESSAGE))
    );
    assert_eq!(ended.build.finished_at, Some(500));
    let steps: Vec<RunStatus> = ended.workflows[0].steps.iter().map(|s| s.status).collect();
    assert_eq!(steps, [RunStatus::Error, RunStatus::Skipped]);
    assert_eq!(ended.workflows[0].workflow.status, RunStatus::Error);
    assert_eq!(
        detail(store, &unstarted).await.build.status,
        RunStatus::Pending
    );
    assert_eq!(
        detail(store, &healthy).await.build.status,
        RunStatus::Running,
        "lease still valid"
    );
    let pending = store.list_pending().await.unwrap();
    assert_eq!(
        pending.iter().map(|i| i.id).collect::<Vec<_>>(),
        [unstarted_item]
    );
    assert_eq!(pending[0].state, QueueState::Pending);

    let again = store
        .recover_interrupted(&request(600, &["in-process"]))
        .await
        .unwrap();
    assert!(
        again.interrupted.is_empty() && again.requeued_items.is_empty(),
        "idempotent"
    );
}

pub async fn recovery_ends_orphaned_builds(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let orphan = fixtures::pending_build(store, repo.id).await;
    let running = StatusChange {
        status: RunStatus::Running,
        at: 5,
        error: None,
    };
    store
        .update_build_status(orphan.build.id, &running)
        .await
        .unwrap();
    let done = StatusChange {
        status: RunStatus::Success,
        at: 9,
        error: None,
    };
    store
        .update_workflow_status(orphan.workflows[0].workflow.id, &done)
        .await
        .unwrap();
    let blocked = fixtures::new_build(repo.id, RunStatus::Blocked);
    let waiting = store
        .create_build(&blocked, &[fixtures::workflow("w", &[], &["t"])])
        .await
        .unwrap();

    let recovered = store.recover_interrupted(&request(100, &[])).await.unwrap();
    let ids: Vec<i64> = recovered.interrupted.iter().map(|b| b.build_id).collect();
    assert_eq!(ids, [orphan.build.id]);
    assert_eq!(detail(store, &orphan).await.build.status, RunStatus::Error);
    assert_eq!(
        detail(store, &waiting).await.build.status,
        RunStatus::Blocked,
        "waits for approval"
    );
}

pub async fn recovery_leaves_a_build_another_replica_is_finishing(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let build = fixtures::pending_build(store, repo.id).await;
    claim(store, "server:other", 1_000, true).await;
    // Its workflow just ended; the build's own end is the next write of that replica.
    let done = StatusChange {
        status: RunStatus::Success,
        at: 9,
        error: None,
    };
    let workflow = build.workflows[0].workflow.id;
    store.update_workflow_status(workflow, &done).await.unwrap();

    let starting = request(100, &["server:me"]);
    let recovered = store.recover_interrupted(&starting).await.unwrap();
    assert!(recovered.interrupted.is_empty(), "{recovered:?}");
    assert_eq!(detail(store, &build).await.build.status, RunStatus::Running);

    // Once that lease ended nobody will end the build: now it is lost.
    let later = store
        .recover_interrupted(&request(2_000, &["server:me"]))
        .await
        .unwrap();
    let ids: Vec<i64> = later.interrupted.iter().map(|b| b.build_id).collect();
    assert_eq!(ids, [build.build.id]);
}
