//! Drone 1.x compatibility: `.drone.yml` read through the same compiler.

mod common;

use common::{names, push_to_main, render};
use gantry_pipeline::{CompileContext, Compiled, Diagnostic, Mount, RunOn, Severity};

fn drone(source: &str, ctx: &CompileContext) -> Result<Compiled, Vec<Diagnostic>> {
    common::compile_file(".drone.yml", source, ctx)
}

fn drone_ok(source: &str) -> Compiled {
    drone(source, &push_to_main()).unwrap_or_else(|d| panic!("{}", render(&d, source)))
}

#[test]
fn a_typical_drone_file_compiles() {
    let source = "kind: pipeline
type: docker
name: default

platform:
  os: linux
  arch: arm64

node:
  pool: fast

workspace:
  base: /go
  path: src/app

clone:
  depth: 1

volumes:
  - name: cache
    temp: {}

steps:
  - name: Build It
    image: golang
    volumes:
      - name: cache
        path: /go/pkg
    commands:
      - go build
  - name: notify
    image: plugins/slack
    depends_on: [Build It]
    settings:
      webhook:
        from_secret: hook
    when:
      status: [success, failure]
      event:
        exclude: [pull_request]

trigger:
  branch: [main]
  event:
    include: [push, custom]
";
    let compiled = drone_ok(source);
    let plan = &compiled.plans[0];
    assert_eq!(plan.labels["os"], "linux");
    assert_eq!(plan.labels["arch"], "arm64");
    assert_eq!(plan.labels["pool"], "fast");
    assert_eq!(plan.workspace, "/go/src/app");
    assert_eq!(plan.steps[0].environment["PLUGIN_DEPTH"], "1");
    assert_eq!(plan.steps[1].name, "build-it");
    assert_eq!(
        plan.steps[1].volumes,
        [Mount {
            name: "cache".into(),
            host_path: None,
            target: "/go/pkg".into()
        }]
    );
    assert_eq!(plan.steps[2].needs, ["build-it"]);
    assert_eq!(
        plan.steps[2].run_on,
        RunOn {
            success: true,
            failure: true
        }
    );
    assert_eq!(compiled.warnings.len(), 1, "the renamed step is a warning");
    assert_eq!(compiled.warnings[0].severity, Severity::Warning);
}

#[test]
fn trigger_skips_the_pipeline_with_a_reason() {
    let source = "kind: pipeline\nname: release\ntrigger:\n  event: [tag]\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    let compiled = drone_ok(source);
    assert!(compiled.plans.is_empty());
    assert_eq!(compiled.skipped[0].name, "release");
    let custom = CompileContext {
        event: "manual".into(),
        ..push_to_main()
    };
    let source = source.replace("[tag]", "[custom]");
    assert_eq!(drone(&source, &custom).expect("compiles").plans.len(), 1);
}

