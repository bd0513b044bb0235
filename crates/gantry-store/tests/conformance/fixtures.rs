//! Small builders for the cases.

use std::collections::BTreeMap;

use gantry_store::{
    BuildDetail, BuildEvent, ForgeKind, NewBuild, NewRepo, NewStep, NewWorkflow, Repo, RunStatus,
    Store,
};

/// A repository `acme/<name>`.
pub async fn repo(store: &dyn Store, name: &str) -> Repo {
    store
        .create_repo(&NewRepo::new(
            "acme",
            name,
            ForgeKind::Github,
            &format!("https://forge.invalid/acme/{name}.git"),
            "hook-secret",
        ))
        .await
        .expect("create repo")
}

/// A push build in the given status.
pub fn new_build(repo_id: i64, status: RunStatus) -> NewBuild {
    NewBuild {
        repo_id,
        event: BuildEvent::Push,
        git_ref: "refs/heads/main".to_string(),
        sha: "0123456789abcdef0123456789abcdef01234567".to_string(),
        before: String::new(),
        message: "fix the thing".to_string(),
        author: "Ada".to_string(),
        sender: "ada".to_string(),
        status,
        error: None,
        parent_id: None,
        deploy_target: None,
        diagnostics: None,
        created_at: 1_000,
    }
}

/// A workflow with steps `clone`, then each name needing the one before.
pub fn workflow(name: &str, labels: &[(&str, &str)], steps: &[&str]) -> NewWorkflow {
    let mut new_steps = vec![NewStep {
        name: "clone".to_string(),
        kind: "clone".to_string(),
        needs: vec![],
    }];
    let mut previous = "clone".to_string();
    for step in steps {
        new_steps.push(NewStep {
            name: step.to_string(),
            kind: if step.starts_with("approve") {
                "approval"
            } else {
                "commands"
            }
            .to_string(),
            needs: vec![previous.clone()],
        });
        previous = step.to_string();
    }
    NewWorkflow {
        name: name.to_string(),
        plan: format!("{{\"workflow\":\"{name}\"}}"),
        labels: labels_map(labels),
        steps: new_steps,
    }
}

/// Labels from pairs.
pub fn labels_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A pending build with one workflow of steps `clone, test`.
pub async fn pending_build(store: &dyn Store, repo_id: i64) -> BuildDetail {
    store
        .create_build(
            &new_build(repo_id, RunStatus::Pending),
            &[workflow("default", &[], &["test"])],
        )
        .await
        .expect("create build")
}
