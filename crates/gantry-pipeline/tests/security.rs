//! The pipeline half of docs/security.md: items 6 (YAML grants no privilege), 7 (no path
//! traversal) and 8 (no environment injection).

mod common;

use common::{compile_with, lint, names, push_to_main};
use gantry_pipeline::{CompileContext, Mount};

fn trusted() -> CompileContext {
    CompileContext {
        trusted: true,
        ..push_to_main()
    }
}

#[test]
fn sec_06_privileged_is_refused_unless_the_repository_is_trusted() {
    let source = "steps:\n  - name: dind\n    image: docker:dind\n    privileged: true\n    commands: [dockerd]\n";
    assert_eq!(
        names(&common::compile_err(source, &push_to_main())),
        ["untrusted-privileged"]
    );
    assert!(compile_with(source, &trusted()).plans[0].steps[1].privileged);
    let service = "services:\n  - name: dind\n    image: docker:dind\n    privileged: true\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    assert_eq!(names(&lint(service)), ["untrusted-privileged"]);
}

#[test]
fn sec_06_host_volumes_and_the_docker_socket_are_refused_unless_trusted() {
    let source = "volumes:
  - name: host-cache
    host:
      path: /var/cache/ci
steps:
  - name: a
    image: docker:27
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
      - name: host-cache
        path: /cache
    commands: [docker ps]
";
    assert_eq!(
        names(&lint(source)),
        ["untrusted-volume", "untrusted-volume"]
    );
    let step = compile_with(source, &trusted()).plans[0].steps[1].clone();
    assert_eq!(
        step.volumes,
        [
            Mount {
                name: "host-var-run-docker-sock".into(),
                host_path: Some("/var/run/docker.sock".into()),
                target: "/var/run/docker.sock".into()
            },
            Mount {
                name: "host-cache".into(),
                host_path: Some("/var/cache/ci".into()),
                target: "/cache".into()
            },
        ]
    );
}

#[test]
fn sec_06_workflow_volumes_need_no_trust() {
    let source = "volumes:\n  - name: cache\n    temp: {}\nsteps:\n  - name: a\n    image: alpine\n    volumes:\n      - name: cache\n        path: /cache\n      - deps:/deps\n    commands: [\"true\"]\n";
    let step = compile_with(source, &push_to_main()).plans[0].steps[1].clone();
    assert_eq!(
        step.volumes,
        [
            Mount {
                name: "cache".into(),
                host_path: None,
                target: "/cache".into()
            },
            Mount {
                name: "deps".into(),
                host_path: None,
                target: "/deps".into()
            },
        ]
    );
}

#[test]
fn sec_06_docker_options_that_grant_access_are_refused_with_an_explanation() {
    let source = "steps:\n  - name: a\n    image: alpine\n    network_mode: host\n    devices: [/dev/kvm]\n    cap_add: [SYS_ADMIN]\n    commands: [\"true\"]\n";
    let diagnostics = lint(source);
    assert_eq!(
        names(&diagnostics),
        ["unknown-field", "unknown-field", "unknown-field"]
    );
    assert!(
        diagnostics
            .iter()
            .all(|d| d.message.contains("is not supported by Gantry"))
    );
    // Trust does not unlock them: they never reach the backend.
    assert!(common::compile_file(".pipeline.yml", source, &trusted()).is_err());
}

#[test]
fn sec_07_paths_with_dot_dot_nul_or_relative_targets_are_rejected() {
    for (yaml, what) in [
        ("workspace:\n  path: /workspace/../etc\n", "workspace"),
        ("workspace:\n  path: relative\n", "workspace"),
        ("workspace:\n  path: \"/work\\0space\"\n", "workspace"),
    ] {
        let source =
            format!("{yaml}steps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n");
        assert_eq!(names(&lint(&source)), ["invalid-path"], "{what}: {yaml}");
    }
    for volume in [
        "cache:relative",
        "cache:/a/../../etc",
        "/host/../etc:/x",
        "\"cache:/x\\0y\"",
        "cache:/workspace",
    ] {
        let source = format!(
            "steps:\n  - name: a\n    image: alpine\n    volumes:\n      - {volume}\n    commands: [\"true\"]\n"
        );
        let found = names(&lint(&source));
        assert!(found.contains(&"invalid-path"), "{volume}: {found:?}");
    }
    let host = "volumes:\n  - name: h\n    host:\n      path: /srv/../etc\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    assert_eq!(names(&lint(host)), ["invalid-path"]);
}

