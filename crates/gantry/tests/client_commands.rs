//! The client commands against a real `gantry server` process: add a repository, set a
//! secret, trigger a build of a local git repository, follow its log, show it.

mod server_common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use server_common::{ADMIN, start_server};

fn gantry(base: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .env("GANTRY_SERVER", base)
        .env("GANTRY_TOKEN", ADMIN)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gantry starts");
    if let Some(input) = stdin {
        use std::io::Write as _;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gantry {args:?} did not finish within 60s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.email=ada@example.invalid",
            "-c",
            "user.name=ada",
        ])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

#[test]
fn repo_secret_build_and_logs_commands_drive_a_real_server() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(
        repo.join(".pipeline.yml"),
        "clone:\n  disable: true\nsteps:\n  - name: hello\n    image: busybox\n    environment:\n      TOK:\n        from_secret: tok\n    commands:\n      - echo hello from $${CI_REPO}\n      - echo token $TOK\n",
    )
    .unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "first"]);

    let server = start_server(
        &tmp.path().join("data"),
        "local",
        &[],
        &tmp.path().join("server.log"),
    );
    let base = server.base.as_str();
    let url = format!("file://{}", repo.display());

    let out = ok(&gantry(
        base,
        &["repo", "add", "acme/app", "--clone-url", &url],
        None,
    ));
    assert!(out.contains("hook URL:"), "{out}");
    assert!(ok(&gantry(base, &["repo", "list"], None)).contains("acme/app"));

    ok(&gantry(
        base,
        &["secret", "set", "acme/app", "tok"],
        Some("hunter2-value\n"),
    ));
    let names = ok(&gantry(base, &["secret", "ls", "acme/app"], None));
    assert!(
        names.contains("tok") && !names.contains("hunter2"),
        "{names}"
    );

    let out = ok(&gantry(
        base,
        &["build", "trigger", "acme/app", "--branch", "main"],
        None,
    ));
    assert!(out.contains("build #1"), "{out}");
    let log = ok(&gantry(
        base,
        &["logs", "acme/app", "1", "hello", "-f"],
        None,
    ));
    assert!(log.contains("hello from acme/app"), "{log}");
    assert!(log.contains("token ********"), "{log}");
    assert!(!log.contains("hunter2-value"), "secret leaked: {log}");

    // The log ended with the step; the build becomes final right after.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let show = ok(&gantry(base, &["build", "show", "acme/app", "1"], None));
        if show.starts_with("build #1 success") {
            assert!(show.contains("hello") && show.contains("success"), "{show}");
            break;
        }
        assert!(Instant::now() < deadline, "build never succeeded: {show}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ok(&gantry(base, &["build", "list", "acme/app"], None)).contains("success"));

    let missing = gantry(base, &["build", "show", "acme/app", "99"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    let bad = gantry(base, &["repo", "list"], None);
    assert!(bad.status.success());
}
