//! Builds, workflows and steps.

use std::collections::BTreeSet;
use std::sync::Arc;

use gantry_store::{
    Approval, ApprovalDecision, BuildPage, RunStatus, StatusChange, StepChange, StoreError,
};

use crate::fixtures;
use crate::support::Harness;

pub async fn build_numbers_are_distinct_under_concurrent_creates(h: Arc<Harness>) {
    let repo = fixtures::repo(h.store.as_ref(), "app").await;
    let other = fixtures::repo(h.store.as_ref(), "other").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            let workflows = [fixtures::workflow("default", &[], &["test"])];
            let build = fixtures::new_build(repo.id, RunStatus::Pending);
            store
                .create_build(&build, &workflows)
                .await
                .unwrap()
                .build
                .number
        }));
    }
    let mut numbers = BTreeSet::new();
    for task in tasks {
        assert!(numbers.insert(task.await.unwrap()), "duplicate number");
    }
    assert_eq!(numbers, (1..=20).collect::<BTreeSet<i64>>());
    let first_other = fixtures::pending_build(h.store.as_ref(), other.id).await;
    assert_eq!(first_other.build.number, 1, "numbers count per repository");
}

pub async fn build_detail_holds_workflows_and_steps(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let workflows = [
        fixtures::workflow("linux", &[("os", "linux")], &["build", "test"]),
        fixtures::workflow("arm", &[("arch", "arm64")], &["build"]),
    ];
    let created = store
        .create_build(
            &fixtures::new_build(repo.id, RunStatus::Pending),
            &workflows,
        )
        .await
        .unwrap();
    let fetched = store.build_by_number(repo.id, 1).await.unwrap().unwrap();
    assert_eq!(fetched, created);
    assert_eq!(
        store.build_by_id(created.build.id).await.unwrap().unwrap(),
        created
    );
    assert_eq!(store.build_by_number(repo.id, 2).await.unwrap(), None);
    let names: Vec<&str> = fetched
        .workflows
        .iter()
        .map(|w| w.workflow.name.as_str())
        .collect();
    assert_eq!(names, ["linux", "arm"]);
    let linux = &fetched.workflows[0];
    assert_eq!(
        linux.workflow.labels,
        fixtures::labels_map(&[("os", "linux")])
    );
    assert_eq!(linux.workflow.plan, "{\"workflow\":\"linux\"}");
    let steps: Vec<(&str, &str, Vec<String>)> = linux
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.kind.as_str(), s.needs.clone()))
        .collect();
    assert_eq!(
        steps,
        [
            ("clone", "clone", vec![]),
            ("build", "commands", vec!["clone".to_string()]),
            ("test", "commands", vec!["build".to_string()]),
        ]
    );
    assert!(linux.steps.iter().all(|s| s.status == RunStatus::Pending));
    let build = &fetched.build;
    assert_eq!(
        (
            build.sha.len(),
            build.author.as_str(),
            build.sender.as_str()
        ),
        (40, "Ada", "ada")
    );

    let duplicate = [fixtures::workflow("dup", &[], &["clone"])];
    let error = store
        .create_build(
            &fixtures::new_build(repo.id, RunStatus::Pending),
            &duplicate,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("step name `clone` is used twice"), "{error}");
    let missing = store
        .create_build(&fixtures::new_build(9_999, RunStatus::Pending), &[])
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));
}

pub async fn build_list_is_newest_first_and_paged(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    for _ in 0..7 {
        fixtures::pending_build(store, repo.id).await;
    }
    let page = |before_number, limit| BuildPage {
        before_number,
        limit,
    };
    let first: Vec<i64> = store
        .list_builds(repo.id, page(None, 3))
        .await
        .unwrap()
        .iter()
        .map(|b| b.number)
        .collect();
    assert_eq!(first, [7, 6, 5]);
    let second: Vec<i64> = store
        .list_builds(repo.id, page(Some(5), 3))
        .await
        .unwrap()
        .iter()
        .map(|b| b.number)
        .collect();
    assert_eq!(second, [4, 3, 2]);
    let last: Vec<i64> = store
        .list_builds(repo.id, page(Some(2), 3))
        .await
        .unwrap()
        .iter()
        .map(|b| b.number)
        .collect();
    assert_eq!(last, [1]);
    assert_eq!(
        store
            .list_builds(repo.id, page(None, 0))
            .await
            .unwrap()
            .len(),
        7
    );
}

