//! The sandbox's spec and the names it answers for, checked without an engine.

use std::collections::BTreeMap;

use gantry_pipeline::plan::{RunOn, Step, StepKind};
use gantry_runner::WorkflowId;

use super::*;
use crate::unit_fixtures;

fn step(name: &str, kind: StepKind, detach: bool) -> Step {
    let mut s = unit_fixtures::step(name, kind, &["true"]);
    s.detach = detach;
    s
}

fn plan(services: Vec<Step>, steps: Vec<Step>) -> Plan {
    Plan {
        name: "default".to_string(),
        matrix: BTreeMap::new(),
        labels: BTreeMap::new(),
        workspace: "/workspace".to_string(),
        services,
        steps,
        depends_on: Vec::new(),
        run_on: RunOn::default(),
    }
}

#[test]
fn services_and_detached_steps_are_reachable_plain_steps_are_not() {
    let p = plan(
        vec![step("db", StepKind::Service, false)],
        vec![
            step("build", StepKind::Commands, false),
            step("web", StepKind::Commands, true),
        ],
    );
    assert_eq!(reachable_names(&p), ["db", "web"]);
}

#[test]
fn names_that_are_no_host_names_are_left_out() {
    let p = plan(
        vec![
            step("db:5432", StepKind::Service, false),
            step("-x", StepKind::Service, false),
            step(&"a".repeat(64), StepKind::Service, false),
            step("cache_1", StepKind::Service, false),
        ],
        vec![],
    );
    assert_eq!(reachable_names(&p), ["cache_1"]);
}

#[test]
fn the_sandbox_holds_the_network_host_name_and_hosts_of_the_workflow() {
    let reachable = ["db".to_string(), "web".to_string()];
    let mut ctx = unit_fixtures::context();
    ctx.network = "gantry-w1-net".to_string();
    let body = sandbox_body(&ctx, "gantry/pause:1", &reachable);
    assert_eq!(body.image.as_deref(), Some("gantry/pause:1"));
    assert_eq!(
        body.hostname,
        Some(names::sandbox_hostname(&WorkflowId("w1".to_string())))
    );
    assert_eq!(body.stop_signal.as_deref(), Some("SIGKILL"));
    let host = body.host_config.unwrap_or_default();
    assert_eq!(host.network_mode.as_deref(), Some("gantry-w1-net"));
    assert_eq!(
        host.extra_hosts,
        Some(vec![
            "db:127.0.0.1".to_string(),
            "web:127.0.0.1".to_string()
        ])
    );
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    assert_eq!(
        host.security_opt,
        Some(vec!["no-new-privileges".to_string()])
    );
    assert_eq!(
        (host.readonly_rootfs, host.pids_limit),
        (Some(true), Some(4096))
    );
    let endpoints = body.networking_config.and_then(|n| n.endpoints_config);
    let aliases = endpoints.and_then(|mut e| e.remove("gantry-w1-net")?.aliases);
    assert_eq!(aliases, Some(reachable.to_vec()));
    let labels = body.labels.unwrap_or_default();
    assert_eq!(
        labels.get("gantry.workflow").map(String::as_str),
        Some("w1")
    );
    assert_eq!(labels.get("gantry.test").map(String::as_str), Some("t"));
    assert!(!labels.contains_key("gantry.step"));
}

#[test]
fn the_builtin_image_is_versioned() {
    assert_eq!(
        builtin_image(),
        format!("gantry/pause:{}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unsupported_architecture_says_to_set_the_sandbox_image() {
    let text = unsupported("s390x").to_string();
    assert!(
        text.contains("`s390x`") && text.contains("--sandbox-image"),
        "{text}"
    );
    assert!(text.contains("GANTRY_SANDBOX_IMAGE"), "{text}");
}
