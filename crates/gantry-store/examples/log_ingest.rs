//! Log ingest rate through `append_logs`, shaped like a runner's output: batches cut as the
//! runner cuts them (at 1,024 lines or once 64 KiB of text is reached), numbered lines of
//! one fixed length, one step after another, each filled past the per-step cap so that every
//! step ends with its "log truncated" notice. Prints MB/s and lines/s of the lines stored,
//! on SQLite (a temp file) and on Postgres when `GANTRY_BENCH_POSTGRES_URL` names an empty
//! database.
//!
//! `cargo run --release -p gantry-store --example log_ingest [MiB per line length] [line bytes...]`
//! (defaults: 64 MiB, lines of 100 and 1,024 bytes). `bench/log_ingest.sh` runs it with a
//! baseline.

use std::time::Instant;

use gantry_store::{
    BuildEvent, ForgeKind, LogCap, LogLine, NewBuild, NewRepo, NewStep, NewWorkflow, RunStatus,
    SecretKey, Store, StoreOptions, connect,
};

/// The runner's batch limits (`gantry_runner::LogBatch::MAX_LINES` and `MAX_BYTES`).
const BATCH_LINES: usize = 1024;
const BATCH_BYTES: usize = 64 * 1024;

async fn new_steps(store: &dyn Store, count: usize, tag: &str) -> Vec<i64> {
    let repo = store
        .create_repo(&NewRepo::new(
            "bench",
            tag,
            ForgeKind::Generic,
            "file:///dev/null",
            "s",
        ))
        .await
        .expect("repo");
    let steps = (0..count)
        .map(|n| NewStep {
            name: format!("s{n}"),
            kind: "commands".into(),
            needs: vec![],
        })
        .collect();
    let workflow = NewWorkflow {
        name: "w".into(),
        plan: "{}".into(),
        labels: Default::default(),
        steps,
    };
    let build = NewBuild {
        repo_id: repo.id,
        event: BuildEvent::Manual,
        git_ref: "refs/heads/main".into(),
        sha: "0".repeat(40),
        before: String::new(),
        message: String::new(),
        author: String::new(),
        sender: "bench".into(),
        status: RunStatus::Pending,
        error: None,
        parent_id: None,
        deploy_target: None,
        diagnostics: None,
        created_at: 0,
    };
    let detail = store
        .create_build(&build, &[workflow])
        .await
        .expect("build");
    detail.workflows[0].steps.iter().map(|s| s.id).collect()
}

/// Line `number` of a step: its number, then compiler-like text, `bytes` long in all.
fn line_text(number: u64, bytes: usize) -> String {
    const FILLER: &str = " Compiling gantry-store v0.1.0 (/src/crates/gantry-store) \
        warning: unused variable `x` --> src/lib.rs:12:9 | help: prefix it with an underscore";
    let mut text = format!("{number:>8} ");
    while text.len() < bytes {
        let room = bytes - text.len();
        text.push_str(&FILLER[..room.min(FILLER.len())]);
    }
    text
}

/// The next batch of a step, cut where the runner cuts it.
fn next_batch(first: u64, bytes: usize, started: Instant) -> Vec<LogLine> {
    let mut lines = Vec::new();
    let mut text_len = 0;
    while lines.len() < BATCH_LINES && text_len < BATCH_BYTES {
        let number = first + lines.len() as u64;
        let text = line_text(number, bytes);
        text_len += text.len();
        lines.push(LogLine {
            number: number as i64,
            stream: if number.is_multiple_of(16) {
                "stderr"
            } else {
                "stdout"
            }
            .into(),
            text,
            elapsed_ms: started.elapsed().as_millis() as i64,
        });
    }
    lines
}

/// What one measurement stored.
#[derive(Default)]
struct Ingested {
    lines: usize,
    bytes: usize,
    notices: usize,
}

/// Appends `total_mib` of `bytes`-long lines, step after step, each past its cap.
async fn ingest(store: &dyn Store, cap: &LogCap, total_mib: usize, bytes: usize) -> Ingested {
    let per_step = usize::try_from(cap.max_bytes).unwrap_or(usize::MAX);
    let step_ids = new_steps(
        store,
        (total_mib * 1024 * 1024).div_ceil(per_step),
        &format!("l{bytes}"),
    )
    .await;
    let mut done = Ingested::default();
    for step in step_ids {
        let started = Instant::now();
        let mut number = 1;
        loop {
            let batch = next_batch(number, bytes, started);
            number += batch.len() as u64;
            let outcome = store.append_logs(step, &batch).await.expect("append");
            done.lines += outcome.stored;
            done.bytes += batch[..outcome.stored]
                .iter()
                .map(|l| l.text.len())
                .sum::<usize>();
            if outcome.truncated_now {
                done.notices += 1;
            }
            if outcome.dropped > 0 {
                break;
            }
        }
    }
    done
}

/// The last stored line of the step, which must be the truncation notice.
async fn check_notice(store: &dyn Store, cap: &LogCap) {
    let step = new_steps(store, 1, "check").await[0];
    let (mut number, mut stored) = (1, 0);
    loop {
        let batch = next_batch(number, 1000, Instant::now());
        number += batch.len() as u64;
        let outcome = store.append_logs(step, &batch).await.expect("append");
        stored += outcome.stored as i64;
        if outcome.dropped > 0 {
            break;
        }
    }
    // Lines 1..=stored, then the notice in place of the first line dropped.
    let tail = store
        .read_logs(step, Some(stored - 1), 0)
        .await
        .expect("read");
    assert_eq!(tail.len(), 2, "the last line kept and the notice");
    let last = tail.last().expect("a last line");
    assert_eq!(
        last.text,
        cap.truncation_notice(),
        "the notice ends the log"
    );
    assert_eq!(last.stream, "system");
}

async fn measure(name: &str, url: &str, total_mib: usize, line_bytes: &[usize]) {
    let options = StoreOptions::new(SecretKey::generate().expect("key"));
    let cap = options.log_cap;
    let store = connect(url, options).await.expect("connect");
    check_notice(store.as_ref(), &cap).await;
    for &bytes in line_bytes {
        let started = Instant::now();
        let done = ingest(store.as_ref(), &cap, total_mib, bytes).await;
        let seconds = started.elapsed().as_secs_f64();
        let megabytes = done.bytes as f64 / 1e6;
        println!(
            "{name}: {bytes:>4}-byte lines: {:6.1} MB/s, {:8.0} lines/s ({} lines, {} steps capped) {:.2}x the 50 MB/s target",
            megabytes / seconds,
            done.lines as f64 / seconds,
            done.lines,
            done.notices,
            megabytes / seconds / 50.0
        );
    }
    store.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total_mib = args.first().copied().unwrap_or(64);
    let line_bytes = match args.get(1..) {
        Some(sizes) if !sizes.is_empty() => sizes.to_vec(),
        _ => vec![100, 1024],
    };
    let dir = tempfile::tempdir().expect("temp dir");
    measure(
        "sqlite",
        &gantry_store::default_database_url(dir.path()),
        total_mib,
        &line_bytes,
    )
    .await;
    match std::env::var("GANTRY_BENCH_POSTGRES_URL") {
        Ok(url) => measure("postgres", &url, total_mib, &line_bytes).await,
        Err(_) => {
            println!("postgres: skipped (set GANTRY_BENCH_POSTGRES_URL to an empty database)")
        }
    }
}
