//! The Docker backend driven directly through the `Backend` trait, on a real engine.

mod common;

use common::{TestEnv, plan, step, within_timeout};
use futures_util::StreamExt;
use gantry_pipeline::plan::PullPolicy;
use gantry_runner::{Backend, BackendError, LogStream, OutputStream};

/// Everything a log stream yields, per stream.
async fn read_all(mut logs: LogStream) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(chunk) = logs.next().await {
        let chunk = chunk.expect("log chunk");
        match chunk.stream {
            OutputStream::Stdout => out.extend(chunk.data),
            OutputStream::Stderr => err.extend(chunk.data),
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_of_a_step_that_already_exited_is_not_lost() {
    let Some(env) = TestEnv::new("instant-output").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let s = step("say", &["echo to-stdout", "echo to-stderr >&2"]);
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        b.start_step(&id, &s, &[]).await.expect("start");
        // The step is over before anyone asks for its output.
        let exit = b.wait_step(&id, &s).await.expect("wait");
        assert_eq!(exit.code, 0);
        let (out, err) = read_all(b.logs(&id, &s).await.expect("logs")).await;
        assert_eq!(out, "+ echo to-stdout\nto-stdout\n+ echo to-stderr >&2\n");
        assert_eq!(err, "to-stderr\n");
        b.destroy_step(&id, &s).await.expect("destroy step");
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_comes_back_as_a_code_not_an_error() {
    let Some(env) = TestEnv::new("exit-code").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let s = step("fail", &["exit 3"]);
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        b.start_step(&id, &s, &[]).await.expect("start");
        let exit = b.wait_step(&id, &s).await.expect("wait");
        assert_eq!((exit.code, exit.oom_killed), (3, false));
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_really_kills_and_is_reported_as_oom() {
    let Some(env) = TestEnv::new("oom").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let mut s = step(
            "hog",
            &[
                r#"x=$(head -c 64000000 /dev/zero | tr "\0" x)"#,
                "echo survived",
            ],
        );
        s.resources.memory = Some(16 * 1024 * 1024);
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        b.start_step(&id, &s, &[]).await.expect("start");
        let exit = b.wait_step(&id, &s).await.expect("wait");
        assert!(exit.oom_killed, "not OOM-killed: {exit:?}");
        assert_ne!(exit.code, 0);
        let (out, _) = read_all(b.logs(&id, &s).await.expect("logs")).await;
        assert!(!out.contains("\nsurvived"), "{out}");
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}

/// The other side of the OOM report: a SIGKILL under a memory limit, with no OOM recorded
/// by the engine, is not called out of memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_under_a_memory_limit_is_not_reported_as_oom() {
    let Some(env) = TestEnv::new("kill-not-oom").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        // A child shell kills itself (pid 1 cannot be sent SIGKILL from inside), and the
        // script ends with its status.
        let mut s = step("killed", &["sh -c 'kill -9 $$'"]);
        s.resources.memory = Some(64 * 1024 * 1024);
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        b.start_step(&id, &s, &[]).await.expect("start");
        let exit = b.wait_step(&id, &s).await.expect("wait");
        assert_eq!((exit.code, exit.oom_killed), (137, false));
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_with_pull_never_is_image_not_found() {
    let Some(env) = TestEnv::new("pull-never").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let mut s = step("build", &["true"]);
        s.image = "gantry-test/absent:1".to_string();
        s.pull = PullPolicy::Never;
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        let err = b.start_step(&id, &s, &[]).await.expect_err("must fail");
        assert!(matches!(err, BackendError::ImageNotFound { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("image `gantry-test/absent:1` not found")
                && text.contains("pull policy is `never`"),
            "{text}"
        );
        // Destroying a step that never got a container is fine.
        b.destroy_step(&id, &s).await.expect("destroy step");
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pull_reports_the_engine_words() {
    let Some(env) = TestEnv::new("pull-fails").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let mut s = step("build", &["true"]);
        s.image = "gantry-test/absent-and-unpullable:1".to_string();
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        let err = b.start_step(&id, &s, &[]).await.expect_err("must fail");
        let BackendError::ImageNotFound { image, detail } = &err else {
            panic!("expected ImageNotFound, got {err:?}");
        };
        assert_eq!(image, "gantry-test/absent-and-unpullable:1");
        let words = detail
            .strip_prefix("it could not be pulled: ")
            .unwrap_or("");
        assert!(!words.is_empty(), "no engine message in {detail:?}");
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_is_idempotent_and_works_after_failed_setup_and_start() {
    let Some(env) = TestEnv::new("idempotent").await else {
        return;
    };
    within_timeout(async {
        let b = env.backend.as_ref();
        let never = env.workflow("never-set-up");
        b.destroy_workflow(&never)
            .await
            .expect("nothing to destroy");
        b.destroy_step(&never, &step("x", &["true"]))
            .await
            .expect("no step");

        let mut bad = plan(vec![], vec![]);
        bad.workspace = "relative/path".to_string();
        let id = env.workflow("bad-setup");
        let err = b
            .setup_workflow(&id, &bad)
            .await
            .expect_err("relative workspace");
        assert!(err.to_string().contains("must be absolute"), "{err}");
        b.destroy_workflow(&id).await.expect("after failed setup");

        let id = env.workflow("bad-start");
        let mut s = step("build", &["true"]);
        s.entrypoint = Some(vec!["/no/such/binary".to_string()]);
        b.setup_workflow(&id, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        let err = b.start_step(&id, &s, &[]).await.expect_err("cannot start");
        assert!(err.to_string().contains("start step `build`"), "{err}");
        for _ in 0..2 {
            b.destroy_step(&id, &s).await.expect("destroy step");
            b.destroy_workflow(&id).await.expect("destroy workflow");
        }
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_started_again_replaces_its_old_container() {
    let Some(env) = TestEnv::new("restart").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let s = step("again", &["echo run"]);
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        for _ in 0..2 {
            // No destroy in between: the second start must replace the first container.
            b.start_step(&id, &s, &[]).await.expect("start");
            assert_eq!(b.wait_step(&id, &s).await.expect("wait").code, 0);
        }
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_named_volumes_reach_the_container() {
    let Some(env) = TestEnv::new("env-volumes").await else {
        return;
    };
    within_timeout(async {
        let id = env.workflow("w");
        let mount = gantry_pipeline::plan::Mount {
            name: "cache".to_string(),
            host_path: None,
            target: "/cache".to_string(),
        };
        let mut write = step("write", &["echo \"$TOKEN\" > /cache/token"]);
        write.volumes = vec![mount.clone()];
        let mut read = step("read", &["cat /cache/token", "pwd"]);
        read.volumes = vec![mount];
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![write.clone(), read.clone()]))
            .await
            .expect("setup");
        let secrets = [("TOKEN".to_string(), "s3cret".to_string())];
        b.start_step(&id, &write, &secrets)
            .await
            .expect("start write");
        assert_eq!(b.wait_step(&id, &write).await.expect("wait").code, 0);
        b.start_step(&id, &read, &[]).await.expect("start read");
        assert_eq!(b.wait_step(&id, &read).await.expect("wait").code, 0);
        let (out, _) = read_all(b.logs(&id, &read).await.expect("logs")).await;
        assert_eq!(out, "+ cat /cache/token\ns3cret\n+ pwd\n/workspace\n");
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_quiet_for_longer_than_the_request_timeout_is_still_followed() {
    let Some(env) = TestEnv::new("quiet-step").await else {
        return;
    };
    within_timeout(async {
        // Setup and start go through the test's backend (a loaded engine may take more
        // than a second to create a network); the log and the wait through one whose
        // request timeout is one second.
        let config = gantry_docker::DockerConfig {
            request_timeout_secs: 1,
            ..env.backend.config().clone()
        };
        let quick = gantry_docker::DockerBackend::connect(config)
            .await
            .expect("connect");
        let id = env.workflow("w");
        // Silent for three times the request timeout, then speaks and exits.
        let s = step("quiet", &["sleep 3", "echo finally"]);
        let b = env.backend.as_ref();
        b.setup_workflow(&id, &plan(vec![], vec![s.clone()]))
            .await
            .expect("setup");
        b.start_step(&id, &s, &[]).await.expect("start");
        let logs = quick.logs(&id, &s).await.expect("logs");
        let (exit, (out, _)) = tokio::join!(quick.wait_step(&id, &s), read_all(logs));
        assert_eq!(exit.expect("wait outlives the request timeout").code, 0);
        assert!(out.ends_with("+ echo finally\nfinally\n"), "{out}");
        b.destroy_workflow(&id).await.expect("destroy workflow");
    })
    .await;
    env.assert_nothing_left().await;
}
