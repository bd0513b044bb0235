//! Log ingest rate: appends batches of log lines to one step after another and prints
//! MB/s and lines/s, on SQLite (a temp file) and on Postgres when
//! `GANTRY_BENCH_POSTGRES_URL` names an empty database.
//!
//! `cargo run --release -p gantry-store --example log_ingest [total MiB] [lines per batch]`

use std::time::Instant;

use gantry_store::{
    BuildEvent, ForgeKind, LogCap, LogLine, NewBuild, NewRepo, NewStep, NewWorkflow, RunStatus,
    SecretKey, Store, StoreOptions, connect,
};

const LINE_BYTES: usize = 100;
const LINES_PER_STEP: usize = 50_000;

async fn steps(store: &dyn Store, count: usize) -> Vec<i64> {
    let repo = store
        .create_repo(&NewRepo::new(
            "bench",
            "logs",
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

async fn measure(name: &str, url: &str, total_mib: usize, batch: usize) {
    let mut options = StoreOptions::new(SecretKey::generate().expect("key"));
    options.log_cap = LogCap {
        max_bytes: i64::MAX,
        max_lines: i64::MAX,
    };
    let store = connect(url, options).await.expect("connect");
    let total_lines = total_mib * 1024 * 1024 / LINE_BYTES;
    let step_ids = steps(store.as_ref(), total_lines.div_ceil(LINES_PER_STEP)).await;
    let text = "x".repeat(LINE_BYTES);
    let started = Instant::now();
    let mut written = 0;
    for step in step_ids {
        let mut number = 0;
        while number < LINES_PER_STEP && written < total_lines {
            let lines: Vec<LogLine> = (0..batch.min(total_lines - written))
                .map(|i| LogLine {
                    number: (number + i) as i64,
                    stream: "stdout".into(),
                    text: text.clone(),
                    elapsed_ms: 0,
                })
                .collect();
            let outcome = store.append_logs(step, &lines).await.expect("append");
            number += outcome.stored;
            written += outcome.stored;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let megabytes = (written * LINE_BYTES) as f64 / 1e6;
    println!(
        "{name}: {written} lines of {LINE_BYTES} bytes in batches of {batch}: {:.1} MB/s, {:.0} lines/s ({:.2}x the 50 MB/s target)",
        megabytes / seconds,
        written as f64 / seconds,
        megabytes / seconds / 50.0
    );
    store.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total_mib = args.first().copied().unwrap_or(64);
    let batch = args.get(1).copied().unwrap_or(500);
    let dir = tempfile::tempdir().expect("temp dir");
    measure(
        "sqlite",
        &gantry_store::default_database_url(dir.path()),
        total_mib,
        batch,
    )
    .await;
    match std::env::var("GANTRY_BENCH_POSTGRES_URL") {
        Ok(url) => measure("postgres", &url, total_mib, batch).await,
        Err(_) => {
            println!("postgres: skipped (set GANTRY_BENCH_POSTGRES_URL to an empty database)")
        }
    }
}
