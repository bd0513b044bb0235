//! `when` at pipeline and step level: keys, globs, include/exclude, OR of maps, status.

mod common;

use common::{compile_with, lint, names, push_to_main};
use gantry_pipeline::{CompileContext, RunOn};

fn steps_for(source: &str, ctx: &CompileContext) -> Vec<String> {
    let compiled = compile_with(source, ctx);
    compiled
        .plans
        .iter()
        .flat_map(|p| p.steps.iter().map(|s| s.name.clone()))
        .collect()
}

fn step_with_when(when: &str) -> String {
    format!(
        "steps:\n  - name: always\n    image: alpine\n    commands: [\"true\"]\n  - name: guarded\n    image: alpine\n    commands: [\"true\"]\n    when:\n{when}"
    )
}

fn runs(when: &str, ctx: &CompileContext) -> bool {
    steps_for(&step_with_when(when), ctx).contains(&"guarded".to_string())
}

fn ctx_with(change: impl FnOnce(&mut CompileContext)) -> CompileContext {
    let mut ctx = push_to_main();
    change(&mut ctx);
    ctx
}

#[test]
fn event_and_branch_must_both_match() {
    let when = "      event: push\n      branch: main\n";
    assert!(runs(when, &push_to_main()));
    assert!(!runs(when, &ctx_with(|c| c.branch = "dev".into())));
    assert!(!runs(when, &ctx_with(|c| c.event = "pull_request".into())));
}

#[test]
fn branch_globs_match_within_one_segment() {
    let when = "      branch: [main, \"release/*\"]\n";
    assert!(runs(when, &ctx_with(|c| c.branch = "release/1.0".into())));
    assert!(!runs(
        when,
        &ctx_with(|c| c.branch = "release/1.0/hotfix".into())
    ));
    assert!(runs(
        "      branch: \"feature/**\"\n",
        &ctx_with(|c| c.branch = "feature/a/b".into())
    ));
}

#[test]
fn include_and_exclude_forms() {
    let when = "      branch:\n        include: [\"*\"]\n        exclude: [main]\n";
    assert!(!runs(when, &push_to_main()));
    assert!(runs(when, &ctx_with(|c| c.branch = "dev".into())));
    let exclude_only = "      event:\n        exclude: [pull_request]\n";
    assert!(runs(exclude_only, &push_to_main()));
    assert!(!runs(
        exclude_only,
        &ctx_with(|c| c.event = "pull_request".into())
    ));
}

#[test]
fn a_list_of_maps_runs_when_any_map_matches() {
    let when = "      - event: tag\n      - branch: main\n        event: push\n";
    assert!(runs(when, &push_to_main()));
    assert!(runs(
        when,
        &ctx_with(|c| {
            c.event = "tag".into();
            c.branch = String::new();
        })
    ));
    assert!(!runs(when, &ctx_with(|c| c.event = "cron".into())));
}

#[test]
fn ref_tag_target_cron_and_repo_conditions() {
    assert!(runs("      ref: \"refs/heads/*\"\n", &push_to_main()));
    assert!(!runs("      ref: \"refs/tags/*\"\n", &push_to_main()));
    let tag = ctx_with(|c| {
        c.event = "tag".into();
        c.tag = "v1.2.0".into();
    });
    assert!(runs("      tag: \"v1.*\"\n", &tag));
    assert!(!runs("      tag: \"v2.*\"\n", &tag));
    let promote = ctx_with(|c| {
        c.event = "promote".into();
        c.deploy_target = "production".into();
    });
    assert!(runs("      target: production\n", &promote));
    assert!(!runs("      target: staging\n", &promote));
    let cron = ctx_with(|c| {
        c.event = "cron".into();
        c.cron = "nightly".into();
    });
    assert!(runs("      cron: nightly\n", &cron));
    assert!(!runs("      cron: hourly\n", &cron));
    assert!(runs("      repo: \"acme/*\"\n", &push_to_main()));
    assert!(!runs("      repo: \"other/*\"\n", &push_to_main()));
}

#[test]
fn path_conditions_look_at_changed_files() {
    let when =
        "      path:\n        include: [\"services/api/**\"]\n        exclude: [\"**/*.md\"]\n";
    let changed = |files: &[&str]| {
        ctx_with(|c| c.changed_files = Some(files.iter().map(|f| (*f).to_owned()).collect()))
    };
    assert!(runs(when, &changed(&["services/api/main.go"])));
    assert!(!runs(when, &changed(&["services/api/README.md"])));
    assert!(!runs(when, &changed(&["services/web/main.go"])));
    assert!(
        runs(when, &changed(&[])),
        "an empty list is unknown changes, which match"
    );
    assert!(
        runs(when, &ctx_with(|c| c.changed_files = None)),
        "unknown changes match"
    );
    assert!(runs("      paths: [\"*.go\"]\n", &changed(&["main.go"])));
}

