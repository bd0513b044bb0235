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
