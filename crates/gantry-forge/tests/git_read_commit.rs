//! `GitCache::read_commit`: the config and the changed files in one go, the same answers as
//! the step-by-step calls, over a repository read in place (file://) and over git:// into
//! the cache, and no fetch for a commit the cache already holds.

mod common;

use common::{GitDaemon, PIPELINE, Repo, ZERO, git, three_commits, within};
use gantry_forge::{ChangeRange, DEFAULT_CONFIG_NAMES, GitCache, GitError};

async fn files(cache: &GitCache, url: &str, sha: &str, changes: ChangeRange<'_>) -> Vec<String> {
    let facts = cache
        .read_commit(url, sha, None, &DEFAULT_CONFIG_NAMES, changes)
        .await
        .unwrap();
    assert_eq!(facts.config.unwrap().text, PIPELINE, "{url}");
    facts.changed_files.expect("asked for").unwrap()
}

#[tokio::test]
async fn pushes_new_branches_and_root_commits_give_their_changed_files() {
    within(async {
        let (repo, [a, b, c]) = three_commits();
        let daemon = GitDaemon::start(&repo.served_root()).await;
        for url in [repo.file_url(), daemon.url("app.git")] {
            let cache_dir = tempfile::tempdir().unwrap();
            let cache = GitCache::new(cache_dir.path()).unwrap();
            let push = |before| ChangeRange::Push { before };
            assert_eq!(
                files(&cache, &url, &c, push(&a)).await,
                ["README.md", "old.txt", "src/lib.rs"]
            );
            assert_eq!(
                files(&cache, &url, &c, push(&b)).await,
                ["README.md", "old.txt"]
            );
            for before in [ZERO, "", "1234567890123456789012345678901234567890"] {
                assert_eq!(
                    files(&cache, &url, &c, push(before)).await,
                    ["README.md", "old.txt"]
                );
            }
            let root = files(&cache, &url, &a, push(ZERO)).await;
            assert_eq!(root, [".pipeline.yml", "old.txt", "src/lib.rs"], "{url}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_merge_is_compared_with_its_first_parent_and_a_tag_object_is_peeled() {
    within(async {
        let (repo, [_, b, _]) = three_commits();
        git(&repo.work, &["checkout", "-q", "-b", "side", &b]);
        let side = repo.commit("side", &[("side.txt", Some("s"))]);
        git(&repo.work, &["checkout", "-q", "-"]);
        git(&repo.work, &["merge", "-q", "--no-edit", &side]);
        git(&repo.work, &["push", "-q", "--all", "origin"]);
        let merge = git(&repo.work, &["rev-parse", "HEAD"]);
        git(&repo.work, &["tag", "-a", "v1", "-m", "release"]);
        git(&repo.work, &["push", "-q", "origin", "v1"]);
        let tag = git(&repo.work, &["rev-parse", "v1"]);
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let url = repo.file_url();
        let push = ChangeRange::Push { before: "" };
        assert_eq!(files(&cache, &url, &merge, push).await, ["side.txt"]);
        let facts = cache
            .read_commit(&url, &tag, None, &DEFAULT_CONFIG_NAMES, ChangeRange::None)
            .await
            .unwrap();
        assert_eq!(facts.checkout.sha(), merge, "the tag's commit is built");
        assert_eq!(facts.config.unwrap().path, ".pipeline.yml");
        assert!(facts.changed_files.is_none());
    })
    .await;
}

#[tokio::test]
async fn a_commit_already_in_the_cache_is_read_without_fetching() {
    within(async {
        let (repo, [_, b, c]) = three_commits();
        let daemon = GitDaemon::start(&repo.served_root()).await;
        let url = daemon.url("app.git");
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let push = ChangeRange::Push { before: &b };
        assert_eq!(
            files(&cache, &url, &c, push).await,
            ["README.md", "old.txt"]
        );
        drop(daemon); // nothing answers at the URL any more
        assert_eq!(
            files(&cache, &url, &c, push).await,
            ["README.md", "old.txt"]
        );
        let missing = cache
            .read_commit(&url, &"1".repeat(40), None, &DEFAULT_CONFIG_NAMES, push)
            .await
            .unwrap_err();
        assert!(
            matches!(
                missing,
                GitError::CommitNotFound { .. } | GitError::Failed { .. }
            ),
            "{missing}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_missing_config_and_an_unknown_commit_say_what_is_wrong() {
    within(async {
        let repo = Repo::new("bare");
        let sha = repo.commit("no pipeline", &[("README.md", Some("hi"))]);
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let facts = cache
            .read_commit(
                &repo.file_url(),
                &sha,
                None,
                &DEFAULT_CONFIG_NAMES,
                ChangeRange::None,
            )
            .await
            .unwrap();
        let error = facts.config.unwrap_err().to_string();
        assert!(error.contains(".pipeline.yml or .drone.yml"), "{error}");
        let error = cache
            .read_commit(
                &repo.file_url(),
                &"2".repeat(40),
                None,
                &DEFAULT_CONFIG_NAMES,
                ChangeRange::None,
            )
            .await
            .unwrap_err();
        assert!(matches!(error, GitError::CommitNotFound { .. }), "{error}");
        let error = cache
            .read_commit(
                &repo.file_url(),
                "main",
                None,
                &DEFAULT_CONFIG_NAMES,
                ChangeRange::None,
            )
            .await
            .unwrap_err();
        assert!(matches!(error, GitError::InvalidSha(_)), "{error}");
    })
    .await;
}
