//! The commit cache against real repositories: file://, git:// (git daemon) and dumb
//! http:// with credentials; config lookup; changed files for pushes and pull requests.

mod common;

use std::future::Future;

use common::http_server::DumbHttp;
use common::{GitDaemon, Repo, TEST_TIMEOUT, git};
use gantry_forge::{DEFAULT_CONFIG_NAMES, GitCache, GitError, Netrc};

async fn within<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out")
}

const PIPELINE: &str = "steps:\n  - name: test\n    image: busybox\n    commands: [echo hi]\n";
const ZERO: &str = "0000000000000000000000000000000000000000";

/// main: A (.pipeline.yml, src/lib.rs, old.txt) → B (src/lib.rs) → C (README.md, -old.txt).
fn three_commits() -> (Repo, [String; 3]) {
    let repo = Repo::new("app");
    let a = repo.commit(
        "A",
        &[
            (".pipeline.yml", Some(PIPELINE)),
            ("src/lib.rs", Some("1")),
            ("old.txt", Some("x")),
        ],
    );
    let b = repo.commit("B", &[("src/lib.rs", Some("2"))]);
    let c = repo.commit("C", &[("README.md", Some("hello")), ("old.txt", None)]);
    (repo, [a, b, c])
}

#[tokio::test]
async fn file_url_fetches_one_commit_shallow_and_reads_the_config() {
    within(async {
        let (repo, [_, _, c]) = three_commits();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let checkout = cache
            .fetch_commit(&repo.file_url(), &c, None)
            .await
            .unwrap();
        assert_eq!(checkout.sha(), c);
        let config = checkout.config(&DEFAULT_CONFIG_NAMES).await.unwrap();
        assert_eq!(
            (config.path.as_str(), config.text.as_str()),
            (".pipeline.yml", PIPELINE)
        );
        assert_eq!(
            checkout.read_file("README.md").await.unwrap().as_deref(),
            Some("hello")
        );
        assert_eq!(checkout.read_file("old.txt").await.unwrap(), None);
        assert_eq!(
            checkout.read_file("src").await.unwrap(),
            None,
            "a directory is not a file"
        );
        // Exactly that commit: the cache is shallow and holds one commit.
        let shallow = std::fs::read_to_string(checkout.repo_dir().join("shallow")).unwrap();
        assert_eq!(shallow.trim(), c);
        let count = git(checkout.repo_dir(), &["rev-list", "--count", &c]);
        assert_eq!(count, "1");
        // A second fetch of the same commit reuses the cache (credentials are not needed
        // for file:// and do no harm).
        let again = cache
            .fetch_commit(&repo.file_url(), &c, Some(credentials()))
            .await
            .unwrap();
        assert_eq!(again.repo_dir(), checkout.repo_dir());
    })
    .await;
}

