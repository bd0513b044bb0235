//! The work queue.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gantry_store::{Completion, QueueState, RunStatus, StoreError};

use crate::fixtures;
use crate::support::Harness;

const LEASE: i64 = 30_000;

pub async fn pending_build_enqueues_each_workflow(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let workflows = [
        fixtures::workflow("linux", &[("os", "linux")], &["test"]),
        fixtures::workflow("windows", &[("os", "windows")], &["test"]),
    ];
    let detail = store
        .create_build(
            &fixtures::new_build(repo.id, RunStatus::Pending),
            &workflows,
        )
        .await
        .unwrap();
    let pending = store.list_pending().await.unwrap();
    let queued: Vec<(i64, BTreeMap<String, String>)> = pending
        .iter()
        .map(|i| (i.workflow_id, i.labels.clone()))
        .collect();
    let expected: Vec<(i64, BTreeMap<String, String>)> = detail
        .workflows
        .iter()
        .map(|w| (w.workflow.id, w.workflow.labels.clone()))
        .collect();
    assert_eq!(queued, expected);
    assert!(
        pending
            .iter()
            .all(|i| i.build_id == detail.build.id && i.repo_id == repo.id)
    );

    let blocked = store
        .create_build(
            &fixtures::new_build(repo.id, RunStatus::Blocked),
            &workflows,
        )
        .await
        .unwrap();
    assert_eq!(
        store.list_pending().await.unwrap().len(),
        2,
        "a blocked build waits"
    );
    let workflow = blocked.workflows[0].workflow.id;
    let item = store.enqueue(workflow, 50).await.unwrap();
    assert_eq!(
        (item.state, item.attempts, item.enqueued_at),
        (QueueState::Pending, 0, 50)
    );
    let twice = store.enqueue(workflow, 51).await.unwrap_err();
    assert!(matches!(twice, StoreError::Conflict { .. }), "{twice:?}");
    assert!(matches!(
        store.enqueue(9_999, 1).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn concurrent_claimers_get_each_item_exactly_once(h: Arc<Harness>) {
    let repo = fixtures::repo(h.store.as_ref(), "app").await;
    let workflows: Vec<_> = (0..30)
        .map(|n| fixtures::workflow(&format!("w{n}"), &[], &["test"]))
        .collect();
    for _ in 0..4 {
        h.store
            .create_build(
                &fixtures::new_build(repo.id, RunStatus::Pending),
                &workflows,
            )
            .await
            .unwrap();
    }
    assert_eq!(h.store.list_pending().await.unwrap().len(), 120);
    let mut claimers = Vec::new();
    for runner in 0..4 {
        let store = h.store.clone();
        claimers.push(tokio::spawn(async move {
            let runner_id = format!("runner-{runner}");
            let mut claimed = Vec::new();
            loop {
                let item = store
                    .claim_next(&runner_id, &BTreeMap::new(), 1_000, LEASE)
                    .await
                    .unwrap();
                match item {
                    Some(item) => {
                        assert_eq!(item.runner_id.as_deref(), Some(runner_id.as_str()));
                        claimed.push(item.id);
                    }
                    // Another claimer may hold the last rows for a moment.
                    None if store.list_pending().await.unwrap().is_empty() => break,
                    None => tokio::task::yield_now().await,
                }
            }
            claimed
        }));
    }
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 120, "every item claimed");
    assert_eq!(distinct.len(), 120, "no item claimed twice");
}

pub async fn claims_respect_runner_labels(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let workflows = [
        fixtures::workflow("gpu", &[("os", "linux"), ("gpu", "yes")], &["train"]),
        fixtures::workflow("plain", &[("os", "linux")], &["test"]),
    ];
    store
        .create_build(
            &fixtures::new_build(repo.id, RunStatus::Pending),
            &workflows,
        )
        .await
        .unwrap();
    let windows = fixtures::labels_map(&[("os", "windows")]);
    assert_eq!(
        store.claim_next("win", &windows, 1, LEASE).await.unwrap(),
        None
    );
    let linux = fixtures::labels_map(&[("os", "linux"), ("arch", "amd64")]);
    let first = store
        .claim_next("lin", &linux, 1, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.labels,
        fixtures::labels_map(&[("os", "linux")]),
        "skips the gpu item"
    );
    assert_eq!(
        (first.state, first.attempts, first.lease_until),
        (QueueState::Claimed, 1, Some(1 + LEASE))
    );
    assert_eq!(
        store.claim_next("lin", &linux, 1, LEASE).await.unwrap(),
        None
    );
    let waiting = store.list_pending().await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        waiting[0].labels.get("gpu").map(String::as_str),
        Some("yes")
    );
    let gpu = fixtures::labels_map(&[("os", "linux"), ("gpu", "yes")]);
    assert!(
        store
            .claim_next("big", &gpu, 1, LEASE)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store.claim_next("big", &gpu, 1, 0).await.is_err(),
        "a lease must be positive"
    );
}

pub async fn only_the_holder_extends_or_completes(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    fixtures::pending_build(store, repo.id).await;
    let item = store
        .claim_next("r1", &BTreeMap::new(), 100, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !store.extend_lease(item.id, "r2", 999_999).await.unwrap(),
        "another runner's id"
    );
    assert!(
        !store.complete(item.id, "r2").await.unwrap(),
        "another runner's id"
    );
    assert!(store.extend_lease(item.id, "r1", 200_000).await.unwrap());
    let requeue = store.requeue_expired(150_000, 3).await.unwrap();
    assert!(
        requeue.requeued.is_empty(),
        "the extended lease still holds"
    );
    assert!(store.complete(item.id, "r1").await.unwrap());
    // The holder's completion sent again (its answer was lost after the commit) succeeds
    // and says so; nobody else's does.
    assert!(store.complete(item.id, "r1").await.unwrap(), "idempotent");
    assert_eq!(
        store.complete_item(item.id, "r1").await.unwrap(),
        Completion::AlreadyDone
    );
    assert_eq!(
        store.complete_item(item.id, "r2").await.unwrap(),
        Completion::NotHeld
    );
    assert!(!store.complete(item.id, "r2").await.unwrap());
    assert!(
        !store.extend_lease(item.id, "r1", 300_000).await.unwrap(),
        "done items hold no lease"
    );
    assert_eq!(
        store
            .claim_next("r1", &BTreeMap::new(), 100, LEASE)
            .await
            .unwrap(),
        None
    );
}

pub async fn expired_leases_are_requeued_then_failed(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    fixtures::pending_build(store, repo.id).await;
    let none = BTreeMap::new();
    let mut now = 0;
    for attempt in 1..=2 {
        let item = store
            .claim_next("r1", &none, now, LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(item.attempts, attempt);
        assert!(
            store
                .requeue_expired(now + LEASE - 1, 3)
                .await
                .unwrap()
                .requeued
                .is_empty()
        );
        now += LEASE + 1;
        let outcome = store.requeue_expired(now, 3).await.unwrap();
        assert_eq!(outcome.requeued.len(), 1, "attempt {attempt} requeued");
        assert_eq!(outcome.requeued[0].runner_id, None);
        assert!(
            !store
                .extend_lease(item.id, "r1", now + LEASE)
                .await
                .unwrap(),
            "lease lost"
        );
    }
    store
        .claim_next("r1", &none, now, LEASE)
        .await
        .unwrap()
        .unwrap();
    now += LEASE + 1;
    let outcome = store.requeue_expired(now, 3).await.unwrap();
    assert!(outcome.requeued.is_empty());
    assert_eq!(outcome.failed.len(), 1);
    let failed = &outcome.failed[0];
    assert_eq!((failed.state, failed.attempts), (QueueState::Failed, 3));
    assert!(
        failed
            .error
            .as_deref()
            .unwrap()
            .contains("gave up after 3 attempts")
    );
    assert!(store.list_pending().await.unwrap().is_empty());
}

pub async fn cancel_drops_a_builds_items(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let cancelled = fixtures::pending_build(store, repo.id).await;
    let kept = fixtures::pending_build(store, repo.id).await;
    let claimed = store
        .claim_next("r1", &BTreeMap::new(), 1, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.build_id, cancelled.build.id);
    assert_eq!(
        store
            .cancel_build_items(cancelled.build.id, "cancelled by ada")
            .await
            .unwrap(),
        1
    );
    assert!(
        !store.extend_lease(claimed.id, "r1", 99).await.unwrap(),
        "the runner learns"
    );
    let pending = store.list_pending().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].build_id, kept.build.id);
}

