//! Step and pipeline fields: timeouts, retries, failure, pull, entrypoint, detach,
//! resources, approval, services, labels, workspace.

mod common;

use common::{compile_ok, compile_with, lint, names, push_to_main};
use gantry_pipeline::{CompileContext, FailurePolicy, PullPolicy, Resources, StepKind};

#[test]
fn runtime_fields_reach_the_plan() {
    let source = "steps:
  - name: a
    image: alpine
    commands: [\"true\"]
    timeout: 1h30m
    retries: 2
    failure: ignore
    pull: always
    entrypoint: [/bin/sh]
    resources:
      memory: 512MiB
      cpus: 1.5
  - name: b
    image: alpine
    pull: never
    detach: true
    commands: [\"true\"]
    resources:
      memory: 1G
      cpus: 500m
";
    let compiled = compile_ok(source);
    let a = &compiled.plans[0].steps[1];
    assert_eq!(a.timeout_secs, Some(5400));
    assert_eq!(a.retries, 2);
    assert_eq!(a.failure, FailurePolicy::Ignore);
    assert_eq!(a.pull, PullPolicy::Always);
    assert!(!a.detach);
    assert_eq!(a.entrypoint.as_deref(), Some(&["/bin/sh".to_string()][..]));
    assert_eq!(
        a.resources,
        Resources {
            memory: Some(512 << 20),
            millicpus: Some(1500)
        }
    );
    let b = &compiled.plans[0].steps[2];
    assert_eq!(b.pull, PullPolicy::Never);
    assert!(b.detach);
    assert_eq!(
        b.resources,
        Resources {
            memory: Some(1_000_000_000),
            millicpus: Some(500)
        }
    );
    assert_eq!(b.timeout_secs, None);
}

#[test]
fn steps_without_a_timeout_get_the_callers_default() {
    let ctx = CompileContext {
        default_timeout_secs: Some(600),
        ..push_to_main()
    };
    let compiled = compile_with(
        "steps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n",
        &ctx,
    );
    assert_eq!(compiled.plans[0].steps[1].timeout_secs, Some(600));
}

#[test]
fn bad_field_values_are_explained() {
    let source = "steps:
  - name: a
    image: alpine
    commands: [\"true\"]
    timeout: 90
    retries: 99
    failure: maybe
    pull: sometimes
    detach: yes please
    resources:
      memory: 1KiB
      cpus: many
      disk: 1G
";
    let diagnostics = lint(source);
    assert_eq!(
        names(&diagnostics),
        [
            "invalid-duration",
            "invalid-value",
            "invalid-value",
            "invalid-value",
            "invalid-type",
            "invalid-size",
            "invalid-size",
            "unknown-field"
        ]
    );
}

#[test]
fn approval_steps_run_no_container() {
    let source = "steps:
  - name: build
    image: alpine
    commands: [make]
  - name: approve
    depends_on: [build]
    approval:
      timeout: 24h
  - name: later
    depends_on: [approve]
    approval: true
";
    let compiled = compile_ok(source);
    let approve = &compiled.plans[0].steps[2];
    assert_eq!(approve.kind, StepKind::Approval);
    assert_eq!(approve.image, "");
    assert_eq!(approve.approval_timeout_secs, Some(86_400));
    assert!(approve.environment.is_empty());
    // Without a timeout of its own: the build's default, else 24h; never forever.
    assert_eq!(
        compiled.plans[0].steps[3].approval_timeout_secs,
        Some(86_400)
    );
    let ctx = gantry_pipeline::CompileContext {
        default_timeout_secs: Some(3600),
        ..common::push_to_main()
    };
    let compiled = common::compile_with(source, &ctx);
    assert_eq!(
        compiled.plans[0].steps[2].approval_timeout_secs,
        Some(86_400)
    );
    assert_eq!(compiled.plans[0].steps[3].approval_timeout_secs, Some(3600));
}

#[test]
fn step_kinds_follow_commands_and_settings() {
    let source = "steps:\n  - name: c\n    image: alpine\n    commands: [make]\n  - name: p\n    image: plugins/docker\n    settings:\n      repo: a/b\n  - name: both\n    image: x\n    commands: [make]\n    settings:\n      a: b\n";
    assert_eq!(names(&lint(source)), ["conflicting-fields"]);
    let ok = source.split("  - name: both").next().unwrap_or_default();
    let kinds: Vec<StepKind> = compile_ok(ok).plans[0]
        .steps
        .iter()
        .map(|s| s.kind)
        .collect();
    assert_eq!(
        kinds,
        [StepKind::Clone, StepKind::Commands, StepKind::Plugin]
    );
}

#[test]
fn services_are_sidecars_without_ordering() {
    let source = "services:
  - name: db
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: pw
    commands: [postgres -c fsync=off]
steps:
  - name: a
    image: alpine
    commands: [\"true\"]
";
    let compiled = compile_ok(source);
    let db = &compiled.plans[0].services[0];
    assert_eq!(db.kind, StepKind::Service);
    assert!(db.needs.is_empty());
    assert_eq!(db.environment["POSTGRES_PASSWORD"], "pw");
    assert_eq!(db.environment["CI_STEP_NAME"], "db");
    assert_eq!(db.commands, ["postgres -c fsync=off"]);
    let bad = "services:\n  - name: db\n    image: postgres\n    depends_on: [a]\n    retries: 1\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    assert_eq!(names(&lint(bad)), ["unknown-field", "unknown-field"]);
}

#[test]
fn services_can_be_filtered_by_when() {
    let source = "services:\n  - name: db\n    image: postgres\n    when:\n      event: tag\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    assert!(compile_ok(source).plans[0].services.is_empty());
}

#[test]
fn labels_workspace_and_name_reach_the_plan() {
    let source = "name: ci\nlabels:\n  os: linux\n  arch: arm64\nworkspace:\n  path: /src\nsteps:\n  - name: a\n    image: alpine\n    commands: [pwd]\n";
    let plan = compile_ok(source).plans[0].clone();
    assert_eq!(plan.name, "ci");
    assert_eq!(plan.labels["arch"], "arm64");
    assert_eq!(plan.workspace, "/src");
    assert_eq!(plan.steps[1].workdir, "/src");
    assert_eq!(plan.steps[1].environment["CI_WORKSPACE"], "/src");
}

#[test]
fn names_must_be_lowercase_and_simple() {
    for bad in ["Build", "a b", "-a", "a.b", "ü"] {
        let source =
            format!("steps:\n  - name: \"{bad}\"\n    image: alpine\n    commands: [\"true\"]\n");
        assert_eq!(names(&lint(&source)), ["invalid-name"], "{bad}");
    }
    let source =
        "stages: [Build]\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    assert!(names(&lint(source)).contains(&"invalid-name"));
}

#[test]
fn every_step_field_of_the_spec_is_accepted() {
    let source = "stages: [one]
volumes:
  - name: cache
    temp: {}
steps:
  - name: a
    image: alpine
    commands: [\"true\"]
    entrypoint: [/bin/sh]
    environment: {A: b}
    depends_on: []
    stage: one
    when: {event: push}
    failure: fail
    timeout: 1m
    retries: 1
    detach: false
    pull: if-not-exists
    privileged: false
    volumes: [{name: cache, path: /cache}]
    resources: {memory: 64MiB, cpus: 1}
  - name: p
    image: plugins/x
    stage: one
    settings: {a: b}
  - name: ok
    stage: one
    approval: {timeout: 1h}
";
    assert!(lint(source).is_empty(), "{:?}", lint(source));
}

#[test]
fn approval_steps_refuse_container_and_retry_fields() {
    for field in [
        "timeout: 1h",
        "retries: 1",
        "environment: {A: b}",
        "volumes: [\"c:/c\"]",
        "privileged: true",
        "resources: {memory: 1GiB}",
        "pull: always",
        "failure: ignore",
    ] {
        let source = format!("steps:\n  - name: ok\n    approval: true\n    {field}\n");
        let diagnostics = lint(&source);
        assert_eq!(names(&diagnostics), ["conflicting-fields"], "{field}");
        if field.starts_with("timeout") {
            let help = diagnostics[0].help.as_deref().unwrap_or("");
            assert!(help.contains("approval: {timeout"), "{help}");
        }
    }
}

#[test]
fn detached_steps_refuse_retries_and_timeout() {
    for field in ["retries: 2", "timeout: 10m"] {
        let source = format!(
            "steps:\n  - name: bg\n    image: alpine\n    detach: true\n    {field}\n    commands: [\"true\"]\n"
        );
        assert_eq!(names(&lint(&source)), ["conflicting-fields"], "{field}");
    }
}

#[test]
fn images_are_checked_after_substitution() {
    let image = |text: &str| {
        format!("steps:\n  - name: a\n    image: \"{text}\"\n    commands: [\"true\"]\n")
    };
    for bad in [
        "${CI_COMMIT_TAG}",
        "Alpine",
        "alpine 3",
        "team/../app",
        "alpine:",
    ] {
        let diagnostics = common::compile_err(&image(bad), &push_to_main());
        assert_eq!(names(&diagnostics), ["invalid-value"], "{bad}");
        assert!(diagnostics[0].message.starts_with("image"), "{bad}");
    }
    let ok = compile_ok(&image(
        "registry.example.com:5000/acme/app:${CI_BUILD_NUMBER}",
    ));
    assert_eq!(
        ok.plans[0].steps[1].image,
        "registry.example.com:5000/acme/app:42"
    );
}