#[tokio::test]
async fn drone_yml_is_the_fallback_and_a_missing_config_says_what_to_do() {
    within(async {
        let repo = Repo::new("drone");
        let first = repo.commit("drone", &[(".drone.yml", Some("kind: pipeline\n"))]);
        let second = repo.commit("none", &[(".drone.yml", None), ("x", Some("y"))]);
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let checkout = cache
            .fetch_commit(&repo.file_url(), &first, None)
            .await
            .unwrap();
        assert_eq!(
            checkout.config(&DEFAULT_CONFIG_NAMES).await.unwrap().path,
            ".drone.yml"
        );
        let checkout = cache
            .fetch_commit(&repo.file_url(), &second, None)
            .await
            .unwrap();
        let err = checkout.config(&DEFAULT_CONFIG_NAMES).await.unwrap_err();
        assert!(matches!(err, GitError::NoConfig { .. }));
        assert!(
            err.to_string()
                .starts_with(&format!("no .pipeline.yml or .drone.yml at {second}")),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn push_changed_files_between_before_and_after() {
    within(async {
        let (repo, [a, b, c]) = three_commits();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let checkout = cache
            .fetch_commit(&repo.file_url(), &c, None)
            .await
            .unwrap();
        let files = checkout.changed_files(&a, &c).await.unwrap();
        assert_eq!(files, ["README.md", "old.txt", "src/lib.rs"]);
        // A new branch (before = zeros) or an unknown before: the head commit alone, which
        // needs its parent fetched (the cache held only C).
        assert_eq!(
            checkout.changed_files(ZERO, &c).await.unwrap(),
            ["README.md", "old.txt"]
        );
        assert_eq!(
            checkout.changed_files("", &c).await.unwrap(),
            ["README.md", "old.txt"]
        );
        let gone = "1234567890123456789012345678901234567890";
        assert_eq!(
            checkout.changed_files(gone, &c).await.unwrap(),
            ["README.md", "old.txt"]
        );
        assert_eq!(
            checkout.changed_files(&b, &c).await.unwrap(),
            ["README.md", "old.txt"]
        );
        // The root commit: all of its files.
        let root = cache
            .fetch_commit(&repo.file_url(), &a, None)
            .await
            .unwrap();
        assert_eq!(
            root.changed_files(ZERO, &a).await.unwrap(),
            [".pipeline.yml", "old.txt", "src/lib.rs"]
        );
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
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let checkout = cache
            .fetch_commit(&repo.file_url(), &head, None)
            .await
            .unwrap();
        let expected = ["feature/one.rs", "feature/two.rs", "src/lib.rs"];
        assert_eq!(
            checkout
                .changed_files_against_base(&base, &head)
                .await
                .unwrap(),
            expected
        );
        // GitLab gives the target branch, not its SHA.
        assert_eq!(
            checkout
                .changed_files_against_base("main", &head)
                .await
                .unwrap(),
            expected
        );
        let err = checkout
            .changed_files_against_base("-bad", &head)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("invalid branch"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn git_protocol_through_git_daemon() {
    within(async {
        let (repo, [a, _, c]) = three_commits();
        let daemon = GitDaemon::start(&repo.served_root()).await;
        let url = format!("git://127.0.0.1:{}/app.git", daemon.port);
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let checkout = cache.fetch_commit(&url, &c, None).await.unwrap();
        assert_eq!(
            checkout.config(&DEFAULT_CONFIG_NAMES).await.unwrap().text,
            PIPELINE
        );
        assert_eq!(
            checkout.changed_files(&a, &c).await.unwrap(),
            ["README.md", "old.txt", "src/lib.rs"]
        );
        assert!(
            checkout.repo_dir().join("shallow").is_file(),
            "git:// fetches by SHA, shallow"
        );
    })
    .await;
}

/// Basic credentials `gantry:s3cret-token`.
const BASIC: &str = "Z2FudHJ5OnMzY3JldC10b2tlbg==";

fn credentials() -> Netrc {
    Netrc {
        machine: String::new(),
        login: "gantry".into(),
        password: "s3cret-token".into(),
    }
}

fn dumb_http_repo() -> (Repo, [String; 3]) {
    let (repo, shas) = three_commits();
    git(&repo.bare, &["update-server-info"]);
    (repo, shas)
}

#[tokio::test]
async fn dumb_http_falls_back_to_a_full_fetch_with_netrc_credentials() {
    within(async {
        let (repo, [a, _, c]) = dumb_http_repo();
        let server = DumbHttp::start(repo.served_root(), Some(BASIC)).await;
        let url = format!("http://127.0.0.1:{}/app.git", server.port);
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let checkout = cache
            .fetch_commit(&url, &c, Some(credentials()))
            .await
            .unwrap();
        assert_eq!(
            checkout.config(&DEFAULT_CONFIG_NAMES).await.unwrap().text,
            PIPELINE
        );
        assert_eq!(
            checkout.changed_files(&a, &c).await.unwrap(),
            ["README.md", "old.txt", "src/lib.rs"]
        );
        assert!(
            !checkout.repo_dir().join("shallow").exists(),
            "dumb HTTP cannot be shallow"
        );
    })
    .await;
}

#[tokio::test]
async fn sec_10_wrong_credentials_fail_without_printing_them() {
    within(async {
        let (repo, [_, _, c]) = dumb_http_repo();
        let server = DumbHttp::start(repo.served_root(), Some(BASIC)).await;
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let (logs, _guard) = common::log_capture::LogCapture::install();
        let wrong = Netrc {
            password: "hunter2-wrong".into(),
            ..credentials()
        };
        let url = format!("http://127.0.0.1:{}/app.git", server.port);
        let err = cache
            .fetch_commit(&url, &c, Some(wrong.clone()))
            .await
            .unwrap_err();
        // The password in the URL itself is scrubbed too.
        let url_with_password = format!(
            "http://gantry:url-pass-9f2@127.0.0.1:{}/app.git",
            server.port
        );
        let err2 = cache
            .fetch_commit(&url_with_password, &c, None)
            .await
            .unwrap_err();
        assert!(matches!(err, GitError::AccessDenied { .. }), "{err:?}");
        assert!(matches!(err2, GitError::AccessDenied { .. }), "{err2:?}");
        let everything = format!("{err} {err:?} {err2} {err2:?} {wrong:?} {}", logs.text());
        assert!(!logs.text().is_empty(), "git calls are logged");
        for secret in ["hunter2-wrong", "url-pass-9f2"] {
            assert!(
                !everything.contains(secret),
                "{secret} leaked: {everything}"
            );
        }
        assert!(
            err.to_string()
                .contains(&format!("http://127.0.0.1:{}/app.git", server.port)),
            "{err}"
        );
        assert!(err.to_string().contains("credentials"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn unsupported_urls_and_bad_arguments_are_refused_clearly() {
    within(async {
        let (repo, [_, _, c]) = three_commits();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let cases = [
            (
                "ssh://git@example.com/a/b.git",
                "SSH clone URLs are not supported yet",
            ),
            (
                "git@example.com:a/b.git",
                "SSH clone URLs are not supported yet",
            ),
            ("/srv/git/app.git", "needs the file:// scheme"),
            ("ext::sh -c touch% /tmp/pwned", "spaces"),
            (
                "ftp://example.com/a.git",
                "only file://, git://, http:// and https://",
            ),
            ("--upload-pack=touch /tmp/x", "starts with `-`"),
        ];
        for (url, message) in cases {
            let err = cache.fetch_commit(url, &c, None).await.unwrap_err();
            assert!(err.to_string().contains(message), "{url}: {err}");
        }
        let err = cache
            .fetch_commit(&repo.file_url(), "HEAD", None)
            .await
            .unwrap_err();
        assert_eq!(err, GitError::InvalidSha("HEAD".into()));
        let missing = "1234567890123456789012345678901234567890";
        let err = cache
            .fetch_commit(&repo.file_url(), missing, None)
            .await
            .unwrap_err();
        assert!(matches!(err, GitError::CommitNotFound { .. }), "{err:?}");
        let checkout = cache
            .fetch_commit(&repo.file_url(), &c, None)
            .await
            .unwrap();
        for path in ["../etc/passwd", "/etc/passwd", "a/../../b", "", "a\0b"] {
            let err = checkout.read_file(path).await.unwrap_err();
            assert!(err.to_string().contains("invalid path"), "{path:?}: {err}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_git_call_past_its_timeout_is_killed() {
    within(async {
        // A listener that accepts and never answers: git waits until our limit kills it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path())
            .unwrap()
            .with_timeout(std::time::Duration::from_secs(1));
        let url = format!("git://127.0.0.1:{port}/app.git");
        let err = cache
            .fetch_commit(&url, "1234567890123456789012345678901234567890", None)
            .await
            .unwrap_err();
        assert!(matches!(err, GitError::Timeout { .. }), "{err:?}");
        assert!(err.to_string().contains("timed out after 1s"), "{err}");
        hold.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_into_one_repository_all_succeed() {
    within(async {
        let (repo, shas) = three_commits();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let fetches = shas.iter().chain(shas.iter()).map(|sha| {
            let (cache, url, sha) = (cache.clone(), repo.file_url(), sha.clone());
            tokio::spawn(async move {
                cache
                    .fetch_commit(&url, &sha, None)
                    .await
                    .map(|c| c.sha().to_owned())
            })
        });
        let fetched: Vec<String> = futures_join(fetches).await;
        assert_eq!(fetched.len(), 6);
        for sha in &shas {
            assert_eq!(fetched.iter().filter(|f| *f == sha).count(), 2);
        }
    })
    .await;
}

async fn futures_join(
    handles: impl Iterator<Item = tokio::task::JoinHandle<Result<String, GitError>>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap().unwrap());
    }
    out
}

#[tokio::test]
async fn an_annotated_tag_object_resolves_to_its_commit() {
    within(async {
        let (repo, [_, _, c]) = three_commits();
        git(&repo.work, &["tag", "-a", "v1.0.0", "-m", "release"]);
        git(&repo.work, &["push", "-q", "origin", "v1.0.0"]);
        let tag_object = git(&repo.work, &["rev-parse", "v1.0.0"]);
        assert_ne!(tag_object, c);
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let checkout = cache
            .fetch_commit(&repo.file_url(), &tag_object, None)
            .await
            .unwrap();
        assert_eq!(checkout.sha(), c);
        assert_eq!(
            checkout.config(&DEFAULT_CONFIG_NAMES).await.unwrap().text,
            PIPELINE
        );
    })
    .await;
}
