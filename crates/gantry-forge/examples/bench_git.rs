//! How long the server's git work for one hook takes on a local repository (file://):
//! fetch the commit, read the config, list changed files. Figures are printed as ratios of
//! a bare `git --version` spawn measured in the same run, so they read the same on any
//! machine.
//!
//! `cargo run --release -p gantry-forge --example bench_git`

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gantry_forge::{DEFAULT_CONFIG_NAMES, GitCache};

const ROUNDS: usize = 20;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@gantry.invalid",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A repository with `count` commits touching a few files each; returns their SHAs.
fn repository(root: &Path, count: usize) -> Vec<String> {
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    std::fs::write(
        work.join(".pipeline.yml"),
        "steps:\n  - name: t\n    image: busybox\n",
    )
    .unwrap();
    let mut shas = Vec::new();
    for i in 0..count {
        std::fs::write(work.join(format!("file{}.txt", i % 7)), i.to_string()).unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", &format!("commit {i}")]);
        shas.push(git(&work, &["rev-parse", "HEAD"]));
    }
    git(
        &work,
        &[
            "clone",
            "-q",
            "--bare",
            ".",
            root.join("bare.git").to_str().unwrap(),
        ],
    );
    shas
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Medians of fetch_commit, config and changed_files over one hook per commit.
fn measure(url: &str, shas: &[String]) -> [Duration; 3] {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path()).unwrap();
    let (mut fetch, mut config, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    runtime.block_on(async {
        for pair in shas.windows(2) {
            let start = Instant::now();
            let checkout = cache.fetch_commit(url, &pair[1], None).await.unwrap();
            fetch.push(start.elapsed());
            let start = Instant::now();
            checkout.config(&DEFAULT_CONFIG_NAMES).await.unwrap();
            config.push(start.elapsed());
            let start = Instant::now();
            checkout.changed_files(&pair[0], &pair[1]).await.unwrap();
            changed.push(start.elapsed());
        }
    });
    [median(fetch), median(config), median(changed)]
}

fn report(title: &str, spawn: Duration, [fetch, config, changed]: [Duration; 3]) {
    let ratio = |d: Duration| d.as_secs_f64() / spawn.as_secs_f64();
    println!("{title}");
    for (name, took) in [
        ("fetch_commit", fetch),
        ("config", config),
        ("changed_files", changed),
        ("total", fetch + config + changed),
    ] {
        println!("  {name:<20}  {took:>9.2?}  ({:.1}x)", ratio(took));
    }
}

fn main() {
    let root = tempfile::tempdir().unwrap();
    let shas = repository(root.path(), ROUNDS + 1);
    let spawn = median(
        (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                Command::new("git").arg("--version").output().unwrap();
                start.elapsed()
            })
            .collect(),
    );
    println!("median of {ROUNDS} hooks, a new commit each; ratios of one `git --version` spawn");
    println!("  {:<20}  {spawn:>9.2?}  (1.0x)", "git --version");
    let file_url = format!("file://{}", root.path().join("bare.git").display());
    report("file:// (read in place)", spawn, measure(&file_url, &shas));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The git-daemon binary itself: killing a `git daemon` wrapper would orphan it.
    let exec_path = git(root.path(), &["--exec-path"]);
    let mut daemon = Command::new(Path::new(&exec_path).join("git-daemon"))
        .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", root.path().display()))
        .arg(root.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("git daemon");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let git_url = format!("git://127.0.0.1:{port}/bare.git");
    report(
        "git:// on loopback (shallow fetch into the cache)",
        spawn,
        measure(&git_url, &shas),
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
}
