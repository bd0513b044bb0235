//! The commit cache against real repositories: file://, git:// (git daemon) and dumb
//! http:// with credentials; config lookup; changed files for pushes and pull requests.

mod common;

use common::http_server::DumbHttp;
use common::{GitDaemon, PIPELINE, Repo, git, three_commits, within};
use gantry_forge::{DEFAULT_CONFIG_NAMES, GitCache, GitError, Netrc};

#[tokio::test]
async fn a_local_file_url_is_read_in_place_and_gives_the_config() {
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
        // Nothing copied: the repository on this machine is read where it is, unchanged.
        assert_eq!(checkout.repo_dir(), repo.bare);
        assert_eq!(std::fs::read_dir(cache_dir.path()).unwrap().count(), 0);
        assert!(git(&repo.bare, &["for-each-ref", "refs/gantry"]).is_empty());
        // Credentials are not needed for file:// and do no harm.
        let again = cache
            .fetch_commit(&repo.file_url(), &c, Some(credentials()))
            .await
            .unwrap();
        assert_eq!(again.sha(), c);
        // A work tree's URL works too (its .git is read).
        let work_url = format!("file://{}", repo.work.display());
        let from_work = cache.fetch_commit(&work_url, &c, None).await.unwrap();
        assert_eq!(
            from_work.read_file("README.md").await.unwrap().as_deref(),
            Some("hello")
        );
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
async fn git_protocol_through_git_daemon_fetches_one_commit_shallow() {
    within(async {
        let (repo, [_, _, c]) = three_commits();
        let daemon = GitDaemon::start(&repo.served_root()).await;
        let url = daemon.url("app.git");
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let checkout = cache.fetch_commit(&url, &c, None).await.unwrap();
        assert_eq!(
            checkout.config(&DEFAULT_CONFIG_NAMES).await.unwrap().text,
            PIPELINE
        );
        // Exactly that commit: the cache is shallow and holds one commit.
        assert!(checkout.repo_dir().starts_with(cache_dir.path()));
        let shallow = std::fs::read_to_string(checkout.repo_dir().join("shallow")).unwrap();
        assert_eq!(shallow.trim(), c);
        assert_eq!(git(checkout.repo_dir(), &["rev-list", "--count", &c]), "1");
        // A second fetch of the same commit reuses the cache.
        let again = cache.fetch_commit(&url, &c, None).await.unwrap();
        assert_eq!(again.repo_dir(), checkout.repo_dir());
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
        let daemon = GitDaemon::start(&repo.served_root()).await;
        let url = daemon.url("app.git");
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let fetches = shas.iter().chain(shas.iter()).map(|sha| {
            let (cache, url, sha) = (cache.clone(), url.clone(), sha.clone());
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
