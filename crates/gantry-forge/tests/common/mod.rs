//! Real git repositories and servers for the tests: a work tree with commits, a bare copy,
//! `git daemon` on loopback, and a dumb-HTTP server that wants Basic credentials.
#![allow(dead_code)]

pub mod http_server;
pub mod log_capture;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Limit on every async test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a test body under [`TEST_TIMEOUT`].
pub async fn within<T>(test: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out")
}

/// The pipeline committed by [`three_commits`].
pub const PIPELINE: &str = "steps:\n  - name: test\n    image: busybox\n    commands: [echo hi]\n";

/// The `before` of a new branch.
pub const ZERO: &str = "0000000000000000000000000000000000000000";

/// main: A (.pipeline.yml, src/lib.rs, old.txt) → B (src/lib.rs) → C (README.md, -old.txt).
pub fn three_commits() -> (Repo, [String; 3]) {
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

/// Runs host git in `dir` with a fixed identity and no user config; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Gantry Test",
            "-c",
            "user.email=test@gantry.invalid",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A work tree whose commits are published to a bare repository.
pub struct Repo {
    pub work: PathBuf,
    pub bare: PathBuf,
    _root: tempfile::TempDir,
}

impl Repo {
    /// An empty repository on `main` (bare copy at `<root>/srv/<name>.git`).
    pub fn new(name: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        let work = root.path().join("work");
        let bare = root.path().join("srv").join(format!("{name}.git"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&bare).unwrap();
        git(&work, &["init", "-q"]);
        git(&bare, &["init", "-q", "--bare"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Self {
            work,
            bare,
            _root: root,
        }
    }

    /// Writes files (`None` deletes), commits, pushes the current branch; returns the SHA.
    pub fn commit(&self, message: &str, files: &[(&str, Option<&str>)]) -> String {
        for (path, content) in files {
            let full = self.work.join(path);
            match content {
                Some(text) => {
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, text).unwrap();
                }
                None => std::fs::remove_file(&full).unwrap(),
            }
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "--all", "origin"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// `file://` URL of the bare repository.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// The directory holding the bare repository (what a server exports).
    pub fn served_root(&self) -> PathBuf {
        self.bare.parent().unwrap().to_owned()
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `git-daemon` binary itself: `git daemon` would run it as a child that outlives a
/// kill of the `git` wrapper.
pub fn daemon_binary() -> PathBuf {
    let out = Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("git --exec-path");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("git-daemon")
}

/// `git daemon` serving `root` on loopback; killed on drop.
pub struct GitDaemon {
    pub port: u16,
    child: Child,
}

impl GitDaemon {
    pub async fn start(root: &Path) -> Self {
        let port = free_port();
        let child = Command::new(daemon_binary())
            .args([
                "--reuseaddr",
                "--export-all",
                "--informative-errors",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", root.display()))
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        // Ready when it accepts connections (bounded by the test's own timeout).
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { port, child }
    }
}

impl GitDaemon {
    /// `git://` URL of a repository under the served root.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