/// A completion is idempotent only for the runner that completed the item: a former
/// holder whose lease was lost (the item requeued, claimed by another, done by it) gets
/// NotHeld, as it does for a failed item.
pub async fn completion_is_idempotent_for_its_runner_only(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    fixtures::pending_build(store, repo.id).await;
    let item = store
        .claim_next("r1", &BTreeMap::new(), 100, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.complete_item(item.id, "r2").await.unwrap(),
        Completion::NotHeld
    );
    let requeue = store.requeue_expired(100 + LEASE + 1, 3).await.unwrap();
    assert_eq!(requeue.requeued.len(), 1);
    assert_eq!(
        store.complete_item(item.id, "r1").await.unwrap(),
        Completion::NotHeld,
        "requeued: r1 no longer holds it"
    );
    let again = store
        .claim_next("r2", &BTreeMap::new(), 200 + LEASE, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, item.id);
    assert_eq!(
        store.complete_item(item.id, "r2").await.unwrap(),
        Completion::Completed
    );
    assert_eq!(
        store.complete_item(item.id, "r2").await.unwrap(),
        Completion::AlreadyDone
    );
    assert_eq!(
        store.complete_item(item.id, "r1").await.unwrap(),
        Completion::NotHeld,
        "the former holder"
    );
    assert!(!store.complete(item.id, "r1").await.unwrap());
    assert_eq!(
        store.complete_item(i64::MAX, "r2").await.unwrap(),
        Completion::NotHeld,
        "no such item"
    );
}
