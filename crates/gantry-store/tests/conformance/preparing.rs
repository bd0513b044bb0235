//! Hook builds recorded with their delivery, then prepared (or ended) by id.

use std::sync::Arc;

use gantry_store::{
    BuildPage, NewBuild, Preparation, PreparationClaim, RecoveryRequest, RunStatus, StatusChange,
    Store, StoreError,
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

fn claim(claimer: &str, now: i64, until: i64) -> PreparationClaim {
    PreparationClaim {
        claimer: claimer.to_string(),
        now,
        until,
    }
}

pub async fn a_preparation_is_claimed_once_and_taken_again_when_its_lease_ends(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let first = record(store, repo.id, "d-1").await.unwrap();
    let second = record(store, repo.id, "d-2").await.unwrap();
    let unclaimed = store.preparing_builds().await.unwrap();
    assert_eq!((unclaimed[0].attempts, unclaimed[0].claimed_until), (0, 0));

    // Of two replicas claiming the same build, one wins.
    let a = claim("replica-a", 1_000, 61_000);
    assert_eq!(
        store.claim_preparation(first.id, &a).await.unwrap(),
        Some(1)
    );
    let b = claim("replica-b", 1_001, 61_001);
    assert_eq!(store.claim_preparation(first.id, &b).await.unwrap(), None);
    // b's sweep takes only the unclaimed one; a second sweep finds nothing.
    let swept = store.claim_stale_preparations(&b, false, 10).await.unwrap();
    let ids: Vec<i64> = swept.iter().map(|p| p.build.id).collect();
    assert_eq!(ids, [second.id]);
    assert_eq!(swept[0].claimed_by.as_deref(), Some("replica-b"));
    assert_eq!((swept[0].attempts, swept[0].claimed_until), (1, 61_001));
    assert_eq!(swept[0].trigger, FACTS);
    assert!(
        store
            .claim_stale_preparations(&b, false, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A restarted a takes back its own claim before its lease ends; b cannot renew a's.
    let a_again = claim("replica-a", 2_000, 62_000);
    let own = store
        .claim_stale_preparations(&a_again, true, 10)
        .await
        .unwrap();
    assert_eq!(
        own.iter().map(|p| p.build.id).collect::<Vec<_>>(),
        [first.id]
    );
    assert_eq!(own[0].attempts, 2);
    assert!(
        !store
            .renew_preparation(first.id, "replica-b", 90_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .renew_preparation(first.id, "replica-a", 90_000)
            .await
            .unwrap()
    );

    // a dies: once its lease ends, b's sweep takes the build.
    let late = claim("replica-b", 90_001, 150_001);
    let taken = store
        .claim_stale_preparations(&late, false, 1)
        .await
        .unwrap();
    assert_eq!(
        taken.iter().map(|p| p.build.id).collect::<Vec<_>>(),
        [first.id]
    );
    assert_eq!(taken[0].attempts, 3);
    assert!(
        !store
            .renew_preparation(first.id, "replica-a", 200_000)
            .await
            .unwrap()
    );

    // A failed attempt releases the claim: the next sweep retries at once.
    assert!(
        !store
            .release_preparation(second.id, "replica-a")
            .await
            .unwrap()
    );
    assert!(
        store
            .release_preparation(second.id, "replica-b")
            .await
            .unwrap()
    );
    let retried = store.claim_stale_preparations(&a, false, 10).await.unwrap();
    assert_eq!(
        retried.iter().map(|p| p.build.id).collect::<Vec<_>>(),
        [second.id]
    );
    assert_eq!(retried[0].attempts, 2);

    // A prepared build has no trigger left to claim.
    assert!(
        store
            .finish_preparation(first.id, &preparation(RunStatus::Pending, 1))
            .await
            .unwrap()
    );
    let after = claim("replica-c", 500_000, 560_000);
    assert_eq!(
        store.claim_preparation(first.id, &after).await.unwrap(),
        None
    );
    let rest = store
        .claim_stale_preparations(&after, false, 10)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|p| p.build.id).collect::<Vec<_>>(),
        [second.id]
    );
}
