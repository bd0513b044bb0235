//! Secrets and API tokens.

use std::sync::Arc;

use gantry_store::{LogCap, NewToken, SecretKey, SecretValue, StoreError, TokenRole, token_hash};

use crate::fixtures;
use crate::support::Harness;

pub async fn secret_round_trip_and_ciphertext_differs(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let repo = fixtures::repo(store, "app").await;
    let value = SecretValue::new("pa55word-multi\nline");
    store
        .set_secret(repo.id, "db_password", &value, 10)
        .await
        .unwrap();
    store
        .set_secret(repo.id, "api_token", &SecretValue::new("tok"), 11)
        .await
        .unwrap();
    let names = [
        "db_password".to_string(),
        "api_token".to_string(),
        "missing".to_string(),
    ];
    let values = store.secret_values(repo.id, &names).await.unwrap();
    let plain: Vec<(&str, &str)> = values
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose()))
        .collect();
    assert_eq!(
        plain,
        [
            ("api_token", "tok"),
            ("db_password", "pa55word-multi\nline")
        ]
    );

    let sealed = h
        .raw_column("SELECT sealed FROM secrets ORDER BY name")
        .await;
    assert_eq!(sealed.len(), 2);
    for bytes in &sealed {
        assert!(bytes.len() > 24 + 16, "nonce, ciphertext and tag");
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains("pa55word") && !text.contains("tok"),
            "stored encrypted"
        );
    }
    store
        .set_secret(repo.id, "db_password", &value, 12)
        .await
        .unwrap();
    let resealed = h
        .raw_column("SELECT sealed FROM secrets WHERE name = 'db_password'")
        .await;
    assert_ne!(resealed[0], sealed[1], "a fresh nonce each time");

    let listed = store.list_secrets(repo.id).await.unwrap();
    let listed: Vec<(&str, i64, i64)> = listed
        .iter()
        .map(|s| (s.name.as_str(), s.created_at, s.updated_at))
        .collect();
    assert_eq!(listed, [("api_token", 11, 11), ("db_password", 10, 12)]);
    assert!(store.delete_secret(repo.id, "api_token").await.unwrap());
    assert!(!store.delete_secret(repo.id, "api_token").await.unwrap());
    assert!(
        !format!("{values:?}").contains("pa55word"),
        "Debug hides values"
    );
    let error = store
        .set_secret(repo.id, "bad name!", &value, 13)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("secret.name"), "{error}");
    let error = store.set_secret(9_999, "x", &value, 13).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound { .. }), "{error:?}");
}

pub async fn secret_under_another_key_is_a_clear_error(h: Arc<Harness>) {
    let repo = fixtures::repo(h.store.as_ref(), "app").await;
    let value = SecretValue::new("s3cr3t-value");
    h.store
        .set_secret(repo.id, "deploy_key", &value, 1)
        .await
        .unwrap();
    let other_key = SecretKey::generate().unwrap();
    let other = h.reopen(LogCap::default(), Some(other_key)).await;
    let error = other
        .secret_values(repo.id, &["deploy_key".to_string()])
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StoreError::Decrypt { .. }), "{error:?}");
    assert!(
        message.contains("deploy_key") && !message.contains("s3cr3t"),
        "{message}"
    );
    other.close().await;
}

pub async fn token_only_hash_is_stored(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let admin = NewToken {
        name: "bootstrap".into(),
        subject: "admin".into(),
        role: TokenRole::Admin,
        scope: None,
    };
    let (token, plaintext) = store.create_token(&admin, 100).await.unwrap();
    assert_eq!(
        (token.role, token.last_used_at, token.revoked_at),
        (TokenRole::Admin, None, None)
    );
    let stored = h.raw_text("SELECT token_hash FROM api_tokens").await;
    assert_eq!(stored, [token_hash(plaintext.expose())]);
    assert!(!stored[0].contains(plaintext.expose()));

    let verified = store
        .verify_token(plaintext.expose(), 200)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((verified.id, verified.last_used_at), (token.id, Some(200)));
    assert_eq!(store.verify_token("gantry_wrong", 201).await.unwrap(), None);

    let ci = NewToken {
        name: "ci".into(),
        subject: "ada".into(),
        role: TokenRole::User,
        scope: Some("repo:acme/app".into()),
    };
    let imported = store
        .import_token(&ci, "a-long-token-from-the-environment", 300)
        .await
        .unwrap();
    let again = store
        .import_token(&ci, "a-long-token-from-the-environment", 301)
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Conflict { .. }));
    assert!(store.import_token(&ci, "short", 302).await.is_err());
    let listed: Vec<i64> = store
        .list_tokens()
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, [imported.id, token.id]);

    assert!(store.revoke_token(token.id, 400).await.unwrap());
    assert!(!store.revoke_token(token.id, 401).await.unwrap());
    assert_eq!(
        store.verify_token(plaintext.expose(), 402).await.unwrap(),
        None,
        "revoked"
    );
    let found = store
        .verify_token("a-long-token-from-the-environment", 403)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.scope.as_deref(), Some("repo:acme/app"));
}
