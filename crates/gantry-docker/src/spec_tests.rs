//! The container spec, checked without an engine.

use gantry_pipeline::plan::{Mount, Resources, Step, StepKind};

use super::*;
use crate::unit_fixtures::{context, step};

fn body(step: &Step) -> ContainerCreateBody {
    container_body(&context(), step, &[]).expect("valid step")
}

#[test]
fn commands_run_their_script_through_sh() {
    let s = step("build", StepKind::Commands, &["echo hi"]);
    let b = body(&s);
    assert_eq!(
        b.entrypoint,
        Some(vec!["/bin/sh".to_string(), "-c".to_string()])
    );
    assert_eq!(b.cmd, Some(vec![s.script()]));
    assert_eq!(b.working_dir.as_deref(), Some("/workspace"));
}

#[test]
fn plugins_keep_the_image_entrypoint_unless_overridden() {
    let mut s = step("publish", StepKind::Plugin, &[]);
    let b = body(&s);
    assert_eq!((b.entrypoint, b.cmd), (None, None));
    s.entrypoint = Some(vec!["/bin/plugin".to_string()]);
    assert_eq!(body(&s).entrypoint, Some(vec!["/bin/plugin".to_string()]));
}

#[test]
fn services_with_commands_run_the_script() {
    let s = step("web", StepKind::Service, &["httpd -f"]);
    assert_eq!(body(&s).cmd, Some(vec![s.script()]));
}

/// Docker refuses a host name, extra hosts, DNS, ports and aliases on a container that
/// joins another's network namespace: none may be set.
#[test]
fn steps_and_services_join_the_sandbox_and_set_nothing_it_owns() {
    for kind in [StepKind::Service, StepKind::Commands, StepKind::Plugin] {
        let b = body(&step("db", kind, &[]));
        assert_eq!((b.hostname, b.domainname), (None, None));
        assert_eq!(b.exposed_ports, None);
        assert_eq!(b.networking_config, None);
        let host = b.host_config.unwrap_or_default();
        assert_eq!(
            host.network_mode.as_deref(),
            Some("container:gantry-w1-sandbox")
        );
        assert_eq!(host.extra_hosts, None);
        assert_eq!(
            (host.dns, host.dns_search, host.dns_options),
            (None, None, None)
        );
        assert_eq!((host.port_bindings, host.publish_all_ports), (None, None));
        assert_eq!(host.links, None);
    }
}

#[test]
fn every_container_gets_no_new_privileges_and_a_pids_limit() {
    for kind in [StepKind::Service, StepKind::Commands, StepKind::Plugin] {
        let host = body(&step("x", kind, &["true"]))
            .host_config
            .unwrap_or_default();
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_string()])
        );
        assert_eq!(host.pids_limit, Some(4096));
    }
    let mut ctx = context();
    ctx.pids_limit = None;
    let s = step("x", StepKind::Commands, &["true"]);
    let b = container_body(&ctx, &s, &[]).expect("valid");
    assert_eq!(b.host_config.unwrap_or_default().pids_limit, None);
}

/// A privileged step keeps its process limit but may use setuid tools (see `host_config`).
#[test]
fn privileged_steps_keep_the_pids_limit_without_no_new_privileges() {
    let mut s = step("dind", StepKind::Service, &[]);
    s.privileged = true;
    let host = body(&s).host_config.unwrap_or_default();
    assert_eq!((host.privileged, host.security_opt), (Some(true), None));
    assert_eq!(host.pids_limit, Some(4096));
}

#[test]
fn secrets_join_the_environment_and_win_over_plain_values() {
    let mut s = step("deploy", StepKind::Commands, &["true"]);
    s.environment
        .insert("TOKEN".to_string(), "plain".to_string());
    let secrets = [("TOKEN".to_string(), "s3cret".to_string())];
    let b = container_body(&context(), &s, &secrets).expect("valid");
    let env = b.env.unwrap_or_default();
    assert!(env.contains(&"TOKEN=s3cret".to_string()), "{env:?}");
    assert!(!env.contains(&"TOKEN=plain".to_string()), "{env:?}");
    assert!(env.contains(&"CI=true".to_string()), "{env:?}");
}

