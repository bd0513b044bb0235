//! The environment of every step, `${VAR}` substitution, settings and secrets.

mod common;

use common::{compile_ok, compile_with, lint, names, push_to_main};
use gantry_pipeline::{CompileContext, SecretEnv, Step};

fn only_step(source: &str) -> Step {
    let compiled = compile_ok(source);
    compiled.plans[0].steps.last().expect("a step").clone()
}

#[test]
fn every_step_gets_the_ci_and_drone_environment() {
    let step = only_step("steps:\n  - name: build\n    image: alpine\n    commands: [make]\n");
    let env = &step.environment;
    for name in [
        "CI",
        "CI_REPO",
        "CI_REPO_URL",
        "CI_COMMIT_SHA",
        "CI_COMMIT_REF",
        "CI_COMMIT_BRANCH",
        "CI_COMMIT_TAG",
        "CI_COMMIT_MESSAGE",
        "CI_COMMIT_AUTHOR",
        "CI_BUILD_NUMBER",
        "CI_BUILD_EVENT",
        "CI_BUILD_LINK",
        "CI_PREV_BUILD_STATUS",
        "CI_PULL_REQUEST",
        "CI_DEPLOY_TARGET",
        "CI_STEP_NAME",
        "CI_WORKSPACE",
        "DRONE_REPO",
        "DRONE_COMMIT_SHA",
        "DRONE_BRANCH",
        "DRONE_BUILD_NUMBER",
        "DRONE_TAG",
        "DRONE_SOURCE_BRANCH",
        "DRONE_TARGET_BRANCH",
        "DRONE_COMMIT_LINK",
        "DRONE_REPO_LINK",
        "DRONE_COMMIT_AUTHOR",
        "DRONE_REPO_OWNER",
        "DRONE_REPO_NAME",
        "DRONE_BUILD_EVENT",
        "DRONE_BUILD_LINK",
        "DRONE_STEP_NAME",
        "DRONE_WORKSPACE",
        "DRONE_DEPLOY_TO",
    ] {
        assert!(env.contains_key(name), "{name} missing");
    }
    assert_eq!(env["CI"], "true");
    assert_eq!(env["CI_STEP_NAME"], "build");
    // The runtime sets the status when the step starts; a compile-time guess would lie.
    for name in [
        "CI_BUILD_STATUS",
        "DRONE_BUILD_STATUS",
        "CI_PIPELINE_STATUS",
    ] {
        assert!(!env.contains_key(name), "{name} is the runtime's");
    }
    assert_eq!(env["DRONE_SOURCE_BRANCH"], "main");
    assert!(!env.contains_key("DRONE_SEMVER"), "no tag, no semver");
    assert_eq!(env["CI_BUILD_NUMBER"], "42");
    assert_eq!(env["CI_WORKSPACE"], "/workspace");
    assert_eq!(step.workdir, "/workspace");
}

