//! Step ordering: sequential, DAG, stages, the clone step, failure handlers, cycles.

mod common;

use common::{compile_err, compile_ok, compile_with, lint, names, push_to_main};
use gantry_pipeline::{CompileContext, Plan};

fn needs(plan: &Plan) -> Vec<(String, Vec<String>)> {
    plan.steps
        .iter()
        .map(|s| (s.name.clone(), s.needs.clone()))
        .collect()
}

fn pairs(expected: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    expected
        .iter()
        .map(|(n, d)| ((*n).to_owned(), d.iter().map(|s| (*s).to_owned()).collect()))
        .collect()
}

const THREE: &str = "steps:
  - name: a
    image: alpine
    commands: [\"true\"]
  - name: b
    image: alpine
    commands: [\"true\"]
  - name: c
    image: alpine
    commands: [\"true\"]
";

#[test]
fn without_depends_on_steps_run_one_after_another_after_the_clone() {
    let compiled = compile_ok(THREE);
    assert_eq!(
        needs(&compiled.plans[0]),
        pairs(&[
            ("clone", &[]),
            ("a", &["clone"]),
            ("b", &["a"]),
            ("c", &["b"])
        ])
    );
}

#[test]
fn the_clone_step_is_first_and_configured() {
    let compiled = compile_ok(&format!("clone:\n  depth: 5\n{THREE}"));
    let clone = &compiled.plans[0].steps[0];
    assert_eq!(clone.kind, gantry_pipeline::StepKind::Clone);
    assert_eq!(clone.image, "gantry/clone:latest");
    assert_eq!(clone.environment["PLUGIN_DEPTH"], "5");
    assert_eq!(clone.environment["CI_STEP_NAME"], "clone");
}

#[test]
fn clone_disabled_in_the_file_or_by_the_caller_leaves_no_clone_step() {
    let from_file = compile_ok(&format!("clone:\n  disable: true\n{THREE}"));
    let by_caller = compile_with(
        THREE,
        &CompileContext {
            clone: false,
            ..push_to_main()
        },
    );
    for compiled in [from_file, by_caller] {
        assert_eq!(
            needs(&compiled.plans[0]),
            pairs(&[("a", &[]), ("b", &["a"]), ("c", &["b"])])
        );
    }
}

#[test]
fn with_any_depends_on_the_file_is_a_dag() {
    let source = THREE.replace("  - name: c\n", "  - name: c\n    depends_on: [a]\n");
    let compiled = compile_ok(&source);
    assert_eq!(
        needs(&compiled.plans[0]),
        pairs(&[
            ("clone", &[]),
            ("a", &["clone"]),
            ("b", &["clone"]),
            ("c", &["a"])
        ])
    );
}

#[test]
fn a_step_may_depend_on_the_clone_step_explicitly() {
    let source = THREE.replace("  - name: c\n", "  - name: c\n    depends_on: [clone, b]\n");
    let compiled = compile_ok(&source);
    assert_eq!(compiled.plans[0].steps[3].needs, ["clone", "b"]);
}

#[test]
fn stages_add_needs_on_every_step_of_earlier_stages() {
    let source = "stages: [build, test, deploy]
steps:
  - name: compile
    stage: build
    image: alpine
    commands: [make]
  - name: docs
    stage: build
    image: alpine
    commands: [make docs]
  - name: unit
    stage: test
    image: alpine
    commands: [make test]
  - name: lint
    stage: test
    depends_on: [unit]
    image: alpine
    commands: [make lint]
  - name: ship
    stage: deploy
    image: alpine
    commands: [make ship]
";
    let compiled = compile_ok(source);
    assert_eq!(
        needs(&compiled.plans[0]),
        pairs(&[
            ("clone", &[]),
            ("compile", &["clone"]),
            ("docs", &["clone"]),
            ("unit", &["compile", "docs"]),
            ("lint", &["unit", "compile", "docs"]),
            ("ship", &["compile", "docs", "unit", "lint"]),
        ])
    );
}

#[test]
fn with_stages_every_step_needs_a_known_stage() {
    let source = "stages: [build]
steps:
  - name: a
    image: alpine
    commands: [make]
  - name: b
    stage: biuld
    image: alpine
    commands: [make]
";
    assert_eq!(names(&lint(source)), ["missing-field", "unknown-stage"]);
    let no_stages =
        "steps:\n  - name: a\n    stage: build\n    image: alpine\n    commands: [make]\n";
    assert_eq!(names(&lint(no_stages)), ["unknown-stage"]);
}

#[test]
fn a_failure_handler_without_depends_on_waits_for_every_other_step() {
    let source = "steps:
  - name: build
    image: alpine
    commands: [make]
  - name: notify
    image: plugins/slack
    when:
      status: [failure]
  - name: test
    image: alpine
    depends_on: [build]
    commands: [make test]
";
    let compiled = compile_ok(source);
    let notify = &compiled.plans[0].steps[2];
    assert_eq!(notify.name, "notify");
    assert_eq!(notify.needs, ["build", "test"]);
    assert!(notify.run_on.failure && !notify.run_on.success);
}

#[test]
fn cycles_are_reported_with_their_path() {
    let source = "steps:
  - name: a
    image: alpine
    depends_on: [b]
    commands: [\"true\"]
  - name: b
    image: alpine
    depends_on: [a]
    commands: [\"true\"]
  - name: c
    image: alpine
    depends_on: [c]
    commands: [\"true\"]
";
    let diagnostics = lint(source);
    let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        ["dependency cycle: a -> b -> a", "dependency cycle: c -> c"]
    );
    assert_eq!(diagnostics[0].path, "steps[1].depends_on[0]");
}

#[test]
fn unknown_dependencies_suggest_a_step_and_explain_services() {
    let source = "services:
  - name: db
    image: postgres
steps:
  - name: build
    image: alpine
    commands: [make]
  - name: test
    image: alpine
    depends_on: [biuld, db]
    commands: [make test]
";
    let diagnostics = lint(source);
    assert_eq!(
        names(&diagnostics),
        ["unknown-dependency", "unknown-dependency"]
    );
    assert_eq!(
        diagnostics[0].help.as_deref(),
        Some("did you mean `build`?")
    );
    assert!(
        diagnostics[1].message.contains("is a service"),
        "{}",
        diagnostics[1].message
    );
}

#[test]
fn depending_on_a_step_removed_by_its_when_is_an_error_for_that_build_only() {
    let source = "steps:
  - name: publish
    image: plugins/docker
    when:
      event: tag
  - name: deploy
    image: alpine
    depends_on: [publish]
    commands: [./deploy.sh]
";
    let diagnostics = compile_err(source, &push_to_main());
    assert_eq!(names(&diagnostics), ["filtered-dependency"]);
    assert!(
        diagnostics[0]
            .message
            .contains("event `push` does not match `tag`")
    );
    assert!(lint(source).is_empty(), "lint keeps every step");
    let tag = CompileContext {
        event: "tag".into(),
        tag: "v1".into(),
        ..push_to_main()
    };
    assert_eq!(compile_with(source, &tag).plans[0].steps.len(), 3);
}

#[test]
fn the_name_clone_is_reserved_while_the_clone_step_exists() {
    let source = "steps:\n  - name: clone\n    image: alpine/git\n    commands: [git clone x]\n";
    assert_eq!(names(&lint(source)), ["duplicate-step"]);
    let disabled = format!("clone:\n  disable: true\n{source}");
    assert!(lint(&disabled).is_empty());
}

#[test]
fn levels_show_parallel_branches() {
    let source = THREE.replace("  - name: c\n", "  - name: c\n    depends_on: [a, b]\n");
    let compiled = compile_ok(&source);
    assert_eq!(
        compiled.plans[0].levels(),
        vec![vec!["clone"], vec!["a", "b"], vec!["c"]]
    );
}

#[test]
fn a_cycle_made_by_stages_and_depends_on_is_reported() {
    let source = "stages: [build, test]
steps:
  - name: compile
    stage: build
    image: alpine
    depends_on: [check]
    commands: [\"true\"]
  - name: check
    stage: test
    image: alpine
    commands: [\"true\"]
";
    let diagnostics = lint(source);
    assert_eq!(names(&diagnostics), ["dependency-cycle"]);
    let message = &diagnostics[0].message;
    assert!(
        message.contains("compile") && message.contains("check"),
        "{message}"
    );
    assert_eq!(diagnostics[0].path, "steps[0].depends_on[0]");
    assert!(
        diagnostics[0]
            .help
            .as_deref()
            .unwrap_or("")
            .contains("later stage")
    );
}