#[test]
fn sec_08_reserved_names_cannot_be_set_in_environment() {
    for name in [
        "CI_COMMIT_SHA",
        "DRONE_BRANCH",
        "PATH",
        "LD_PRELOAD",
        "HOME",
        "HTTP_PROXY",
        "https_proxy",
        "NO_PROXY",
        "CI",
    ] {
        let source = format!(
            "steps:\n  - name: a\n    image: alpine\n    environment:\n      {name}: x\n    commands: [\"true\"]\n"
        );
        assert_eq!(names(&lint(&source)), ["reserved-env"], "{name}");
    }
}

#[test]
fn sec_08_plugin_variables_come_only_from_settings_on_plugin_steps() {
    let plugin = "environment:\n  PLUGIN_REPO: evil/app\nsteps:\n  - name: publish\n    image: plugins/docker\n    settings:\n      repo: acme/app\n";
    let diagnostics = lint(plugin);
    assert_eq!(names(&diagnostics), ["reserved-env"]);
    assert!(
        diagnostics[0]
            .help
            .as_deref()
            .unwrap_or("")
            .contains("settings")
    );
    let commands = "steps:\n  - name: a\n    image: alpine\n    environment:\n      PLUGIN_REPO: fine-here\n    commands: [\"true\"]\n";
    assert!(lint(commands).is_empty());
}

#[test]
fn sec_08_services_are_checked_too() {
    let source = "services:\n  - name: db\n    image: postgres\n    environment:\n      LD_PRELOAD: /evil.so\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    assert_eq!(names(&lint(source)), ["reserved-env"]);
}

const STEP_TRUE: &str = "steps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";

#[test]
fn sec_08_matrix_variables_cannot_be_plugin_or_git_variables() {
    for name in [
        "PLUGIN_SKIP_VERIFY",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_KEY_0",
        "GIT_CONFIG_VALUE_0",
        "git_ssh_command",
        "CI_COMMIT_SHA",
        "LD_PRELOAD",
    ] {
        let source = format!("matrix:\n  {name}: [\"true\"]\n{STEP_TRUE}");
        assert_eq!(names(&lint(&source)), ["reserved-env"], "{name}");
        let include = format!("matrix:\n  include:\n    - {name}: x\n{STEP_TRUE}");
        let found = names(&lint(&include));
        assert!(found.contains(&"reserved-env"), "include {name}: {found:?}");
    }
}

#[test]
fn sec_08_the_clone_step_gets_build_facts_only() {
    let source = "matrix:\n  GO: [\"1.22\"]\nenvironment:\n  SHARED: x\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    let ctx = CompileContext {
        extra_env: [("FROM_CLI".to_string(), "y".to_string())].into(),
        ..push_to_main()
    };
    let plan = compile_with(source, &ctx).plans[0].clone();
    let clone = &plan.steps[0].environment;
    for name in ["GO", "SHARED", "FROM_CLI", "CI_MATRIX"] {
        assert!(!clone.contains_key(name), "the clone step has {name}");
    }
    assert!(
        clone
            .keys()
            .all(|k| k.starts_with("CI") || k.starts_with("DRONE") || k.starts_with("PLUGIN_"))
    );
    assert_eq!(clone["CI_COMMIT_SHA"], push_to_main().sha);
    let step = &plan.steps[1].environment;
    assert_eq!(
        (
            step["GO"].as_str(),
            step["SHARED"].as_str(),
            step["FROM_CLI"].as_str()
        ),
        ("1.22", "x", "y")
    );
}

#[test]
fn sec_08_git_variables_are_refused_on_plugin_steps_only() {
    let plugin = "steps:\n  - name: publish\n    image: plugins/docker\n    environment:\n      GIT_SSH_COMMAND: evil\n    settings:\n      repo: acme/app\n";
    let diagnostics = lint(plugin);
    assert_eq!(names(&diagnostics), ["reserved-env"]);
    assert!(
        diagnostics[0]
            .help
            .as_deref()
            .unwrap_or("")
            .contains("GIT_")
    );
    let commands = "steps:\n  - name: a\n    image: alpine\n    environment:\n      GIT_AUTHOR_NAME: Ada\n    commands: [\"true\"]\n";
    assert!(lint(commands).is_empty());
}

#[test]
fn sec_08_extra_variables_with_reserved_names_are_file_level_errors() {
    let ctx = CompileContext {
        extra_env: [
            ("PATH".to_string(), "/evil".to_string()),
            ("PLUGIN_REPO".to_string(), "x".to_string()),
            ("GIT_DIR".to_string(), "x".to_string()),
            ("NOT A NAME".to_string(), "x".to_string()),
        ]
        .into(),
        ..push_to_main()
    };
    let diagnostics = common::compile_err(STEP_TRUE, &ctx);
    assert_eq!(names(&diagnostics), ["reserved-env"; 4]);
    assert!(diagnostics.iter().all(|d| d.line == 0 && d.column == 0));
    assert!(diagnostics[0].message.contains("extra variable"));
}