#[test]
fn bad_environment_names_are_refused_with_the_step_name() {
    let mut s = step("deploy", StepKind::Commands, &["true"]);
    s.environment.insert("A=B".to_string(), "x".to_string());
    let err = container_body(&context(), &s, &[])
        .err()
        .map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(
        err.contains("step `deploy`") && err.contains("`A=B`"),
        "{err}"
    );
}

#[test]
fn limits_set_memory_swap_equal_and_nano_cpus() {
    let mut s = step("build", StepKind::Commands, &["true"]);
    s.resources = Resources {
        memory: Some(16 * 1024 * 1024),
        millicpus: Some(500),
    };
    let host = body(&s).host_config.unwrap_or_default();
    assert_eq!(host.memory, Some(16 * 1024 * 1024));
    assert_eq!(host.memory_swap, host.memory);
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.privileged, Some(false));
}

#[test]
fn absurd_limits_are_an_error_not_a_wrap() {
    let mut s = step("build", StepKind::Commands, &["true"]);
    s.resources.millicpus = Some(u64::MAX);
    assert!(container_body(&context(), &s, &[]).is_err());
    s.resources = Resources {
        memory: Some(u64::MAX),
        millicpus: None,
    };
    assert!(container_body(&context(), &s, &[]).is_err());
}

#[test]
fn mounts_are_workspace_then_named_volumes_then_host_paths() {
    let mut s = step("build", StepKind::Commands, &["true"]);
    s.privileged = true;
    s.volumes = vec![
        Mount {
            name: "cache".to_string(),
            host_path: None,
            target: "/cache".to_string(),
        },
        Mount {
            name: "sock".to_string(),
            host_path: Some("/var/run/x.sock".to_string()),
            target: "/x.sock".to_string(),
        },
    ];
    let host = body(&s).host_config.unwrap_or_default();
    assert_eq!(host.privileged, Some(true));
    let mounts: Vec<(Option<MountType>, String, String)> = host
        .mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.typ,
                m.source.unwrap_or_default(),
                m.target.unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        mounts,
        vec![
            (
                Some(MountType::VOLUME),
                "gantry-w1-workspace".to_string(),
                "/workspace".to_string()
            ),
            (
                Some(MountType::VOLUME),
                names::mount_volume(&WorkflowId("w1".to_string()), "cache"),
                "/cache".to_string()
            ),
            (
                Some(MountType::BIND),
                "/var/run/x.sock".to_string(),
                "/x.sock".to_string()
            ),
        ]
    );
}

#[test]
fn relative_or_escaping_mount_paths_are_refused() {
    for target in ["cache", "/a/../etc", ""] {
        let mut s = step("build", StepKind::Commands, &["true"]);
        s.volumes = vec![Mount {
            name: "cache".to_string(),
            host_path: None,
            target: target.to_string(),
        }];
        assert!(container_body(&context(), &s, &[]).is_err(), "{target:?}");
    }
}

#[test]
fn labels_name_workflow_step_owner_and_extras() {
    let labels = body(&step("build", StepKind::Commands, &["true"]))
        .labels
        .unwrap_or_default();
    assert_eq!(
        labels.get("gantry.workflow").map(String::as_str),
        Some("w1")
    );
    assert_eq!(labels.get("gantry.step").map(String::as_str), Some("build"));
    assert_eq!(
        labels.get("gantry.owner").map(String::as_str),
        Some("exec:h:1")
    );
    assert_eq!(labels.get("gantry.test").map(String::as_str), Some("t"));
}

#[test]
fn approval_and_imageless_steps_are_refused() {
    let approval = step("approve", StepKind::Approval, &[]);
    assert!(container_body(&context(), &approval, &[]).is_err());
    let mut no_image = step("build", StepKind::Commands, &["true"]);
    no_image.image.clear();
    let err = container_body(&context(), &no_image, &[]).err();
    assert!(err.is_some_and(|e| e.to_string().contains("has no image")));
}