#[test]
fn several_documents_other_kinds_and_clone_disable() {
    let source = "kind: pipeline
name: a
clone:
  disable: true
steps:
  - name: one
    image: alpine
    commands: [\"true\"]
---
kind: secret
name: token
get:
  path: secret/data/ci
  name: token
---
kind: signature
hmac: abc
---
kind: pipeline
name: b
steps:
  - name: two
    image: alpine
    commands: [\"true\"]
";
    let compiled = drone_ok(source);
    let plans: Vec<(&str, usize)> = compiled
        .plans
        .iter()
        .map(|p| (p.name.as_str(), p.steps.len()))
        .collect();
    assert_eq!(plans, [("a", 1), ("b", 2)]);
}

#[test]
fn other_runner_types_and_duplicate_names_are_errors() {
    let source = "kind: pipeline\ntype: kubernetes\nname: k\nsteps:\n  - name: a\n    image: alpine\n---\nkind: pipeline\nname: x\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n---\nkind: pipeline\nname: x\nsteps:\n  - name: b\n    image: alpine\n    commands: [\"true\"]\n";
    let diagnostics = drone(source, &push_to_main()).expect_err("errors");
    assert_eq!(
        names(&diagnostics),
        ["unsupported-pipeline", "duplicate-pipeline"]
    );
}

#[test]
fn host_volumes_in_drone_need_trust() {
    let source = "kind: pipeline\nvolumes:\n  - name: sock\n    host:\n      path: /var/run/docker.sock\nsteps:\n  - name: a\n    image: docker\n    volumes:\n      - name: sock\n        path: /var/run/docker.sock\n    commands: [docker ps]\n";
    let diagnostics = drone(source, &push_to_main()).expect_err("untrusted");
    assert_eq!(names(&diagnostics), ["untrusted-volume"]);
    let trusted = CompileContext {
        trusted: true,
        ..push_to_main()
    };
    let compiled = drone(source, &trusted).expect("trusted");
    assert_eq!(
        compiled.plans[0].steps[1].volumes[0].host_path.as_deref(),
        Some("/var/run/docker.sock")
    );
}

#[test]
fn drone_documents_are_detected_by_kind_in_any_file() {
    let source = "kind: pipeline\ntype: docker\nname: x\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    let compiled =
        common::compile_file(".pipeline.yml", source, &push_to_main()).expect("compiles");
    assert_eq!(compiled.plans[0].name, "x");
}

#[test]
fn drone_substitution_operators_work() {
    let source = "kind: pipeline\nsteps:\n  - name: a\n    image: alpine\n    commands:\n      - echo ${DRONE_COMMIT_SHA:0:8} ${DRONE_TAG##v} ${DRONE_BRANCH^^}\n";
    let ctx = CompileContext {
        tag: "v1.2.3".into(),
        ..push_to_main()
    };
    let compiled = drone(source, &ctx).expect("compiles");
    assert_eq!(
        compiled.plans[0].steps[1].commands,
        ["echo 6f1c2a9e 1.2.3 MAIN"]
    );
}

#[test]
fn drone_only_fields_that_gantry_ignores_are_warnings() {
    let source = "kind: pipeline\nname: n\nconcurrency:\n  limit: 1\nimage_pull_secrets: [dockerconfig]\ntrigger:\n  instance: [ci.example.com]\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    let compiled = drone_ok(source);
    assert_eq!(
        names(&compiled.warnings),
        ["ignored-field", "ignored-field", "ignored-field"]
    );
}

fn drone_pipeline(name: &str, extra: &str) -> String {
    format!(
        "---\nkind: pipeline\nname: {name}\n{extra}steps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n"
    )
}

#[test]
fn pipeline_depends_on_orders_plans_and_trigger_status_sets_run_on() {
    let source = [
        drone_pipeline("build", ""),
        drone_pipeline("deploy", "depends_on: [build]\n"),
        drone_pipeline(
            "notify",
            "depends_on: [build, deploy]\ntrigger:\n  status: [success, failure]\n",
        ),
    ]
    .concat();
    let compiled = drone_ok(&source);
    let by_name = |n: &str| {
        compiled
            .plans
            .iter()
            .find(|p| p.name == n)
            .expect("plan")
            .clone()
    };
    assert!(by_name("build").depends_on.is_empty());
    assert_eq!(by_name("deploy").depends_on, ["build"]);
    assert_eq!(by_name("notify").depends_on, ["build", "deploy"]);
    assert_eq!(
        by_name("notify").run_on,
        RunOn {
            success: true,
            failure: true
        }
    );
    assert_eq!(by_name("deploy").run_on, RunOn::default());
}

#[test]
fn a_skipped_dependency_is_replaced_by_its_own_dependencies() {
    let source = [
        drone_pipeline("build", ""),
        drone_pipeline("release", "depends_on: [build]\ntrigger:\n  event: [tag]\n"),
        drone_pipeline("announce", "depends_on: [release]\n"),
    ]
    .concat();
    let compiled = drone_ok(&source);
    assert_eq!(compiled.skipped[0].name, "release");
    let announce = compiled.plans.iter().find(|p| p.name == "announce");
    assert_eq!(announce.expect("announce runs").depends_on, ["build"]);
}

#[test]
fn unknown_pipelines_and_pipeline_cycles_are_errors() {
    let unknown = [
        drone_pipeline("a", "depends_on: [bulid]\n"),
        drone_pipeline("build", ""),
    ]
    .concat();
    let diagnostics = common::lint_file(".drone.yml", &unknown);
    assert_eq!(names(&diagnostics), ["unknown-dependency"]);
    assert!(
        diagnostics[0]
            .help
            .as_deref()
            .unwrap_or("")
            .contains("build")
    );
    let cycle = [
        drone_pipeline("a", "depends_on: [b]\n"),
        drone_pipeline("b", "depends_on: [a]\n"),
    ]
    .concat();
    let diagnostics = common::lint_file(".drone.yml", &cycle);
    assert_eq!(names(&diagnostics), ["dependency-cycle"]);
    assert!(
        diagnostics[0].message.contains("a -> b -> a"),
        "{}",
        diagnostics[0].message
    );
}
