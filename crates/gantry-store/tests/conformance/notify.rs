//! Notifications between replicas: delivered in order to every listener on Postgres,
//! absent on SQLite; oversized payloads are refused on both.

use std::sync::Arc;
use std::time::Duration;

use gantry_store::{DatabaseKind, MAX_NOTIFY_PAYLOAD, Notification, StoreError};

use crate::support::Harness;

pub async fn notifications_reach_every_listener_in_order(h: Arc<Harness>) {
    let store = &*h.store;
    let too_big = "x".repeat(MAX_NOTIFY_PAYLOAD + 1);
    let refused = store.notify(&too_big).await.unwrap_err();
    assert!(
        matches!(refused, StoreError::InvalidInput { .. }),
        "{refused}"
    );
    if store.kind() == DatabaseKind::Sqlite {
        assert!(
            store.listen().await.unwrap().is_none(),
            "SQLite has no other replica"
        );
        store.notify("ignored").await.unwrap();
        return;
    }
    // A second store stands for another replica on the same database.
    let other = h.reopen(Default::default(), None).await;
    let mut here = store.listen().await.unwrap().expect("a Postgres listener");
    let mut there = other.listen().await.unwrap().expect("a Postgres listener");
    for payload in ["first", "second", &"y".repeat(MAX_NOTIFY_PAYLOAD)] {
        store.notify(payload).await.unwrap();
    }
    for listener in [&mut here, &mut there] {
        let mut got = Vec::new();
        while got.len() < 3 {
            let next = tokio::time::timeout(Duration::from_secs(10), listener.recv())
                .await
                .expect("a notification within 10 s")
                .unwrap();
            if let Notification::Payload(payload) = next {
                got.push(payload);
            }
        }
        assert_eq!(got[..2], ["first", "second"]);
        assert_eq!(got[2].len(), MAX_NOTIFY_PAYLOAD);
    }
    // A pool closes only once its listeners are gone.
    drop((here, there));
    other.close().await;
}
