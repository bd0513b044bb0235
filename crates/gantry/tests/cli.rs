//! The `gantry` binary as a user runs it: lint output, exec on the local backend, exit
//! codes, masking, and Ctrl-C on Docker leaving nothing behind.

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const GANTRY: &str = env!("CARGO_BIN_EXE_gantry");

/// Runs `gantry args...` in `dir`, killing it after `limit`.
fn gantry(dir: &Path, args: &[&str], limit: Duration) -> Output {
    let child = Command::new(GANTRY)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gantry starts");
    wait_with_limit(child, limit)
}

fn wait_with_limit(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    // Drain the pipes on threads so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().expect("stdout piped");
    let mut err = child.stderr.take().expect("stderr piped");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait works") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gantry did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_pipeline(dir: &Path, yaml: &str) {
    std::fs::write(dir.join(".pipeline.yml"), yaml).expect("write pipeline");
}

#[test]
fn lint_points_at_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        "steps:\n  - name: build\n    image: busybox\n    comands: [make]\n",
    );
    let out = gantry(
        dir.path(),
        &["lint", ".pipeline.yml"],
        Duration::from_secs(30),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(".pipeline.yml:4:5: error["), "{stdout}");
    assert!(stdout.contains("comands"), "{stdout}");
    assert!(stdout.contains('^'), "caret missing: {stdout}");
    assert!(stdout.contains("commands"), "no suggestion: {stdout}");

    let out = gantry(
        dir.path(),
        &["lint", "--format", "json", ".pipeline.yml"],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(json[0]["line"], 4);
    assert_eq!(json[0]["column"], 5);
}

#[test]
fn lint_of_a_good_file_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        "steps:\n  - name: build\n    image: busybox\n    commands: [make]\n",
    );
    let out = gantry(dir.path(), &["lint"], Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn exec_local_runs_steps_masks_secrets_and_summarises() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        r#"
steps:
  - name: write
    image: busybox
    commands:
      - echo hello > greeting.txt
  - name: read
    image: busybox
    environment:
      TOKEN: { from_secret: tok }
    commands:
      - cat greeting.txt
      - echo "token=$TOKEN"
"#,
    );
    let out = gantry(
        dir.path(),
        &[
            "exec",
            "--backend",
            "local",
            "--secret",
            "tok=hunter2-secret",
        ],
        Duration::from_secs(60),
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("[read]  hello"), "{stdout}");
    assert!(stdout.contains("token=********"), "{stdout}");
    assert!(
        !stdout.contains("hunter2-secret"),
        "secret leaked: {stdout}"
    );
    assert!(stdout.contains("STEP"), "{stdout}");
    assert!(stdout.contains("pipeline succeeded"), "{stdout}");
    // The current directory is the workspace.
    assert!(dir.path().join("greeting.txt").is_file());
}

#[test]
fn exec_failure_exits_one_and_missing_secret_is_a_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        "steps:\n  - name: fail\n    image: busybox\n    commands: [exit 3]\n",
    );
    let out = gantry(
        dir.path(),
        &["exec", "--backend", "local"],
        Duration::from_secs(60),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("failure"), "{stdout}");
    assert!(stdout.contains("pipeline failed"), "{stdout}");

    write_pipeline(
        dir.path(),
        "steps:\n  - name: s\n    image: busybox\n    environment:\n      T: { from_secret: nope }\n    commands: [true]\n",
    );
    let out = gantry(
        dir.path(),
        &["exec", "--backend", "local"],
        Duration::from_secs(60),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nope"), "{stderr}");
    assert!(stderr.contains("nothing was run"), "{stderr}");
}

#[test]
fn exec_step_filter_with_deps() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        r#"
steps:
  - name: a
    image: busybox
    commands: [echo ran-a]
  - name: b
    image: busybox
    depends_on: [a]
    commands: [echo ran-b]
  - name: c
    image: busybox
    depends_on: [a]
    commands: [echo ran-c]
"#,
    );
    let out = gantry(
        dir.path(),
        &["exec", "--backend", "local", "--step", "b", "--with-deps"],
        Duration::from_secs(60),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ran-a") && stdout.contains("ran-b"),
        "{stdout}"
    );
    assert!(!stdout.contains("ran-c"), "{stdout}");

    let out = gantry(
        dir.path(),
        &["exec", "--backend", "local", "--step", "zzz"],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no such step"));
}

#[test]
fn exec_env_is_substituted_and_drone_pipelines_follow_depends_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".drone.yml"),
        r#"kind: pipeline
type: docker
name: deploy
depends_on: [test]
steps:
  - name: ship
    image: busybox
    commands: [echo shipping]
---
kind: pipeline
type: docker
name: test
steps:
  - name: unit
    image: busybox
    commands:
      - echo "testing ${GREETING}"
      - test -z "$FAIL"
---
kind: pipeline
type: docker
name: notify
depends_on: [test]
trigger:
  status: [failure]
steps:
  - name: tell
    image: busybox
    commands: [echo telling]
