//! Step logs.

use std::sync::Arc;

use gantry_store::{LogCap, LogLine, SecretKey, Store, StoreOptions, connect};

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
    step_of_repo(store, "app").await
}

async fn step_of_repo(store: &dyn Store, name: &str) -> i64 {
    let repo = fixtures::repo(store, name).await;
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
    let mut odd_stream = lines(10..11, "x");
    odd_stream[0].stream = "stdin".into();
    let error = store.append_logs(step, &odd_stream).await.unwrap_err();
    assert!(error.to_string().contains("stdin"), "{error}");
    pages_are_exact_across_batches_and_gaps(store).await;
    concurrent_overlapping_retries_store_each_line_once(&h).await;
}

/// Six senders append the same 3,000 lines at once, each cutting its batches at other
/// places (as retries after a timeout can): each line is stored by exactly one of them.
async fn concurrent_overlapping_retries_store_each_line_once(h: &Arc<Harness>) {
    let step = step_of_repo(h.store.as_ref(), "retries").await;
    let mut senders = Vec::new();
    for sender in 0..6i64 {
        let store = h.store.clone();
        senders.push(tokio::spawn(async move {
            let size = 97 + sender * 131;
            let mut stored = 0;
            let mut first = 0;
            while first < 3_000 {
                let last = (first + size).min(3_000);
                let batch = lines(first..last, &format!("from {sender}"));
                stored += store.append_logs(step, &batch).await.unwrap().stored;
                first = last;
            }
            stored
        }));
    }
    let mut stored = 0;
    for sender in senders {
        stored += sender.await.unwrap();
    }
    assert_eq!(stored, 3_000, "each line stored by one sender");
    let all = h.store.read_logs(step, None, 10_000).await.unwrap();
    assert_eq!(numbers(&all), (0..3_000).collect::<Vec<_>>());
    // The usage the cap is checked against counts each line once, however many of the
    // senders' batches overlapped stored lines and were turned away.
    let bytes: i64 = all.iter().map(|l| l.text.len() as i64).sum();
    assert_eq!(usage(h, step).await, (3_000, bytes));
}

/// The step's stored usage (lines, text bytes), read from the database itself.
async fn usage(h: &Harness, step: i64) -> (i64, i64) {
    let query = "SELECT log_lines, log_bytes FROM steps WHERE id = $1";
    if h.url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&h.url).await.unwrap();
        let row = sqlx::query_as(query).bind(step).fetch_one(&pool).await;
        pool.close().await;
        row.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(&h.url).await.unwrap();
        let row = sqlx::query_as(query).bind(step).fetch_one(&pool).await;
        pool.close().await;
        row.unwrap()
    }
}

/// Runner-sized batches, a gap filled later and a retry straddling stored lines: every
/// page from every starting point holds exactly the next lines in order.
async fn pages_are_exact_across_batches_and_gaps(store: &dyn Store) {
    let step = step_of_repo(store, "pages").await;
    let batches = [0..700, 700..1724, 2000..2300, 1724..2000, 2300..2400];
    for range in batches {
        store.append_logs(step, &lines(range, "l")).await.unwrap();
    }
    let straddling = store
        .append_logs(step, &lines(2350..2450, "r"))
        .await
        .unwrap();
    assert_eq!(straddling.stored, 50);
    // One line at a time, as a slow step sends them: many small chunks to page through.
    for number in 2450..2500 {
        store
            .append_logs(step, &lines(number..number + 1, "s"))
            .await
            .unwrap();
    }
    let all = store.read_logs(step, None, 10_000).await.unwrap();
    assert_eq!(numbers(&all), (0..2500).collect::<Vec<_>>());
    assert_eq!(all[2380].text, "l 2380", "stored lines are never replaced");
    assert_eq!(all[2420].text, "r 2420");
    let starts = [
        (699, 2),
        (1723, 1),
        (1999, 301),
        (0, 0),
        (2448, 30),
        (2460, 100),
        (-1, 3),
    ];
    for (after, limit) in starts {
        let page = store.read_logs(step, Some(after), limit).await.unwrap();
        let want = if limit == 0 { 1_000 } else { limit as usize };
        let expected: Vec<i64> = (after + 1..2500).take(want).collect();
        assert_eq!(numbers(&page), expected, "after {after}, limit {limit}");
        assert!(
            page.iter()
                .all(|l| l.text.ends_with(&format!(" {}", l.number)))
        );
    }
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

/// Log appends keep some of the pool's connections between batches (on Postgres, a
/// quarter of the pool): on pools of 1, 2 and 4 connections two writers, their reads and
/// other queries all still go through, and the store closes.
pub async fn log_appends_leave_small_pools_usable(h: Arc<Harness>) {
    for max_connections in [1u32, 2, 4] {
        let mut options = StoreOptions::new(SecretKey::generate().expect("random key"));
        options.max_connections = max_connections;
        let store = connect(&h.url, options).await.expect("connect");
        let mut writers = Vec::new();
        for writer in ["a", "b"] {
            let store = store.clone();
            let step =
                step_of_repo(store.as_ref(), &format!("pool{max_connections}{writer}")).await;
            writers.push(tokio::spawn(async move {
                for first in (0..2_000).step_by(100) {
                    let batch = lines(first..first + 100, writer);
                    let stored = store.append_logs(step, &batch).await.unwrap();
                    assert_eq!(stored.stored, 100);
                    let page = store.read_logs(step, Some(first - 1), 0).await.unwrap();
                    assert_eq!(page.len(), 100);
                    assert!(store.ping().await);
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
        store.close().await;
    }
}

/// The store closes while log appends are in flight: an append that finishes during the
/// close gives its connection back instead of keeping it for a next batch (the pool's
/// close waits for every connection), and appends after the close fail cleanly.
pub async fn close_completes_while_log_appends_run(h: Arc<Harness>) {
    for round in 0..5 {
        let mut options = StoreOptions::new(SecretKey::generate().expect("random key"));
        options.max_connections = 4;
        let store = connect(&h.url, options).await.expect("connect");
        let (started, mut running) = tokio::sync::mpsc::channel::<()>(8);
        let mut writers = Vec::new();
        for writer in ["a", "b"] {
            let store = store.clone();
            let step = step_of_repo(store.as_ref(), &format!("close{round}{writer}")).await;
            let started = started.clone();
            writers.push(tokio::spawn(async move {
                let mut stored = 0;
                for first in (0..100_000).step_by(50) {
                    if store
                        .append_logs(step, &lines(first..first + 50, writer))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    stored += 1;
                    let _ = started.try_send(());
                }
                stored
            }));
        }
        running.recv().await.expect("an append went through");
        running.recv().await.expect("another append went through");
        tokio::time::timeout(std::time::Duration::from_secs(60), store.close())
            .await
            .expect("the store closes while appends run");
        let mut batches = 0;
        for writer in writers {
            batches += writer.await.unwrap();
        }
        assert!(batches >= 2);
        assert!(!store.ping().await, "closed");
    }
}