#[test]
fn substitution_reaches_image_commands_entrypoint_environment_and_settings() {
    let source = "steps:
  - name: build
    image: \"alpine:${CI_BUILD_NUMBER}\"
    entrypoint: [/bin/sh, \"-c\", \"echo ${CI_STEP_NAME}\"]
    environment:
      WHERE: \"${CI_REPO}@${CI_COMMIT_SHA:0:7}\"
    commands:
      - echo ${CI_COMMIT_BRANCH}
  - name: publish
    image: plugins/docker
    settings:
      tags: [\"${DRONE_BUILD_NUMBER}\", latest]
";
    let compiled = compile_ok(source);
    let build = &compiled.plans[0].steps[1];
    assert_eq!(build.image, "alpine:42");
    assert_eq!(
        build.entrypoint.as_deref(),
        Some(&["/bin/sh".to_string(), "-c".into(), "echo build".into()][..])
    );
    assert_eq!(build.environment["WHERE"], "acme/app@6f1c2a9");
    assert_eq!(build.commands, ["echo main"]);
    assert_eq!(
        compiled.plans[0].steps[2].environment["PLUGIN_TAGS"],
        "42,latest"
    );
}

#[test]
fn double_dollar_keeps_a_literal_dollar_for_the_shell() {
    let step = only_step(
        "steps:\n  - name: a\n    image: alpine\n    commands:\n      - echo $${HOME} $$PATH $USER\n",
    );
    assert_eq!(step.commands, ["echo ${HOME} $PATH $USER"]);
    assert!(step.script().contains("echo ${HOME} $PATH $USER\n"));
}

#[test]
fn step_environment_names_are_left_for_the_shell_in_commands() {
    let source = "steps:\n  - name: a\n    image: alpine\n    environment:\n      GREETING: hi\n      TOKEN:\n        from_secret: token\n    commands:\n      - echo ${GREETING} ${TOKEN}\n";
    assert_eq!(only_step(source).commands, ["echo ${GREETING} ${TOKEN}"]);
}

#[test]
fn unknown_variables_are_errors_everywhere_with_the_exact_column() {
    let source = "steps:\n  - name: a\n    image: \"alpine:${TAG}\"\n    environment:\n      X: \"a ${NOPE} b ${NOPE}\"\n    commands: [\"true\"]\n";
    let diagnostics = lint(source);
    assert_eq!(
        names(&diagnostics),
        ["unknown-variable", "unknown-variable", "unknown-variable"]
    );
    let positions: Vec<(u32, u32)> = diagnostics.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(positions, [(3, 20), (5, 13), (5, 23)]);
    assert_eq!(
        diagnostics[0].help.as_deref(),
        Some("to pass `${TAG}` to the shell, write `$${TAG}`")
    );
}

#[test]
fn unknown_variables_in_block_scalars_point_at_their_line() {
    let source = "steps:\n  - name: a\n    image: alpine\n    commands:\n      - |\n        echo one\n        echo ${MISSING}\n";
    let diagnostics = lint(source);
    assert_eq!((diagnostics[0].line, diagnostics[0].column), (7, 14));
}

#[test]
fn malformed_references_are_reported() {
    let diagnostics = lint("steps:\n  - name: a\n    image: alpine\n    commands: [\"echo ${\"]\n");
    assert_eq!(names(&diagnostics), ["invalid-value"]);
}

#[test]
fn settings_become_plugin_variables() {
    let source = "steps:
  - name: publish
    image: plugins/docker
    settings:
      repo: acme/app
      dry-run: true
      retries: 3
      version: 1.10
      tags: [latest, \"1.0\"]
      build_args:
        A: \"1\"
        B: [x, y]
      password:
        from_secret: registry_password
      empty: ~
";
    let step = only_step(source);
    let env = &step.environment;
    assert_eq!(step.kind, gantry_pipeline::StepKind::Plugin);
    assert_eq!(env["PLUGIN_REPO"], "acme/app");
    assert_eq!(env["PLUGIN_DRY_RUN"], "true");
    assert_eq!(env["PLUGIN_RETRIES"], "3");
    assert_eq!(env["PLUGIN_VERSION"], "1.10");
    assert_eq!(env["PLUGIN_TAGS"], "latest,1.0");
    assert_eq!(env["PLUGIN_BUILD_ARGS"], r#"{"A":"1","B":["x","y"]}"#);
    assert_eq!(env["PLUGIN_EMPTY"], "");
    assert!(!env.contains_key("PLUGIN_PASSWORD"));
    assert_eq!(
        step.secrets,
        [SecretEnv {
            env: "PLUGIN_PASSWORD".into(),
            secret: "registry_password".into()
        }]
    );
}

#[test]
fn from_secret_is_only_accepted_directly_under_a_setting() {
    let source = "steps:\n  - name: p\n    image: plugins/x\n    settings:\n      list:\n        - from_secret: nope\n";
    assert_eq!(names(&lint(source)), ["invalid-value"]);
}

#[test]
fn environment_secrets_pipeline_environment_and_overrides() {
    let source = "environment:
  SHARED: pipeline
  LEVEL: pipeline
steps:
  - name: a
    image: alpine
    environment:
      LEVEL: step
      TOKEN:
        from_secret: api_token
    commands: [\"true\"]
";
    let step = only_step(source);
    assert_eq!(step.environment["SHARED"], "pipeline");
    assert_eq!(step.environment["LEVEL"], "step");
    assert!(!step.environment.contains_key("TOKEN"));
    assert_eq!(
        step.secrets,
        [SecretEnv {
            env: "TOKEN".into(),
            secret: "api_token".into()
        }]
    );
}

#[test]
fn environment_also_accepts_a_list_of_name_value_pairs() {
    let step = only_step(
        "steps:\n  - name: a\n    image: alpine\n    environment: [\"A=1\", \"B=x=y\"]\n    commands: [\"true\"]\n",
    );
    assert_eq!(step.environment["A"], "1");
    assert_eq!(step.environment["B"], "x=y");
    let bad = lint(
        "steps:\n  - name: a\n    image: alpine\n    environment: [\"A\", \"1B=2\"]\n    commands: [\"true\"]\n",
    );
    assert_eq!(names(&bad), ["invalid-value", "invalid-name"]);
}

#[test]
fn unknown_secrets_are_reported_only_when_the_caller_knows_the_secrets() {
    let source = "steps:\n  - name: a\n    image: alpine\n    environment:\n      T:\n        from_secret: tokn\n    commands: [\"true\"]\n";
    assert!(lint(source).is_empty());
    let ctx = CompileContext {
        secrets: Some(["token".to_string()].into()),
        ..push_to_main()
    };
    let diagnostics = common::compile_err(source, &ctx);
    assert_eq!(names(&diagnostics), ["unknown-secret"]);
    assert_eq!(
        diagnostics[0].help.as_deref(),
        Some("did you mean `token`?")
    );
    let ok = CompileContext {
        secrets: Some(["tokn".to_string()].into()),
        ..push_to_main()
    };
    assert_eq!(compile_with(source, &ok).plans[0].secret_names(), ["tokn"]);
}

#[test]
fn drone_event_names_follow_drone() {
    let ctx = CompileContext {
        event: "manual".into(),
        ..push_to_main()
    };
    let step = compile_with(
        "steps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n",
        &ctx,
    )
    .plans[0]
        .steps[1]
        .clone();
    assert_eq!(step.environment["CI_BUILD_EVENT"], "manual");
    assert_eq!(step.environment["DRONE_BUILD_EVENT"], "custom");
}

#[test]
fn build_status_names_are_left_to_the_runtime() {
    let step = only_step(
        "steps:\n  - name: a\n    image: alpine\n    commands:\n      - echo ${CI_BUILD_STATUS} ${DRONE_BUILD_STATUS} ${CI_PIPELINE_STATUS:-x}\n",
    );
    assert_eq!(
        step.commands,
        ["echo ${CI_BUILD_STATUS} ${DRONE_BUILD_STATUS} ${CI_PIPELINE_STATUS:-x}"]
    );
    for place in [
        "    image: \"alpine:${CI_BUILD_STATUS}\"\n    commands: [\"true\"]\n",
        "    image: alpine\n    environment:\n      S: \"${DRONE_BUILD_STATUS}\"\n    commands: [\"true\"]\n",
        "    image: plugins/slack\n    settings:\n      text: \"${CI_PIPELINE_STATUS}\"\n",
    ] {
        let source = format!("steps:\n  - name: a\n{place}");
        let diagnostics = lint(&source);
        assert_eq!(names(&diagnostics), ["unknown-variable"], "{place}");
        assert!(
            diagnostics[0].message.contains("only known at run time"),
            "{}",
            diagnostics[0].message
        );
    }
}

#[test]
fn nested_defaults_substitute() {
    let step = only_step(
        "steps:\n  - name: a\n    image: alpine\n    commands:\n      - echo ${NOPE:-${CI_BUILD_NUMBER}} ${NOPE:-${ALSO:-none}}\n",
    );
    assert_eq!(step.commands, ["echo 42 none"]);
    let bad =
        "steps:\n  - name: a\n    image: alpine\n    commands:\n      - echo ${NOPE:-${ALSO}}\n";
    assert_eq!(names(&lint(bad)), ["unknown-variable"]);
}

#[test]
fn settings_that_become_the_same_variable_are_reported() {
    for (a, b) in [("foo-bar", "foo_bar"), ("Foo", "foo")] {
        let source = format!(
            "steps:\n  - name: p\n    image: plugins/x\n    settings:\n      {a}: 1\n      {b}: 2\n"
        );
        let diagnostics = lint(&source);
        assert_eq!(names(&diagnostics), ["duplicate-key"], "{a} {b}");
        assert!(diagnostics[0].message.contains("PLUGIN_FOO"));
    }
    let list = "steps:\n  - name: a\n    image: alpine\n    environment:\n      - A=1\n      - A=2\n    commands: [\"true\"]\n";
    assert_eq!(names(&lint(list)), ["duplicate-key"]);
}

#[test]
fn extra_variables_are_substituted_and_win_over_the_file() {
    let source = "environment:\n  MODE: file\nsteps:\n  - name: a\n    image: alpine\n    commands:\n      - echo ${MODE} ${TARGET}\n";
    let ctx = CompileContext {
        extra_env: [
            ("TARGET".to_string(), "arm64".to_string()),
            ("MODE".to_string(), "cli".to_string()),
        ]
        .into(),
        ..push_to_main()
    };
    let step = compile_with(source, &ctx).plans[0].steps[1].clone();
    assert_eq!(step.environment["TARGET"], "arm64");
    assert_eq!(step.environment["MODE"], "cli");
    // `MODE` is the step's own variable: the shell expands it; `TARGET` is substituted.
    assert_eq!(step.commands, ["echo ${MODE} arm64"]);
}

#[test]
fn drone_semver_names_only_for_semver_tags() {
    let tag = |name: &str| CompileContext {
        event: "tag".into(),
        tag: name.into(),
        git_ref: format!("refs/tags/{name}"),
        ..push_to_main()
    };
    let source = "steps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";
    let env = compile_with(source, &tag("v1.4.2")).plans[0].steps[1]
        .environment
        .clone();
    assert_eq!(env["DRONE_SEMVER"], "1.4.2");
    assert_eq!(env["DRONE_SEMVER_MINOR"], "4");
    let env = compile_with(source, &tag("nightly")).plans[0].steps[1]
        .environment
        .clone();
    assert!(env.keys().all(|k| !k.starts_with("DRONE_SEMVER")));
}