#[test]
fn sec_07_workspace_cannot_be_a_system_directory() {
    for path in [
        "/bin",
        "/usr/local/bin",
        "/usr",
        "/",
        "/var",
        "/etc",
        "/lib64",
        "/proc",
    ] {
        let source = format!("workspace:\n  path: {path}\n{STEP_TRUE}");
        assert_eq!(names(&lint(&source)), ["invalid-path"], "{path}");
    }
    let drone = "kind: pipeline\nname: d\nworkspace:\n  base: /usr\n  path: local/bin\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    assert_eq!(
        names(&common::lint_file(".drone.yml", drone)),
        ["invalid-path"]
    );
}

#[test]
fn sec_07_volume_targets_cannot_cover_system_directories() {
    for volume in [
        "cache:/bin",
        "cache:/usr/local/bin",
        "cache:/sbin/init",
        "cache:/var/run",
        "cache:/etc",
    ] {
        let source = format!(
            "steps:\n  - name: a\n    image: alpine\n    volumes:\n      - {volume}\n    commands: [\"true\"]\n"
        );
        assert_eq!(names(&lint(&source)), ["invalid-path"], "{volume}");
    }
    let parent_of_workspace = "steps:\n  - name: a\n    image: alpine\n    volumes: [\"cache:/\"]\n    commands: [\"true\"]\n";
    assert!(names(&lint(parent_of_workspace)).contains(&"invalid-path"));
}

#[test]
fn sec_07_plugin_steps_mount_workflow_volumes_only_inside_the_workspace() {
    let plugin = |target: &str| {
        format!(
            "steps:\n  - name: p\n    image: plugins/s3\n    volumes: [\"cache:{target}\"]\n    settings:\n      bucket: b\n"
        )
    };
    let diagnostics = lint(&plugin("/opt/plugin"));
    assert_eq!(names(&diagnostics), ["invalid-path"]);
    assert!(diagnostics[0].message.contains("inside the workspace"));
    assert!(lint(&plugin("/workspace/cache")).is_empty());
    let commands = "steps:\n  - name: a\n    image: alpine\n    volumes: [\"cache:/opt/cache\"]\n    commands: [\"true\"]\n";
    assert!(lint(commands).is_empty());
    let socket = "steps:\n  - name: p\n    image: plugins/docker\n    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n    settings:\n      repo: a/b\n";
    assert!(
        compile_with(socket, &trusted()).plans[0].steps[1].volumes[0]
            .host_path
            .is_some()
    );
}

#[test]
fn sec_07_the_exported_path_check_matches_the_compiler() {
    use gantry_pipeline::plan::path_problem;
    for bad in ["/bin", "/usr/lib/x", "/", "relative", "/a/../b", "/x\0y"] {
        assert!(path_problem(bad).is_some(), "{bad:?}");
    }
    assert_eq!(path_problem("/workspace"), None);
    assert_eq!(path_problem("/var/run/docker.sock"), None);
}

#[test]
fn sec_07_a_received_plan_is_validated_again() {
    let source = "volumes:\n  - name: c\n    temp: {}\nsteps:\n  - name: a\n    image: alpine\n    volumes: [\"c:/cache\"]\n    commands: [\"true\"]\n  - name: p\n    image: plugins/s3\n    settings:\n      bucket: b\n";
    let plan = compile_with(source, &push_to_main()).plans[0].clone();
    let wire = serde_json::to_string(&plan).expect("serialise");
    let received: gantry_pipeline::Plan = serde_json::from_str(&wire).expect("parse");
    assert_eq!(received.validate(), Ok(()));
    type Tamper = fn(&mut gantry_pipeline::Plan);
    let tampered: [(&str, Tamper); 9] = [
        ("workspace", |p| p.workspace = "/bin".into()),
        ("unknown need", |p| p.steps[1].needs = vec!["nope".into()]),
        ("self need", |p| p.steps[1].needs = vec!["a".into()]),
        ("cycle", |p| p.steps[0].needs = vec!["p".into()]),
        ("mount", |p| {
            p.steps[1].volumes[0].target = "/usr/bin".into()
        }),
        ("plugin mount", |p| {
            let mount = p.steps[1].volumes[0].clone();
            p.steps[2].volumes.push(mount);
        }),
        ("name", |p| p.steps[1].name = "A B".into()),
        ("duplicate", |p| p.steps[2].name = "a".into()),
        ("env name", |p| {
            p.steps[1].environment.insert("A=B".into(), "x".into());
        }),
    ];
    for (what, tamper) in tampered {
        let mut bad = received.clone();
        tamper(&mut bad);
        assert!(bad.validate().is_err(), "{what} passed validation");
    }
}
