//! Files changed by a push and by a pull request, over a local repository read in place
//! (file://) and over git:// into the shallow cache, where parents and merge bases must be
//! fetched by deepening.

mod common;

use common::{GitDaemon, Repo, ZERO, git, three_commits, within};
use gantry_forge::GitCache;

/// The same repository as a `file://` URL and as a `git://` URL (the daemon lives as long
/// as the returned value).
async fn both_urls(repo: &Repo) -> (GitDaemon, [String; 2]) {
    let daemon = GitDaemon::start(&repo.served_root()).await;
    let urls = [repo.file_url(), daemon.url("app.git")];
    (daemon, urls)
}

#[tokio::test]
async fn push_changed_files_between_before_and_after() {
    within(async {
        let (repo, [a, b, c]) = three_commits();
        let (_daemon, urls) = both_urls(&repo).await;
        for url in urls {
            // A fresh cache each time: git:// starts from nothing but commit C.
            let cache_dir = tempfile::tempdir().unwrap();
            let cache = GitCache::new(cache_dir.path()).unwrap();
            let checkout = cache.fetch_commit(&url, &c, None).await.unwrap();
            let files = checkout.changed_files(&a, &c).await.unwrap();
            assert_eq!(files, ["README.md", "old.txt", "src/lib.rs"], "{url}");
            assert_eq!(
                checkout.changed_files(&b, &c).await.unwrap(),
                ["README.md", "old.txt"]
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_new_branch_or_a_lost_before_gives_the_head_commit_alone() {
    within(async {
        let (repo, [a, _, c]) = three_commits();
        let (_daemon, urls) = both_urls(&repo).await;
        let gone = "1234567890123456789012345678901234567890";
        for url in urls {
            let cache_dir = tempfile::tempdir().unwrap();
            let cache = GitCache::new(cache_dir.path()).unwrap();
            let checkout = cache.fetch_commit(&url, &c, None).await.unwrap();
            // Over git:// the cache holds only C: its parent is fetched to compare.
            for before in [ZERO, "", gone] {
                let files = checkout.changed_files(before, &c).await.unwrap();
                assert_eq!(files, ["README.md", "old.txt"], "{url} before={before:?}");
            }
            // The root commit: all of its files.
            let root = cache.fetch_commit(&url, &a, None).await.unwrap();
            let files = root.changed_files(ZERO, &a).await.unwrap();
            assert_eq!(files, [".pipeline.yml", "old.txt", "src/lib.rs"], "{url}");
        }
    })
    .await;
}

#[tokio::test]
async fn pull_request_changed_files_are_taken_against_the_merge_base() {
    within(async {
        let (repo, [_, b, _]) = three_commits();
        // A feature branch from B with two commits; main moves on meanwhile.
        git(&repo.work, &["checkout", "-q", "-b", "feature", &b]);
        repo.commit("D", &[("feature/one.rs", Some("1"))]);
        let head = repo.commit(
            "E",
            &[("feature/two.rs", Some("2")), ("src/lib.rs", Some("3"))],
        );
        git(&repo.work, &["checkout", "-q", "main"]);
        let base = repo.commit("F", &[("main-only.txt", Some("m"))]);
        let expected = ["feature/one.rs", "feature/two.rs", "src/lib.rs"];
        let (_daemon, urls) = both_urls(&repo).await;
        for url in urls {
            let cache_dir = tempfile::tempdir().unwrap();
            let cache = GitCache::new(cache_dir.path()).unwrap();
            let checkout = cache.fetch_commit(&url, &head, None).await.unwrap();
            // Over git:// the merge base (B) is found by deepening the shallow history.
            let files = checkout
                .changed_files_against_base(&base, &head)
                .await
                .unwrap();
            assert_eq!(files, expected, "{url}");
            if url.starts_with("git://") {
                let depth = git(checkout.repo_dir(), &["rev-list", "--count", &head]);
                assert!(
                    depth.parse::<u32>().unwrap() >= 3,
                    "history was deepened: {depth}"
                );
            }
            // GitLab gives the target branch, not its SHA.
            let files = checkout
                .changed_files_against_base("main", &head)
                .await
                .unwrap();
            assert_eq!(files, expected, "{url}");
            let err = checkout
                .changed_files_against_base("-bad", &head)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("invalid branch"), "{err}");
        }
    })
    .await;
}
