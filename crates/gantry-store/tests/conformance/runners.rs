//! Runner tokens' scopes, claims restricted to repositories, and runner presence.

use std::sync::Arc;

use gantry_store::{NewToken, RunnerPresence, RunnerScope, StoreError, TokenRole};

use crate::fixtures;
use crate::support::Harness;

const LEASE: i64 = 30_000;

fn runner_token(name: &str) -> NewToken {
    NewToken {
        name: name.to_string(),
        subject: name.to_string(),
        role: TokenRole::Runner,
        scope: None,
    }
}

pub async fn runner_token_scope_is_stored_and_checked(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let scope = RunnerScope {
        labels: fixtures::labels_map(&[("gpu", "true"), ("os", "linux")]),
        repos: Some(vec!["acme/app".into(), "tools/*".into()]),
    };
    let (token, plaintext) = store
        .create_runner_token(&runner_token("gpu-01"), &scope, 10)
        .await
        .unwrap();
    assert_eq!(
        (token.labels.clone(), token.repos.clone()),
        (scope.labels.clone(), scope.repos.clone())
    );
    let verified = store
        .verify_token(plaintext.expose(), 11)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (verified.labels, verified.repos),
        (scope.labels.clone(), scope.repos.clone())
    );
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed[0].repos, scope.repos);

    // Unscoped tokens read back as before: no labels, every repository.
    let (plain, _) = store
        .create_token(&runner_token("plain"), 12)
        .await
        .unwrap();
    assert!(plain.labels.is_empty() && plain.repos.is_none());
    let (unscoped, _) = store
        .create_runner_token(&runner_token("plain2"), &RunnerScope::default(), 12)
        .await
        .unwrap();
    assert!(unscoped.labels.is_empty() && unscoped.repos.is_none());

    for (bad, what) in [
        (
            RunnerScope {
                repos: Some(vec![]),
                ..RunnerScope::default()
            },
            "allow nothing",
        ),
        (
            RunnerScope {
                repos: Some(vec!["acme".into()]),
                ..RunnerScope::default()
            },
            "owner/name",
        ),
        (
            RunnerScope {
                labels: fixtures::labels_map(&[("os", "")]),
                ..RunnerScope::default()
            },
            "label",
        ),
    ] {
        let error = store
            .create_runner_token(&runner_token("bad"), &bad, 13)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::InvalidInput { reason, .. } if reason.contains(what)),
            "{error:?}"
        );
    }
    let user = NewToken {
        role: TokenRole::User,
        ..runner_token("user")
    };
    let error = store
        .create_runner_token(&user, &scope, 14)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidInput { .. }),
        "{error:?}"
    );
    assert_eq!(
        store.list_tokens().await.unwrap().len(),
        3,
        "nothing stored when refused"
    );
}

pub async fn a_repo_scoped_claim_passes_over_other_repositories(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let other = fixtures::repo(store, "other").await;
    let app = fixtures::repo(store, "app").await;
    let other_build = fixtures::pending_build(store, other.id).await;
    let app_build = fixtures::pending_build(store, app.id).await;
    let none = fixtures::labels_map(&[]);

    let nothing = ["acme/missing".to_string()];
    let got = store
        .claim_next_in("runner:1", &none, Some(&nothing), 100, LEASE)
        .await
        .unwrap();
    assert_eq!(got, None, "a scope naming no repository claims nothing");

    let scoped = ["acme/app".to_string()];
    let item = store
        .claim_next_in("runner:1", &none, Some(&scoped), 100, LEASE)
        .await
        .unwrap()
        .expect("the app's item");
    assert_eq!((item.build_id, item.repo_id), (app_build.build.id, app.id));
    let again = store
        .claim_next_in("runner:1", &none, Some(&scoped), 101, LEASE)
        .await
        .unwrap();
    assert_eq!(again, None, "the other repository's item is passed over");
    let pending = store.list_pending().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].build_id, other_build.build.id);

    let owner = ["acme/*".to_string()];
    let item = store
        .claim_next_in("runner:2", &none, Some(&owner), 102, LEASE)
        .await
        .unwrap()
        .expect("an owner pattern names every repository of the owner");
    assert_eq!(item.repo_id, other.id);
}

fn presence(connection: &str, runner_id: &str, connected_at: i64) -> RunnerPresence {
    RunnerPresence {
        connection: connection.to_string(),
        runner_id: runner_id.to_string(),
        name: "r".to_string(),
        labels: fixtures::labels_map(&[("os", "linux")]),
        repos: Some(vec!["acme/app".into()]),
        capacity: 2,
        replica: String::new(),
        connected_at,
        last_seen: 0,
    }
}

pub async fn runner_presence_is_shared_and_stale_rows_go(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let a1 = presence("a/1", "runner:1", 100);
    let b1 = presence("b/1", "runner:2", 150);
    store
        .sync_presence("a", std::slice::from_ref(&a1), 1_000, 0)
        .await
        .unwrap();
    store
        .sync_presence("b", std::slice::from_ref(&b1), 1_000, 0)
        .await
        .unwrap();
    let listed = store.list_presence(0).await.unwrap();
    let seen: Vec<(&str, &str, i64)> = listed
        .iter()
        .map(|p| (p.connection.as_str(), p.replica.as_str(), p.connected_at))
        .collect();
    assert_eq!(seen, vec![("a/1", "a", 100), ("b/1", "b", 150)]);
    assert_eq!(listed[0].labels, a1.labels);
    assert_eq!(listed[0].repos, a1.repos);
    assert_eq!((listed[0].capacity, listed[0].last_seen), (2, 1_000));

    // A refresh keeps connected_at; a connection gone from its replica's list is removed.
    let a2 = presence("a/2", "runner:3", 900);
    store
        .sync_presence("a", &[presence("a/1", "runner:1", 999), a2], 2_000, 0)
        .await
        .unwrap();
    let listed = store.list_presence(0).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(
        (
            listed[0].connection.as_str(),
            listed[0].connected_at,
            listed[0].last_seen
        ),
        ("a/1", 100, 2_000)
    );
    store
        .sync_presence("a", &[presence("a/2", "runner:3", 900)], 3_000, 0)
        .await
        .unwrap();
    let connections: Vec<String> = store
        .list_presence(0)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.connection)
        .collect();
    assert_eq!(connections, vec!["b/1", "a/2"]);

    // Rows not refreshed are ignored by a reader and removed by the next sync.
    assert_eq!(
        store.list_presence(2_000).await.unwrap().len(),
        1,
        "b's row is old"
    );
    store.sync_presence("a", &[], 4_000, 2_000).await.unwrap();
    assert!(store.list_presence(0).await.unwrap().is_empty());
}
