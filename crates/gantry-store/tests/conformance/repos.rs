//! Repositories and webhook deliveries.

use std::sync::Arc;

use gantry_store::{ForgeKind, LogLine, NewRepo, RepoSettings, SecretValue, StoreError};

use crate::fixtures;
use crate::support::Harness;

pub async fn repo_create_get_list_update_delete(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let app = fixtures::repo(store, "app").await;
    let lib = fixtures::repo(store, "lib").await;
    assert_eq!(app.config_path, ".pipeline.yml");
    assert_eq!(app.timeout_minutes, 60);
    assert!(!app.trusted && !app.private);
    assert_eq!(store.repo_by_id(app.id).await.unwrap().as_ref(), Some(&app));
    assert_eq!(
        store.repo_by_name("acme", "app").await.unwrap().as_ref(),
        Some(&app)
    );
    assert_eq!(store.repo_by_name("acme", "nope").await.unwrap(), None);
    let names: Vec<String> = store
        .list_repos()
        .await
        .unwrap()
        .iter()
        .map(|r| r.full_name())
        .collect();
    assert_eq!(names, ["acme/app", "acme/lib"]);

    let settings = RepoSettings {
        config_path: ".ci/pipeline.yml".to_string(),
        trusted: true,
        timeout_minutes: 15,
        private: true,
    };
    let updated = store.update_repo(app.id, &settings).await.unwrap();
    assert_eq!(
        (
            updated.config_path.as_str(),
            updated.trusted,
            updated.timeout_minutes,
            updated.private
        ),
        (".ci/pipeline.yml", true, 15, true)
    );
    assert!(matches!(
        store.update_repo(9_999, &settings).await,
        Err(StoreError::NotFound { .. })
    ));

    assert!(store.delete_repo(lib.id).await.unwrap());
    assert!(!store.delete_repo(lib.id).await.unwrap());
    assert_eq!(store.list_repos().await.unwrap().len(), 1);
    assert!(
        !format!("{app:?}").contains("hook-secret"),
        "Debug hides the webhook secret"
    );
}

pub async fn repo_duplicate_is_a_conflict(h: Arc<Harness>) {
    let store = h.store.as_ref();
    fixtures::repo(store, "app").await;
    let again = NewRepo::new(
        "acme",
        "app",
        ForgeKind::Gitea,
        "https://x.invalid/a.git",
        "s",
    );
    let error = store.create_repo(&again).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");
    assert_eq!(error.to_string(), "repository acme/app already exists");
}

pub async fn repo_bad_input_is_a_clear_error(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let bad_name = NewRepo::new(
        "acme",
        "../etc",
        ForgeKind::Github,
        "https://x.invalid",
        "s",
    );
    let error = store.create_repo(&bad_name).await.unwrap_err().to_string();
    assert!(
        error.contains("repo.name") && error.contains("`../etc`"),
        "{error}"
    );
    let mut bad_timeout = NewRepo::new("acme", "app", ForgeKind::Github, "https://x.invalid", "s");
    bad_timeout.settings.timeout_minutes = 0;
    let error = store
        .create_repo(&bad_timeout)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("timeout_minutes") && error.contains("1 to 10080"),
        "{error}"
    );
    let mut bad_path = NewRepo::new("acme", "app", ForgeKind::Github, "https://x.invalid", "s");
    bad_path.settings.config_path = "/etc/passwd".to_string();
    let error = store.create_repo(&bad_path).await.unwrap_err().to_string();
    assert!(error.contains("relative path"), "{error}");
    assert!(
        store.list_repos().await.unwrap().is_empty(),
        "nothing was written"
    );
}

pub async fn repo_delete_cascades(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let build = fixtures::pending_build(store, repo.id).await;
    let step_id = build.workflows[0].steps[0].id;
    let line = LogLine {
        number: 0,
        stream: "stdout".into(),
        text: "hello".into(),
        elapsed_ms: 1,
    };
    store.append_logs(step_id, &[line]).await.unwrap();
    store
        .set_secret(repo.id, "token", &SecretValue::new("v"), 1)
        .await
        .unwrap();
    store.record_delivery(repo.id, "d-1", 1).await.unwrap();

    assert!(store.delete_repo(repo.id).await.unwrap());
    assert_eq!(store.build_by_id(build.build.id).await.unwrap(), None);
    assert!(store.read_logs(step_id, None, 0).await.unwrap().is_empty());
    assert!(store.list_pending().await.unwrap().is_empty());
    assert!(store.list_secrets(repo.id).await.unwrap().is_empty());
    let again = fixtures::repo(store, "app").await;
    assert!(store.record_delivery(again.id, "d-1", 2).await.unwrap());
}

pub async fn delivery_replay_is_detected(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let app = fixtures::repo(store, "app").await;
    let lib = fixtures::repo(store, "lib").await;
    assert!(
        store
            .record_delivery(app.id, "72d3162e-cc78", 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_delivery(app.id, "72d3162e-cc78", 2)
            .await
            .unwrap(),
        "a replay"
    );
    assert!(
        store
            .record_delivery(lib.id, "72d3162e-cc78", 3)
            .await
            .unwrap(),
        "per repository"
    );
    let error = store
        .record_delivery(app.id, "", 4)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("delivery id"), "{error}");
}

pub async fn repo_clone_url_and_webhook_secret_are_replaced(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let app = fixtures::repo(store, "app").await;
    let moved = store
        .set_clone_url(app.id, "https://forge.invalid/acme/moved.git")
        .await
        .unwrap();
    assert_eq!(moved.clone_url, "https://forge.invalid/acme/moved.git");
    assert_eq!(moved.webhook_secret, "hook-secret", "the secret stays");
    let rotated = store
        .set_webhook_secret(app.id, "a-new-hook-secret")
        .await
        .unwrap();
    assert_eq!(rotated.webhook_secret, "a-new-hook-secret");
    let stored = store.repo_by_id(app.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.clone_url.as_str(), stored.webhook_secret.as_str()),
        ("https://forge.invalid/acme/moved.git", "a-new-hook-secret")
    );
    let error = store.set_clone_url(app.id, " ").await.unwrap_err();
    assert!(error.to_string().contains("repo.clone_url"), "{error}");
    let error = store.set_webhook_secret(app.id, "").await.unwrap_err();
    assert!(error.to_string().contains("repo.webhook_secret"), "{error}");
    assert!(matches!(
        store.set_webhook_secret(9_999, "another-secret").await,
        Err(StoreError::NotFound { .. })
    ));
}