pub async fn build_that_did_not_compile_keeps_its_diagnostics(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let mut build = fixtures::new_build(repo.id, RunStatus::Error);
    build.error = Some(".pipeline.yml does not compile".to_string());
    build.diagnostics =
        Some(r#"[{"line":3,"column":5,"message":"unknown step `tset`"}]"#.to_string());
    let created = store.create_build(&build, &[]).await.unwrap();
    assert_eq!(created.build.status, RunStatus::Error);
    assert_eq!(created.build.finished_at, Some(1_000));
    assert_eq!(created.build.diagnostics, build.diagnostics);
    assert!(created.workflows.is_empty());
    assert!(
        store.list_pending().await.unwrap().is_empty(),
        "an error build is not queued"
    );
    let running = fixtures::new_build(repo.id, RunStatus::Running);
    assert!(
        store.create_build(&running, &[]).await.is_err(),
        "a build starts pending"
    );
}

fn change(status: RunStatus, at: i64) -> StatusChange {
    StatusChange {
        status,
        at,
        error: None,
    }
}

pub async fn status_moves_forward_only(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let detail = fixtures::pending_build(store, repo.id).await;
    let (build, workflow) = (detail.build.id, detail.workflows[0].workflow.id);
    let step = detail.workflows[0].steps[1].id;

    assert!(
        store
            .update_build_status(build, &change(RunStatus::Running, 10))
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_build_status(build, &change(RunStatus::Running, 11))
            .await
            .unwrap(),
        "no change"
    );
    assert!(
        store
            .update_build_status(build, &change(RunStatus::Blocked, 12))
            .await
            .unwrap()
    );
    assert!(
        store
            .update_build_status(build, &change(RunStatus::Running, 13))
            .await
            .unwrap(),
        "approved"
    );
    assert!(
        store
            .update_build_status(build, &change(RunStatus::Success, 20))
            .await
            .unwrap()
    );
    for status in [RunStatus::Running, RunStatus::Failure, RunStatus::Error] {
        assert!(
            !store
                .update_build_status(build, &change(status, 30))
                .await
                .unwrap(),
            "final"
        );
    }
    let error = store
        .update_build_status(build, &change(RunStatus::Pending, 40))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("forward only"), "{error}");
    let stored = store.build_by_id(build).await.unwrap().unwrap().build;
    assert_eq!(
        (stored.status, stored.started_at, stored.finished_at),
        (RunStatus::Success, Some(10), Some(20))
    );

    assert!(
        store
            .update_workflow_status(workflow, &change(RunStatus::Running, 10))
            .await
            .unwrap()
    );
    let failed = StatusChange {
        status: RunStatus::Error,
        at: 15,
        error: Some("runner lost".into()),
    };
    assert!(
        store
            .update_workflow_status(workflow, &failed)
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_workflow_status(workflow, &change(RunStatus::Success, 16))
            .await
            .unwrap()
    );

    let run = StepChange {
        status: RunStatus::Running,
        at: 11,
        exit_code: None,
        error: None,
        runner_id: Some("r1".into()),
    };
    assert!(store.update_step(step, &run).await.unwrap());
    let exit = StepChange {
        status: RunStatus::Failure,
        at: 14,
        exit_code: Some(2),
        error: None,
        runner_id: None,
    };
    assert!(store.update_step(step, &exit).await.unwrap());
    let late = StepChange {
        status: RunStatus::Success,
        at: 15,
        exit_code: Some(0),
        error: None,
        runner_id: None,
    };
    assert!(
        !store.update_step(step, &late).await.unwrap(),
        "a finished step stays finished"
    );
    let detail = store.build_by_id(build).await.unwrap().unwrap();
    let stored_step = &detail.workflows[0].steps[1];
    assert_eq!(
        (
            stored_step.status,
            stored_step.exit_code,
            stored_step.runner_id.as_deref()
        ),
        (RunStatus::Failure, Some(2), Some("r1"))
    );
    assert_eq!(
        (stored_step.started_at, stored_step.finished_at),
        (Some(11), Some(14))
    );
    assert_eq!(
        detail.workflows[0].workflow.error.as_deref(),
        Some("runner lost")
    );
}

pub async fn approval_is_recorded_once(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let workflows = [fixtures::workflow(
        "default",
        &[],
        &["approve-prod", "deploy"],
    )];
    let detail = store
        .create_build(
            &fixtures::new_build(repo.id, RunStatus::Pending),
            &workflows,
        )
        .await
        .unwrap();
    let steps = &detail.workflows[0].steps;
    let (approval_step, deploy) = (steps[1].id, steps[2].id);
    let blocked = StepChange {
        status: RunStatus::Blocked,
        at: 5,
        exit_code: None,
        error: None,
        runner_id: None,
    };
    assert!(store.update_step(approval_step, &blocked).await.unwrap());
    let yes = Approval {
        by: "grace".into(),
        at: 9,
        decision: ApprovalDecision::Approved,
    };
    assert!(
        !store.decide_approval(deploy, &yes).await.unwrap(),
        "not an approval step"
    );
    assert!(store.decide_approval(approval_step, &yes).await.unwrap());
    let no = Approval {
        by: "mallory".into(),
        at: 10,
        decision: ApprovalDecision::Rejected,
    };
    assert!(
        !store.decide_approval(approval_step, &no).await.unwrap(),
        "decided once"
    );
    let stored = store.build_by_id(detail.build.id).await.unwrap().unwrap();
    let step = &stored.workflows[0].steps[1];
    assert_eq!(step.status, RunStatus::Success);
    assert_eq!(step.approval, Some(yes));
}