#[test]
fn a_pipeline_whose_when_does_not_match_is_skipped_with_a_reason() {
    let source =
        "when:\n  event: tag\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    let compiled = compile_with(source, &push_to_main());
    assert!(compiled.plans.is_empty());
    assert_eq!(compiled.skipped[0].name, "default");
    assert_eq!(
        compiled.skipped[0].reason,
        "event `push` does not match `tag`"
    );
    let either = "when:\n  - event: tag\n  - branch: dev\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    let compiled = compile_with(either, &push_to_main());
    assert_eq!(
        compiled.skipped[0].reason,
        "none of its 2 `when` conditions match (event `push` does not match `tag`; branch `main` does not match `dev`)"
    );
}

#[test]
fn status_becomes_run_on_and_defaults_to_success() {
    let source = "steps:
  - name: plain
    image: alpine
    commands: [\"true\"]
  - name: on-failure
    image: alpine
    commands: [\"true\"]
    when:
      status: failure
  - name: always
    image: alpine
    commands: [\"true\"]
    when:
      status: [success, failure]
";
    let compiled = compile_with(source, &push_to_main());
    let run_on: Vec<RunOn> = compiled.plans[0].steps[1..]
        .iter()
        .map(|s| s.run_on)
        .collect();
    assert_eq!(
        run_on,
        [
            RunOn {
                success: true,
                failure: false
            },
            RunOn {
                success: false,
                failure: true
            },
            RunOn {
                success: true,
                failure: true
            },
        ]
    );
}

#[test]
fn status_is_refused_at_pipeline_level_and_values_are_checked() {
    let source = "when:\n  status: failure\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n    when:\n      status: [sucess]\n      event: [pull-request]\n";
    let diagnostics = lint(source);
    assert_eq!(
        names(&diagnostics),
        ["unknown-field", "invalid-value", "invalid-value"]
    );
    assert_eq!(
        diagnostics[1].help.as_deref(),
        Some("did you mean `success`?")
    );
    assert_eq!(
        diagnostics[2].help.as_deref(),
        Some("did you mean `pull_request`?")
    );
}

#[test]
fn unknown_condition_keys_get_a_suggestion() {
    let diagnostics = lint(&step_with_when("      brnach: main\n"));
    assert_eq!(names(&diagnostics), ["unknown-field"]);
    assert_eq!(
        diagnostics[0].help.as_deref(),
        Some("did you mean `branch`?")
    );
}

#[test]
fn lint_keeps_every_step_and_pipeline() {
    let source = "when:\n  event: tag\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n    when:\n      branch: nowhere\n  - name: b\n    image: alpine\n    depends_on: [a]\n    commands: [\"echo ${NOPE}\"]\n";
    // The unknown variable in `b` is found although nothing here runs for a push.
    assert_eq!(names(&lint(source)), ["unknown-variable"]);
}

#[test]
fn a_skipped_pipeline_is_still_checked() {
    let source = "when:\n  event: tag\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"echo ${NOPE}\"]\n";
    let diagnostics = common::compile_err(source, &push_to_main());
    assert_eq!(names(&diagnostics), ["unknown-variable"]);
}

#[test]
fn empty_when_and_empty_status_are_errors() {
    let empty_when =
        "steps:\n  - name: a\n    image: alpine\n    when: []\n    commands: [\"true\"]\n";
    assert_eq!(names(&lint(empty_when)), ["invalid-value"]);
    let pipeline_when =
        "when: []\nsteps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    assert_eq!(names(&lint(pipeline_when)), ["invalid-value"]);
    let empty_status = step_with_when("      status: []\n");
    assert_eq!(names(&lint(&empty_status)), ["invalid-value"]);
}

#[test]
fn skipped_pipelines_are_not_checked_against_this_builds_secrets() {
    let source = "name: ci
steps:
  - name: a
    image: alpine
    commands: [\"true\"]
---
name: release
when:
  event: tag
steps:
  - name: publish
    image: plugins/docker
    settings:
      password:
        from_secret: registry_password
";
    let ctx = ctx_with(|c| c.secrets = Some(Default::default()));
    let compiled = compile_with(source, &ctx);
    assert_eq!(compiled.skipped[0].name, "release");
    let tag = ctx_with(|c| {
        c.event = "tag".into();
        c.tag = "v1".into();
        c.secrets = Some(Default::default());
    });
    assert_eq!(
        names(&common::compile_err(source, &tag)),
        ["unknown-secret"]
    );
}