"#,
    )
    .unwrap();
    let out = gantry(
        dir.path(),
        &["exec", "--backend", "local", "--env", "GREETING=hi"],
        Duration::from_secs(60),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("testing hi"), "{stdout}");
    // `test` runs before `deploy`, although the file lists `deploy` first.
    assert!(
        stdout.find("testing hi") < stdout.find("shipping"),
        "{stdout}"
    );
    assert!(stdout.contains("pipeline notify skipped"), "{stdout}");

    let out = gantry(
        dir.path(),
        &[
            "exec",
            "--backend",
            "local",
            "--env",
            "GREETING=hi",
            "--env",
            "FAIL=1",
        ],
        Duration::from_secs(60),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("pipeline deploy skipped"), "{stdout}");
    assert!(stdout.contains("telling"), "{stdout}");

    let out = gantry(
        dir.path(),
        &["exec", "--backend", "local", "--env", "PATH=/evil"],
        Duration::from_secs(60),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "reserved --env must not compile"
    );
}

/// Whether a Docker engine answers; in CI its absence is a failure, elsewhere a skip.
fn docker_available() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs a Docker engine for the Docker tests"
        );
        eprintln!("skipped: no Docker engine answers here");
    }
    ok
}

fn ensure_test_image() {
    let present = Command::new("docker")
        .args([
            "image",
            "inspect",
            "gantry-test/busybox:latest",
            "busybox:latest",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/images.sh");
        let status = Command::new("bash")
            .arg(script)
            .status()
            .expect("run images.sh");
        assert!(status.success(), ".ci/images.sh failed");
    }
}

fn docker_ids(kind: &str, filter: &str) -> Vec<String> {
    let args: Vec<&str> = match kind {
        "container" => vec!["ps", "-aq", "--filter", filter],
        "network" => vec!["network", "ls", "-q", "--filter", filter],
        _ => vec!["volume", "ls", "-q", "--filter", filter],
    };
    let out = Command::new("docker")
        .args(&args)
        .output()
        .expect("docker cli");
    text(&out.stdout).lines().map(str::to_owned).collect()
}

/// The README's first command: the demo on Docker shows parallel steps, a service reached
/// by name, a masked secret and a summary, and leaves nothing behind.
#[test]
fn demo_example_runs_on_docker() {
    if !docker_available() {
        return;
    }
    ensure_test_image();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo");
    let child = Command::new(GANTRY)
        .args(["exec", "--secret", "demo_token=s3cr3t-demo"])
        .current_dir(&demo)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gantry starts");
    let owner = owner_filter(child.id());
    let _reaper = Reaper {
        owner: owner.clone(),
        pid: child.id(),
    };
    let out = wait_with_limit(child, Duration::from_secs(120));
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("Docker engine"),
        "backend not named"
    );
    assert!(stdout.contains("hello from the web service"), "{stdout}");
    assert!(stdout.contains("the token is ********"), "{stdout}");
    assert!(!stdout.contains("s3cr3t-demo"), "secret leaked: {stdout}");
    assert!(stdout.contains("pipeline succeeded"), "{stdout}");
    // `hello` and `system-info` overlap: both start before either finishes.
    let pos = |needle: &str| {
        stdout
            .find(needle)
            .unwrap_or_else(|| panic!("{needle}: {stdout}"))
    };
    let first_done = pos("hello is done").min(pos("[system-info] -- success"));
    assert!(pos("[hello]       + sleep 2") < first_done, "{stdout}");
    assert!(pos("[system-info] + sleep 2") < first_done, "{stdout}");
    for kind in ["container", "network", "volume"] {
        let left = docker_ids(kind, &owner);
        assert!(left.is_empty(), "{kind}s left behind: {left:?}");
    }
}

fn owner_filter(pid: u32) -> String {
    format!(
        "label=gantry.owner=exec:{}:{pid}",
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim(),
    )
}

#[test]
fn exec_docker_ctrl_c_cancels_and_leaves_nothing() {
    if !docker_available() {
        return;
    }
    ensure_test_image();
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        r#"
services:
  - name: svc
    image: gantry-test/busybox:latest
    commands: [sleep 300]
steps:
  - name: long
    image: gantry-test/busybox:latest
    commands:
      - echo started
      - sleep 300
"#,
    );
    let child = Command::new(GANTRY)
        .args(["exec", "--backend", "docker"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gantry starts");
    let owner = owner_filter(child.id());
    let _reaper = Reaper {
        owner: owner.clone(),
        pid: child.id(),
    };
    // Wait until the step container runs, then interrupt like Ctrl-C would.
    let deadline = Instant::now() + Duration::from_secs(60);
    while docker_ids("container", &owner).len() < 2 {
        assert!(Instant::now() < deadline, "step container never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let out = wait_with_limit(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("cancelled"),
        "{}",
        text(&out.stdout)
    );
    for kind in ["container", "network", "volume"] {
        let left = docker_ids(kind, &owner);
        assert!(left.is_empty(), "{kind}s left behind: {left:?}");
    }
}

/// Kills the gantry process and removes what it owns if a test fails half-way.
struct Reaper {
    owner: String,
    pid: u32,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        for id in docker_ids("container", &self.owner) {
            let _ = Command::new("docker").args(["rm", "-f", &id]).output();
        }
        for id in docker_ids("network", &self.owner) {
            let _ = Command::new("docker").args(["network", "rm", &id]).output();
        }
        for id in docker_ids("volume", &self.owner) {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", &id])
                .output();
        }
    }
}
