//! The local backend on its own: workspaces, environment, idempotent destroy, reaping.

mod common;

use common::{TempDir, plan, step, within, workflow_id};
use futures_util::StreamExt;
use gantry_runner::{Backend, LocalBackend, WorkflowId};
use serde_json::json;

/// Runs one step directly on the backend and returns its stdout.
async fn output_of(backend: &LocalBackend, id: &WorkflowId, commands: &[&str]) -> String {
    let step = step(
        "probe",
        commands,
        json!({"environment": {"FROM_STEP": "yes"}}),
    );
    let secrets = [("FROM_SECRET".to_owned(), "hidden".to_owned())];
    backend
        .start_step(id, &step, &secrets)
        .await
        .expect("start");
    let mut output = backend.logs(id, &step).await.expect("logs");
    let mut text = Vec::new();
    while let Some(chunk) = output.next().await {
        text.extend(chunk.expect("chunk").data);
    }
    let exit = backend.wait_step(id, &step).await.expect("wait");
    assert_eq!(exit.code, 0, "{}", String::from_utf8_lossy(&text));
    backend.destroy_step(id, &step).await.expect("destroy");
    String::from_utf8(text).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_see_a_minimal_environment_plus_their_own() {
    within(async {
        let base = TempDir::new("env");
        let backend = LocalBackend::with_temp_workspaces(base.path());
        let id = workflow_id("env");
        backend.probe().await.expect("probe");
        backend
            .setup_workflow(&id, &plan(vec![]))
            .await
            .expect("setup");
        let out = output_of(&backend, &id, &["env | sort", "pwd"]).await;
        assert!(out.contains("FROM_STEP=yes\n"), "{out}");
        assert!(out.contains("FROM_SECRET=hidden\n"), "{out}");
        assert!(out.contains("PATH="), "{out}");
        assert!(!out.contains("CARGO"), "host variables leak in: {out}");
        let workspace = backend.workspace_of(&id).expect("set up");
        assert!(
            out.trim_end().ends_with(workspace.to_str().unwrap()),
            "{out}"
        );
        backend.destroy_workflow(&id).await.expect("destroy");
        assert!(!workspace.exists());
        // Destroying again, or a step that is gone, is fine.
        backend.destroy_workflow(&id).await.expect("destroy twice");
        let gone = step("gone", &[], json!({}));
        backend
            .destroy_step(&id, &gone)
            .await
            .expect("destroy a missing step");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_07_workflow_ids_that_are_not_plain_names_are_refused() {
    within(async {
        let base = TempDir::new("ids");
        let backend = LocalBackend::with_temp_workspaces(base.path());
        for bad in ["../escape", "a/b", "", ".hidden", "nul\0byte"] {
            let err = backend
                .setup_workflow(&WorkflowId(bad.into()), &plan(vec![]))
                .await
                .expect_err(bad);
            assert!(err.to_string().contains("cannot name a directory"), "{err}");
        }
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_07_workdirs_cannot_leave_the_workspace() {
    within(async {
        let dir = TempDir::new("workdir");
        let backend = LocalBackend::in_directory(dir.path());
        let id = workflow_id("workdir");
        backend
            .setup_workflow(&id, &plan(vec![]))
            .await
            .expect("setup");
        let sneaky = step(
            "sneaky",
            &["true"],
            json!({"workdir": "/workspace/../../etc"}),
        );
        let err = backend
            .start_step(&id, &sneaky, &[])
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("leaves the workspace"), "{err}");
        backend.destroy_workflow(&id).await.expect("destroy");
        assert!(dir.path().exists(), "a fixed workspace is never removed");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaping_removes_only_workspaces_of_dead_runners() {
    within(async {
        let base = TempDir::new("reap");
        let make = |name: &str, owner: &str| {
            let dir = base.path().join(name);
            std::fs::create_dir_all(dir.join("workspace")).unwrap();
            std::fs::write(dir.join("owner"), owner).unwrap();
            dir
        };
        // No process has a pid above the kernel's maximum (at most 2^22).
        let dead = make("gantry-dead", "99999999");
        let garbled = make("gantry-garbled", "not a pid");
        let alive = make("gantry-alive", "1");
        let unrelated = make("something-else", "99999999");
        let backend = LocalBackend::with_temp_workspaces(base.path());
        let active = workflow_id("active");
        backend
            .setup_workflow(&active, &plan(vec![]))
            .await
            .expect("setup");
        assert_eq!(backend.reap_leftovers().await.expect("reap"), 2);
        assert!(!dead.exists() && !garbled.exists());
        assert!(alive.exists() && unrelated.exists());
        assert!(backend.workspace_of(&active).expect("active").exists());
        backend.destroy_workflow(&active).await.expect("destroy");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_up_again_replaces_a_leftover_workspace() {
    within(async {
        let base = TempDir::new("again");
        let backend = LocalBackend::with_temp_workspaces(base.path());
        let id = workflow_id("again");
        backend
            .setup_workflow(&id, &plan(vec![]))
            .await
            .expect("setup");
        let workspace = backend.workspace_of(&id).unwrap();
        std::fs::write(workspace.join("stale"), "old run").unwrap();
        backend
            .setup_workflow(&id, &plan(vec![]))
            .await
            .expect("setup again");
        assert!(!workspace.join("stale").exists());
        backend.destroy_workflow(&id).await.expect("destroy");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_before_setup_is_a_clear_error() {
    within(async {
        let backend = LocalBackend::in_directory(".");
        let err = backend
            .start_step(
                &workflow_id("nosetup"),
                &step("a", &["true"], json!({})),
                &[],
            )
            .await
            .expect_err("not set up");
        assert!(err.to_string().contains("is not set up"), "{err}");
    })
    .await;
}

#[test]
fn steps_die_with_the_tokio_runtime() {
    let dir = TempDir::new("shutdown");
    let pid_file = dir.path().join("sleeper.pid");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let backend = LocalBackend::in_directory(dir.path());
    tokio.block_on(within(async {
        let id = workflow_id("shutdown");
        backend
            .setup_workflow(&id, &plan(vec![]))
            .await
            .expect("setup");
        let sleeper = step(
            "sleeper",
            &["echo $$ > pid.tmp; mv pid.tmp sleeper.pid; exec sleep 300"],
            json!({}),
        );
        backend.start_step(&id, &sleeper, &[]).await.expect("start");
        common::wait_for_file(&pid_file).await;
    }));
    let pid = common::read_pid(&pid_file);
    drop(tokio);
    // Bounded poll: the kill happens when the runtime drops its tasks.
    let deadline = std::time::Instant::now() + common::TEST_TIMEOUT;
    while common::process_alive(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "step {pid} outlived the runtime"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
fn start_time(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let (_, rest) = stat.rsplit_once(')').expect("a stat line");
    rest.split_whitespace()
        .nth(19)
        .expect("field 22")
        .to_owned()
}

/// This boot's id.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("boot id")
        .trim()
        .to_owned()
}

/// A step mark of the form the backend writes.
const MARK: &str = "00112233445566778899aabbccddeeff";

/// A record as the backend writes it: boot id, the leader's start time, the step's mark.
fn record(boot: &str, started: &str, mark: &str) -> String {
    format!("{boot} {started} {mark}\n")
}

/// Where the runner records the steps of workflow `name`.
fn records_dir(base: &std::path::Path, name: &str) -> std::path::PathBuf {
    base.join(".gantry-records").join(format!("gantry-{name}"))
}

/// A workflow directory as a runner that died leaves it: owner gone, its records (file
/// name, content) in the runner's state directory.
fn dead_runners_workflow(base: &std::path::Path, name: &str, records: &[(String, String)]) {
    let dir = base.join(format!("gantry-{name}"));
    std::fs::create_dir_all(dir.join("workspace")).unwrap();
    // No process has a pid above the kernel's maximum (at most 2^22).
    std::fs::write(dir.join("owner"), "99999999 12345\n").unwrap();
    let state = records_dir(base, name);
    std::fs::create_dir_all(&state).unwrap();
    for (file, text) in records {
        std::fs::write(state.join(file), text).unwrap();
    }
}

/// A shell leading a new group that starts `sleep 300` in the background (with `mark` in
/// its environment, when given), ends, and leaves the sleep running in the group.
/// Returns the leader's pid and start time, and the sleep's pid.
fn leaderless_group(mark: Option<&str>) -> (u32, String, u32) {
    use std::io::{BufRead as _, Write as _};
    use std::os::unix::process::CommandExt as _;
    let mut command = std::process::Command::new("/bin/sh");
    command
        .args(["-c", "sleep 300 & echo $!; read _"])
        .env_remove("GANTRY_STEP_MARK")
        .process_group(0)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    if let Some(mark) = mark {
        command.env("GANTRY_STEP_MARK", mark);
    }
    let mut leader = command.spawn().expect("sh starts");
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(leader.stdout.take().unwrap());
    stdout.read_line(&mut line).expect("the sleep's pid");
    let child: u32 = line.trim().parse().expect("a pid");
    let started = start_time(leader.id());
    writeln!(leader.stdin.take().unwrap()).expect("tell the leader to end");
    assert!(leader.wait().expect("reaped").success());
    assert!(
        common::process_alive(child),
        "the group lives on without its leader"
    );
    (leader.id(), started, child)
}

/// Kills and waits for a process that is not a child of this one.
async fn kill_stray(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    common::wait_until_dead(pid).await;
}

/// A `sleep 300` in a new process group of its own (its own pid), not a backend step.
fn sleeper() -> std::process::Child {
    use std::os::unix::process::CommandExt as _;
    std::process::Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .expect("sleep starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_step_is_recorded_and_reaping_kills_it_once_its_runner_is_gone() {
    within(async {
        let base = TempDir::new("orphans");
        let backend = LocalBackend::with_temp_workspaces(base.path());
        let id = workflow_id("orphan");
        backend
            .setup_workflow(&id, &plan(vec![]))
            .await
            .expect("setup");
        let workspace = backend.workspace_of(&id).expect("set up");
        let pid_file = workspace.join("sleeper.pid");
        // The step's shell leaves a background child behind in its group.
        let sleeper = step(
            "sleeper",
            &["sleep 300 & echo $! > pid.tmp; mv pid.tmp sleeper.pid; wait"],
            json!({}),
        );
        backend.start_step(&id, &sleeper, &[]).await.expect("start");
        common::wait_for_file(&pid_file).await;
        let pid = common::read_pid(&pid_file);
        // Recorded next to the workflow directory, not in it.
        let records = records_dir(base.path(), &id.0);
        let recorded: Vec<_> = std::fs::read_dir(&records).unwrap().flatten().collect();
        assert_eq!(recorded.len(), 1, "one record per running step");
        let leader: u32 = recorded[0].file_name().to_str().unwrap().parse().unwrap();
        let text = std::fs::read_to_string(recorded[0].path()).unwrap();
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{text}");
        assert_eq!(fields[..2], [boot_id(), start_time(leader)]);
        let mark = fields[2];
        assert!(
            mark.len() == 32 && mark.bytes().all(|b| b.is_ascii_hexdigit()),
            "{mark}"
        );
        // The background child carries the step's mark.
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let wanted = format!("GANTRY_STEP_MARK={mark}");
        assert!(
            environ.split(|b| *b == 0).any(|e| e == wanted.as_bytes()),
            "the mark is in the step's environment"
        );
        assert!(!workspace.parent().unwrap().join("processes").exists());

        // Another backend on the same directory (a runner started again) does not know
        // the workflow, and its owner (this process) is not running it for that backend:
        // the recorded group is killed, the directory removed.
        let restarted = LocalBackend::with_temp_workspaces(base.path());
        assert_eq!(restarted.reap_leftovers().await.expect("reap"), 1);
        common::wait_until_dead(pid).await;
        assert!(!workspace.exists());
        let exit = backend.wait_step(&id, &sleeper).await.expect("wait");
        assert_eq!(exit.code, 128 + 9, "killed");
        backend.destroy_workflow(&id).await.expect("destroy");
        assert!(!records.exists(), "the records went with the workflow");
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_ends_leaves_no_record() {
    within(async {
        let base = TempDir::new("records");
        let backend = LocalBackend::with_temp_workspaces(base.path());
        let id = workflow_id("records");
        backend
            .setup_workflow(&id, &plan(vec![]))
            .await
            .expect("setup");
        let quick = step("quick", &["echo done"], json!({}));
        backend.start_step(&id, &quick, &[]).await.expect("start");
        let exit = backend.wait_step(&id, &quick).await.expect("wait");
        assert_eq!(exit.code, 0);
        // Gone once the step's end is known, before anything destroys the step.
        let workspace = backend.workspace_of(&id).expect("set up");
        let records = records_dir(base.path(), &id.0);
        assert!(workspace.starts_with(base.path()) && records.exists());
        let left = std::fs::read_dir(&records).map_or(0, |d| d.count());
        assert_eq!(left, 0, "the ended step's record is removed");
        backend.destroy_step(&id, &quick).await.expect("destroy");
        backend.destroy_workflow(&id).await.expect("destroy");
        assert!(!records.exists());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaping_never_kills_a_process_that_only_reuses_a_recorded_id() {
    within(async {
        let base = TempDir::new("reuse");
        let mut stranger = sleeper();
        let mut orphan = sleeper();
        let (stranger_pid, orphan_pid) = (stranger.id(), orphan.id());
        let boot = boot_id();
        let orphan_started = start_time(orphan_pid);
        // The stranger's id was recorded for a process that started at another time.
        dead_runners_workflow(
            base.path(),
            "reused",
            &[
                (stranger_pid.to_string(), record(&boot, "1", MARK)),
                (orphan_pid.to_string(), record(&boot, &orphan_started, MARK)),
            ],
        );
        // Garbage records are ignored (and removed with their directory).
        dead_runners_workflow(
            base.path(),
            "garbage",
            &[
                ("1".into(), record(&boot, "1", MARK)),
                ("0".into(), "x".into()),
                ("2".into(), start_time(std::process::id())),
            ],
        );
        let backend = LocalBackend::with_temp_workspaces(base.path());
        assert_eq!(backend.reap_leftovers().await.expect("reap"), 2);
        let orphan_exit = tokio::task::spawn_blocking(move || orphan.wait())
            .await
            .unwrap()
            .expect("reaped");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&orphan_exit),
            Some(9),
            "the recorded group was killed"
        );
        assert!(common::process_alive(stranger_pid), "the stranger lives on");
        stranger.kill().expect("kill the stranger");
        stranger.wait().expect("reaped");
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaping_kills_what_a_recorded_group_left_after_its_leader_ended() {
    within(async {
        let base = TempDir::new("leaderless");
        let (leader, started, child) = leaderless_group(Some(MARK));
        dead_runners_workflow(
            base.path(),
            "leaderless",
            &[(leader.to_string(), record(&boot_id(), &started, MARK))],
        );
        let backend = LocalBackend::with_temp_workspaces(base.path());
        assert_eq!(backend.reap_leftovers().await.expect("reap"), 1);
        common::wait_until_dead(child).await;
        assert!(!records_dir(base.path(), "leaderless").exists());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaping_spares_a_group_that_only_reuses_a_recorded_group_id() {
    within(async {
        let base = TempDir::new("regroup");
        // A group whose leader is gone, whose members do not carry the recorded mark: a
        // newer group that got the recorded id (process ids wrapped, or a reboot), even
        // though its members started after the recorded leader.
        let (leader, started, child) = leaderless_group(None);
        let (marked_leader, marked_started, marked_child) = leaderless_group(Some(MARK));
        let other_mark = "ffeeddccbbaa99887766554433221100";
        dead_runners_workflow(
            base.path(),
            "regroup",
            &[
                (leader.to_string(), record(&boot_id(), &started, MARK)),
                // The right mark, but a record of another boot.
                (
                    marked_leader.to_string(),
                    record("another-boot", &marked_started, MARK),
                ),
            ],
        );
        // The right mark and boot, but the wrong group: that group's members carry another.
        dead_runners_workflow(
            base.path(),
            "othermark",
            &[(
                marked_leader.to_string(),
                record(&boot_id(), &marked_started, other_mark),
            )],
        );
        let backend = LocalBackend::with_temp_workspaces(base.path());
        assert_eq!(backend.reap_leftovers().await.expect("reap"), 2);
        assert!(
            common::process_alive(child),
            "a group without the mark lives on"
        );
        assert!(
            common::process_alive(marked_child),
            "another boot's record, another mark: nothing killed"
        );
        kill_stray(child).await;
        kill_stray(marked_child).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_07_reaping_follows_no_symbolic_link_and_removes_only_records() {
    within(async {
        let base = TempDir::new("links");
        let victim = TempDir::new("victim");
        for name in ["4242", "keep.txt"] {
            std::fs::write(victim.path().join(name), "precious").unwrap();
        }
        // A workflow whose records directory is a link to another directory.
        dead_runners_workflow(base.path(), "linked", &[]);
        let linked = records_dir(base.path(), "linked");
        std::fs::remove_dir(&linked).unwrap();
        std::os::unix::fs::symlink(victim.path(), &linked).unwrap();
        // A workflow whose records directory holds what the runner did not write, and
        // a record that is a link to a file.
        dead_runners_workflow(
            base.path(),
            "mixed",
            &[
                ("notes".into(), "not a record".into()),
                ("99999998".into(), record(&boot_id(), "1", MARK)),
            ],
        );
        let mixed = records_dir(base.path(), "mixed");
        std::os::unix::fs::symlink(victim.path().join("keep.txt"), mixed.join("4243")).unwrap();

        let backend = LocalBackend::with_temp_workspaces(base.path());
        assert_eq!(backend.reap_leftovers().await.expect("reap"), 2);
        for name in ["4242", "keep.txt"] {
            assert_eq!(
                std::fs::read_to_string(victim.path().join(name)).unwrap(),
                "precious",
                "{name} outside the state directory is untouched"
            );
        }
        let left: Vec<_> = std::fs::read_dir(&mixed)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, ["notes"], "only names of records are removed");
        assert!(
            std::fs::symlink_metadata(&linked)
                .unwrap()
                .file_type()
                .is_symlink()
        );

        // A state directory that is a link is refused when a step is recorded.
        let other = TempDir::new("linked-state");
        std::os::unix::fs::symlink(victim.path(), other.path().join(".gantry-records")).unwrap();
        let backend = LocalBackend::with_temp_workspaces(other.path());
        let id = workflow_id("refused");
        backend
            .setup_workflow(&id, &plan(vec![]))
            .await
            .expect("setup");
        let quick = step("quick", &["echo hi"], json!({}));
        let error = backend
            .start_step(&id, &quick, &[])
            .await
            .expect_err("refused");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        backend.destroy_workflow(&id).await.expect("destroy");
        assert_eq!(std::fs::read_dir(victim.path()).unwrap().count(), 2);
    })
    .await;
}
