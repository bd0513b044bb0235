//! Hook builds recorded with their delivery, then prepared (or ended) by id.

use std::sync::Arc;

use gantry_store::{
    BuildPage, NewBuild, Preparation, RecoveryRequest, RunStatus, StatusChange, Store, StoreError,
};

use crate::fixtures;
use crate::support::Harness;

const FACTS: &str = r#"{"branch":"main","before":"","pull_request":null}"#;
const PEELED: &str = "89abcdef0123456789abcdef0123456789abcdef";

fn preparation(status: RunStatus, workflows: usize) -> Preparation {
    Preparation {
        sha: PEELED.to_string(),
        status,
        error: (status != RunStatus::Pending).then(|| "it did not compile".to_string()),
        diagnostics: (status == RunStatus::Error).then(|| r#"[{"line":3}]"#.to_string()),
        workflows: (0..workflows)
            .map(|i| fixtures::workflow(&format!("w{i}"), &[], &["test"]))
            .collect(),
        at: 2_000,
    }
}

async fn record(store: &dyn Store, repo_id: i64, delivery: &str) -> Option<gantry_store::Build> {
    let build: NewBuild = fixtures::new_build(repo_id, RunStatus::Pending);
    store
        .record_hook_build(delivery, &build, FACTS)
        .await
        .unwrap()
}

pub async fn hook_build_is_recorded_once_then_prepared_once(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let build = record(store, repo.id, "d-1").await.expect("first delivery");
    assert_eq!((build.number, build.status), (1, RunStatus::Pending));
    assert!(record(store, repo.id, "d-1").await.is_none(), "a replay");
    assert!(!store.record_delivery(repo.id, "d-1", 5).await.unwrap());
    let shown = store.build_by_id(build.id).await.unwrap().unwrap();
    assert_eq!(shown.build.status, RunStatus::Pending);
    assert!(shown.workflows.is_empty(), "no steps before preparation");
    assert_eq!(
        store
            .list_builds(
                repo.id,
                BuildPage {
                    before_number: None,
                    limit: 0
                }
            )
            .await
            .unwrap()
            .len(),
        1
    );
    let preparing = store.preparing_builds().await.unwrap();
    assert_eq!(preparing.len(), 1);
    assert_eq!(
        (preparing[0].build.id, preparing[0].trigger.as_str()),
        (build.id, FACTS)
    );

    // A restart's recovery leaves it for preparation: it is not an orphan.
    let request = RecoveryRequest {
        now: 3_000,
        dead_runners: vec!["in-process".into()],
        message: "stopped".into(),
    };
    assert!(
        store
            .recover_interrupted(&request)
            .await
            .unwrap()
            .interrupted
            .is_empty()
    );
    assert_eq!(store.preparing_builds().await.unwrap().len(), 1);

    let outcome = preparation(RunStatus::Pending, 2);
    assert!(store.finish_preparation(build.id, &outcome).await.unwrap());
    let prepared = store.build_by_id(build.id).await.unwrap().unwrap();
    assert_eq!(prepared.build.sha, PEELED, "the peeled commit is recorded");
    assert_eq!(prepared.build.status, RunStatus::Pending);
    assert_eq!(prepared.workflows.len(), 2);
    assert_eq!(prepared.workflows[0].steps.len(), 2);
    let queued = store.list_pending().await.unwrap();
    assert_eq!(queued.len(), 2);
    assert!(
        queued
            .iter()
            .all(|q| q.build_id == build.id && q.enqueued_at == 2_000)
    );
    assert!(store.preparing_builds().await.unwrap().is_empty());
    assert!(
        !store.finish_preparation(build.id, &outcome).await.unwrap(),
        "prepared once"
    );
    assert_eq!(store.list_pending().await.unwrap().len(), 2);
}

pub async fn failed_preparation_ends_the_build_with_its_diagnostics(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let build = record(store, repo.id, "d-1").await.unwrap();
    let outcome = preparation(RunStatus::Error, 0);
    assert!(store.finish_preparation(build.id, &outcome).await.unwrap());
    let ended = store.build_by_id(build.id).await.unwrap().unwrap().build;
    assert_eq!(ended.status, RunStatus::Error);
    assert_eq!(ended.error.as_deref(), Some("it did not compile"));
    assert_eq!(ended.diagnostics.as_deref(), Some(r#"[{"line":3}]"#));
    assert_eq!(ended.finished_at, Some(2_000));
    assert!(store.list_pending().await.unwrap().is_empty());
    assert!(store.preparing_builds().await.unwrap().is_empty());
}

pub async fn a_build_cancelled_while_preparing_gets_nothing_attached(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let build = record(store, repo.id, "d-1").await.unwrap();
    let killed = StatusChange {
        status: RunStatus::Killed,
        at: 1_500,
        error: None,
    };
    assert!(store.update_build_status(build.id, &killed).await.unwrap());
    let outcome = preparation(RunStatus::Pending, 1);
    assert!(!store.finish_preparation(build.id, &outcome).await.unwrap());
    let shown = store.build_by_id(build.id).await.unwrap().unwrap();
    assert_eq!(shown.build.status, RunStatus::Killed);
    assert!(shown.workflows.is_empty());
    assert!(store.list_pending().await.unwrap().is_empty());
    assert!(store.preparing_builds().await.unwrap().is_empty());
}

pub async fn hook_build_bad_input_is_a_clear_error_and_records_nothing(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let running = fixtures::new_build(repo.id, RunStatus::Error);
    let error = store
        .record_hook_build("d-1", &running, FACTS)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidInput { .. }), "{error}");
    let pending = fixtures::new_build(repo.id, RunStatus::Pending);
    let error = store
        .record_hook_build("", &pending, FACTS)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("delivery id"), "{error}");
    assert!(
        store.record_delivery(repo.id, "d-1", 1).await.unwrap(),
        "not recorded before"
    );
    let build = record(store, repo.id, "d-2").await.unwrap();
    let wrong = preparation(RunStatus::Running, 0);
    let error = store
        .finish_preparation(build.id, &wrong)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("preparation.status"), "{error}");
    assert_eq!(
        store.preparing_builds().await.unwrap().len(),
        1,
        "still preparing"
    );
}
