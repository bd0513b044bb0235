//! The client commands against a real `gantry server` process: add a repository, set a
//! secret, trigger a build of a local git repository, follow its log, show it, rotate the
//! webhook secret.

mod server_common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use server_common::{ADMIN, start_server, wait_within};

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
    wait_within(child, args)
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

    let added = ok(&gantry(
        base,
        &["repo", "add", "acme/app", "--clone-url", &url],
        None,
    ));
    assert!(added.contains("hook URL:"), "{added}");
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

    // A rotated secret: hooks signed with the old one are refused, the new one works.
    let old_secret = secret_in(&added);
    let out = ok(&gantry(base, &["repo", "rotate-secret", "acme/app"], None));
    let new_secret = secret_in(&out);
    assert!(out.contains("/hooks/generic"), "{out}");
    assert_ne!(new_secret, old_secret);
    let sha = git_output(&repo, &["rev-parse", "HEAD"]);
    assert_eq!(post_push_hook(base, &url, &sha, &old_secret, "d-old"), 401);
    assert_eq!(post_push_hook(base, &url, &sha, &new_secret, "d-new"), 202);
    let denied = gantry(base, &["repo", "rotate-secret", "acme"], None);
    assert_eq!(denied.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("OWNER/NAME"));
}

/// The secret a `repo add` or `repo rotate-secret` printed.
fn secret_in(output: &str) -> String {
    output
        .lines()
        .find_map(|line| line.strip_prefix("webhook secret:"))
        .map(|secret| secret.trim().to_string())
        .unwrap_or_else(|| panic!("no secret in: {output}"))
}

fn git_output(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Sends a generic push hook signed with `secret` over plain HTTP/1.1; returns the status.
fn post_push_hook(base: &str, clone_url: &str, sha: &str, secret: &str, delivery: &str) -> u16 {
    use std::io::{Read as _, Write as _};
    let body = serde_json::json!({
        "event": "push", "repo": "acme/app", "clone_url": clone_url, "ref": "refs/heads/main",
        "before": "0".repeat(40), "after": sha, "message": "m", "author": "ada",
    })
    .to_string();
    let signature = gantry_forge::gantry_signature(body.as_bytes(), secret.as_bytes());
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let request = format!(
        "POST /hooks/generic HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         X-Gantry-Signature: {signature}\r\nX-Gantry-Delivery: {delivery}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"))
}

#[test]
fn bad_runner_settings_stop_the_server_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    // Flags, environment, what the error names.
    type Case<'a> = (&'a [&'a str], Option<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 5] = [
        (&["--runner-capacity", "0"], None, "at least 1"),
        (&[], Some(("GANTRY_RUNNER_CAPACITY", "many")), "`many`"),
        (
            &[],
            Some(("GANTRY_DOCKER_LABELS", "team=ci,oops")),
            "`oops`",
        ),
        (&["--docker-label", "gantry.owner=me"], None, "reserved"),
        (
            &[],
            Some(("GANTRY_SANDBOX_IMAGE", "pause 3")),
            "GANTRY_SANDBOX_IMAGE",
        ),
    ];
    for (flags, env, expected) in cases {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gantry"));
        command
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir", data])
            .args(flags)
            .env_remove("GANTRY_RUNNER_CAPACITY")
            .env_remove("GANTRY_DOCKER_LABELS")
            .env_remove("GANTRY_SANDBOX_IMAGE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((key, value)) = env {
            command.env(key, value);
        }
        // Refused while the arguments are read: the process ends at once.
        let out = wait_within(command.spawn().expect("gantry runs"), flags);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?} {env:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?} {env:?}: {stderr}");
        assert!(!Path::new(data).exists(), "nothing was created");
    }
}
