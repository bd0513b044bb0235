//! Step logs.

use std::sync::Arc;

use gantry_store::{LogCap, LogLine, Store};

use crate::fixtures;
use crate::support::Harness;

fn lines(numbers: std::ops::Range<i64>, text: &str) -> Vec<LogLine> {
    numbers
        .map(|n| LogLine {
            number: n,
            stream: if n % 2 == 0 { "stdout" } else { "stderr" }.to_string(),
            text: format!("{text} {n}"),
            elapsed_ms: n * 10,
        })
        .collect()
}

async fn step_id(store: &dyn Store) -> i64 {
    let repo = fixtures::repo(store, "app").await;
    fixtures::pending_build(store, repo.id).await.workflows[0].steps[1].id
}

fn numbers(read: &[LogLine]) -> Vec<i64> {
    read.iter().map(|l| l.number).collect()
}

pub async fn log_appends_are_idempotent_and_ordered(h: Arc<Harness>) {
    let store = h.store.as_ref();
    let step = step_id(store).await;
    let first = store.append_logs(step, &lines(0..5, "line")).await.unwrap();
    assert_eq!(first.stored, 5);
    let retried = store
        .append_logs(step, &lines(0..5, "again"))
        .await
        .unwrap();
    assert_eq!(retried.stored, 0, "a retried batch stores nothing");
    let mut out_of_order = lines(5..10, "line");
    out_of_order.reverse();
    let overlap = [lines(3..5, "x"), out_of_order].concat();
    assert_eq!(store.append_logs(step, &overlap).await.unwrap().stored, 5);

    let all = store.read_logs(step, None, 0).await.unwrap();
    assert_eq!(numbers(&all), (0..10).collect::<Vec<_>>());
    assert_eq!(
        all[3],
        LogLine {
            number: 3,
            stream: "stderr".into(),
            text: "line 3".into(),
            elapsed_ms: 30
        }
    );
    assert_eq!(
        numbers(&store.read_logs(step, Some(6), 0).await.unwrap()),
        [7, 8, 9]
    );
    assert_eq!(
        numbers(&store.read_logs(step, Some(2), 3).await.unwrap()),
        [3, 4, 5]
    );
    assert!(store.read_logs(step, Some(9), 0).await.unwrap().is_empty());
    assert!(
        store.append_logs(step, &lines(-1..0, "x")).await.is_err(),
        "negative number"
    );
    assert!(
        store.append_logs(9_999, &lines(0..1, "x")).await.is_err(),
        "unknown step"
    );
}

pub async fn log_cap_drops_lines_and_stores_one_notice(h: Arc<Harness>) {
    let cap = LogCap {
        max_bytes: 1 << 20,
        max_lines: 8,
    };
    let store = h.reopen(cap, None).await;
    let step = step_id(store.as_ref()).await;
    assert_eq!(
        store
            .append_logs(step, &lines(0..5, "a"))
            .await
            .unwrap()
            .stored,
        5
    );
    let crossing = store.append_logs(step, &lines(5..12, "b")).await.unwrap();
    assert_eq!(
        (crossing.stored, crossing.dropped, crossing.truncated_now),
        (3, 4, true)
    );
    let later = store.append_logs(step, &lines(12..20, "c")).await.unwrap();
    assert_eq!(
        (later.stored, later.dropped, later.truncated_now),
        (0, 8, false)
    );
    let retried = store.append_logs(step, &lines(5..12, "b")).await.unwrap();
    assert_eq!(retried.stored, 0);

    let all = store.read_logs(step, None, 0).await.unwrap();
    assert_eq!(
        numbers(&all),
        (0..9).collect::<Vec<_>>(),
        "8 lines and the notice"
    );
    let notice = all.last().unwrap();
    assert_eq!(notice.stream, "system");
    assert_eq!(
        notice.text,
        "log truncated: the step printed more than 1 MiB or 8 lines (the rest was dropped)"
    );
    let notices = all
        .iter()
        .filter(|l| l.text.starts_with("log truncated"))
        .count();
    assert_eq!(notices, 1);
    store.close().await;
}

pub async fn log_byte_cap_counts_bytes(h: Arc<Harness>) {
    let cap = LogCap {
        max_bytes: 100,
        max_lines: 1_000,
    };
    let store = h.reopen(cap, None).await;
    let step = step_id(store.as_ref()).await;
    let big: Vec<LogLine> = (0..5)
        .map(|n| LogLine {
            number: n,
            stream: "stdout".into(),
            text: "é".repeat(15),
            elapsed_ms: 0,
        })
        .collect();
    let outcome = store.append_logs(step, &big).await.unwrap();
    assert_eq!(
        (outcome.stored, outcome.dropped),
        (3, 2),
        "30 bytes a line, 100 bytes allowed"
    );
    let all = store.read_logs(step, None, 0).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all[3].text.contains("100 bytes"), "{}", all[3].text);
    store.close().await;
}
