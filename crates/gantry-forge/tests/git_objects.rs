//! The long-lived `git cat-file --batch` behind `read_commit`: one process per repository
//! reused across hooks, seeing what later fetches bring, started again when it dies,
//! stopped when idle and when the cache is dropped, and never left out of step by a file
//! it refuses.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{GitDaemon, PIPELINE, Repo, three_commits, within};
use gantry_forge::{ChangeRange, DEFAULT_CONFIG_NAMES, GitCache, GitError};

/// Ids of this test process's `git cat-file` children reading the repository at `repo`
/// (tests run side by side in one process, each with its own repositories).
fn cat_file_children(repo: &Path) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid ...`: comm may hold spaces, so split after the `)`.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let live_child = fields.len() > 1 && fields[0] != "Z" && fields[1] == me.to_string();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let reads_repo = cmdline.contains(&format!("--git-dir {} ", repo.display()));
        if live_child && reads_repo && cmdline.contains("cat-file") {
            found.push(pid);
        }
    }
    found
}

/// Waits (bounded by the test's timeout) until `done` holds.
async fn eventually(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The one repository in a cache directory.
fn cache_repo(dir: &Path) -> std::path::PathBuf {
    let mut repos = std::fs::read_dir(dir).unwrap().flatten();
    let repo = repos.next().expect("a cached repository").path();
    assert!(repos.next().is_none());
    repo
}

async fn read(cache: &GitCache, url: &str, sha: &str, before: &str) -> Vec<String> {
    let facts = cache
        .read_commit(
            url,
            sha,
            None,
            &DEFAULT_CONFIG_NAMES,
            ChangeRange::Push { before },
        )
        .await
        .unwrap();
    assert_eq!(facts.config.unwrap().text, PIPELINE, "{url}");
    facts.changed_files.expect("asked for").unwrap()
}

#[tokio::test]
async fn objects_fetched_later_are_read_by_the_running_process() {
    within(async {
        let (repo, [a, b, c]) = three_commits();
        let daemon = GitDaemon::start(&repo.served_root()).await;
        let url = daemon.url("app.git");
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        assert_eq!(read(&cache, &url, &c, &b).await, ["README.md", "old.txt"]);
        let cached = cache_repo(cache_dir.path());
        let running = cat_file_children(&cached);
        assert_eq!(running.len(), 1);
        // Many objects, so the fetch keeps them in a new pack rather than loose.
        let many: Vec<(String, String)> = (0..150)
            .map(|i| (format!("gen/{i}.txt"), format!("file {i}")))
            .collect();
        let files: Vec<(&str, Option<&str>)> = many
            .iter()
            .map(|(path, text)| (path.as_str(), Some(text.as_str())))
            .collect();
        let d = repo.commit("D", &files);
        let changed = read(&cache, &url, &d, &c).await;
        assert_eq!(changed.len(), 150);
        assert_eq!(read(&cache, &url, &d, &a).await.len(), 153);
        assert_eq!(cat_file_children(&cached), running, "the same process");
    })
    .await;
}

#[tokio::test]
async fn a_process_that_died_is_started_again() {
    within(async {
        let (repo, [_, b, c]) = three_commits();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let url = repo.file_url();
        assert_eq!(read(&cache, &url, &c, &b).await, ["README.md", "old.txt"]);
        let running = cat_file_children(&repo.bare);
        assert_eq!(running.len(), 1, "{running:?}");
        let pid = running[0].to_string();
        std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap();
        eventually(|| cat_file_children(&repo.bare).is_empty()).await;
        assert_eq!(read(&cache, &url, &c, &b).await, ["README.md", "old.txt"]);
        assert_eq!(cat_file_children(&repo.bare).len(), 1);
    })
    .await;
}

#[tokio::test]
async fn an_idle_process_is_stopped_and_so_is_every_process_of_a_dropped_cache() {
    within(async {
        let (repo, [_, b, c]) = three_commits();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path())
            .unwrap()
            .with_idle_limit(Duration::from_millis(300));
        assert_eq!(read(&cache, &repo.file_url(), &c, &b).await.len(), 2);
        assert_eq!(cat_file_children(&repo.bare).len(), 1);
        eventually(|| cat_file_children(&repo.bare).is_empty()).await;

        let cache = GitCache::new(cache_dir.path()).unwrap();
        let other = three_commits();
        assert_eq!(read(&cache, &repo.file_url(), &c, &b).await.len(), 2);
        let (other_c, other_b) = (&other.1[2], &other.1[1]);
        let url = other.0.file_url();
        assert_eq!(read(&cache, &url, other_c, other_b).await.len(), 2);
        for bare in [&repo.bare, &other.0.bare] {
            assert_eq!(cat_file_children(bare).len(), 1, "one per repository");
        }
        drop(cache);
        eventually(|| cat_file_children(&repo.bare).is_empty()).await;
        eventually(|| cat_file_children(&other.0.bare).is_empty()).await;
    })
    .await;
}

#[tokio::test]
async fn a_refused_file_leaves_the_process_ready_for_the_next_read() {
    within(async {
        let repo = Repo::new("app");
        let big = "x".repeat(5 * 1024 * 1024);
        let sha = repo.commit("big", &[(".pipeline.yml", Some(&big))]);
        std::fs::write(repo.work.join(".drone.yml"), [0xff, 0xfe, b'\n']).unwrap();
        std::fs::remove_file(repo.work.join(".pipeline.yml")).unwrap();
        let binary = repo.commit("not text", &[]);
        std::fs::remove_file(repo.work.join(".drone.yml")).unwrap();
        let good = repo.commit("good", &[(".pipeline.yml", Some(PIPELINE))]);
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let url = repo.file_url();
        for (sha, reason) in [(&sha, "larger than 4 MiB"), (&binary, "not UTF-8")] {
            let err = match cache
                .read_commit(&url, sha, None, &DEFAULT_CONFIG_NAMES, ChangeRange::None)
                .await
            {
                Ok(facts) => facts.config.unwrap_err(),
                Err(err) => err,
            };
            match err {
                GitError::UnreadableFile { reason: why, .. } => {
                    assert!(why.contains(reason), "{why}")
                }
                other => panic!("{other:?}"),
            }
        }
        let files = read(&cache, &url, &good, &sha).await;
        assert_eq!(files, [".pipeline.yml"]);
        assert_eq!(cat_file_children(&repo.bare).len(), 1);
    })
    .await;
}
