//! Every diagnostic code: a small bad input, and a snapshot of how it renders (header,
//! source line, caret under the column, help).

mod common;

use gantry_pipeline::{Code, CompileContext, Diagnostic};

/// How a case is checked.
enum Mode {
    Lint,
    Compile(Box<CompileContext>),
}

struct Case {
    code: Code,
    file: &'static str,
    source: String,
    mode: Mode,
}

fn lint(code: Code, source: &str) -> Case {
    Case {
        code,
        file: ".pipeline.yml",
        source: source.to_owned(),
        mode: Mode::Lint,
    }
}

fn compile(code: Code, source: &str, ctx: CompileContext) -> Case {
    Case {
        code,
        file: ".pipeline.yml",
        source: source.to_owned(),
        mode: Mode::Compile(Box::new(ctx)),
    }
}

fn drone(code: Code, source: &str) -> Case {
    Case {
        code,
        file: ".drone.yml",
        source: source.to_owned(),
        mode: Mode::Lint,
    }
}

const STEP: &str = "steps:\n  - name: build\n    image: alpine:3.20\n";

fn alias_bomb() -> String {
    let mut source = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        source.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    source + STEP
}

fn too_many_steps() -> String {
    let mut source = String::from("steps:\n");
    for i in 0..1001 {
        source.push_str(&format!(
            "  - name: s{i}\n    image: alpine\n    commands: [\"true\"]\n"
        ));
    }
    source
}

fn too_many_env_entries() -> String {
    let mut source = String::from(
        "steps:\n  - name: build\n    image: alpine\n    commands: [make]\n    environment:\n",
    );
    for i in 0..1001 {
        source.push_str(&format!("      V{i}: x\n"));
    }
    source
}

fn cases() -> Vec<Case> {
    vec![
        lint(
            Code::YamlSyntax,
            "steps:\n  - name: build\n    image: alpine\n    commands: [echo ${CI_REPO}]\n",
        ),
        lint(
            Code::FileTooLarge,
            &format!("# {}\n{STEP}", "x".repeat(2 << 20)),
        ),
        lint(Code::AliasBomb, &alias_bomb()),
        lint(
            Code::TooDeep,
            &format!("x: {}{}\n{STEP}", "[".repeat(40), "]".repeat(40)),
        ),
        lint(
            Code::DuplicateKey,
            "steps:\n  - name: build\n    image: alpine\n    image: debian\n    commands: [make]\n",
        ),
        lint(
            Code::UnknownField,
            "steps:\n  - name: build\n    image: alpine\n    comands: [make]\n",
        ),
        lint(
            Code::MissingField,
            "steps:\n  - name: build\n    commands: [make]\n",
        ),
        lint(
            Code::InvalidType,
            "steps:\n  - name: build\n    image: alpine\n    commands: {make: all}\n",
        ),
        lint(
            Code::InvalidValue,
            "steps:\n  - name: build\n    image: alpine\n    commands: [make]\n    when:\n      event: pushh\n",
        ),
        lint(
            Code::DuplicateStep,
            "steps:\n  - name: build\n    image: alpine\n    commands: [make]\n  - name: build\n    image: alpine\n    commands: [make test]\n",
        ),
        lint(
            Code::UnknownDependency,
            "steps:\n  - name: build\n    image: alpine\n    commands: [make]\n  - name: test\n    image: alpine\n    depends_on: [biuld]\n    commands: [make test]\n",
        ),
        lint(
            Code::DependencyCycle,
            "steps:\n  - name: a\n    image: alpine\n    depends_on: [c]\n    commands: [\"true\"]\n  - name: b\n    image: alpine\n    depends_on: [a]\n    commands: [\"true\"]\n  - name: c\n    image: alpine\n    depends_on: [b]\n    commands: [\"true\"]\n",
        ),
        compile(
            Code::FilteredDependency,
            "steps:\n  - name: publish\n    image: plugins/docker\n    when:\n      event: push\n  - name: deploy\n    image: alpine\n    depends_on: [publish]\n    commands: [./deploy.sh]\n",
            CompileContext {
                event: "pull_request".into(),
                ..common::push_to_main()
            },
        ),
        lint(
            Code::InvalidName,
            "steps:\n  - name: Build Image\n    image: alpine\n    commands: [make]\n",
        ),
        lint(
            Code::UnknownVariable,
            "steps:\n  - name: build\n    image: alpine\n    commands:\n      - echo \"commit ${CI_COMIT_SHA} of ${CI_REPO}\"\n",
        ),
        lint(
            Code::InvalidDuration,
            "steps:\n  - name: build\n    image: alpine\n    commands: [make]\n    timeout: 10 minutes\n",
        ),
        lint(
            Code::UntrustedPrivileged,
            "steps:\n  - name: build\n    image: docker:dind\n    privileged: true\n    commands: [dockerd]\n",
        ),
        lint(
            Code::UntrustedVolume,
            "steps:\n  - name: build\n    image: docker:27\n    volumes:\n      - /var/run/docker.sock:/var/run/docker.sock\n    commands: [docker ps]\n",
        ),
        lint(
            Code::ReservedEnv,
            "steps:\n  - name: build\n    image: alpine\n    environment:\n      PATH: /tmp/evil\n    commands: [make]\n",
        ),
        lint(Code::TooManySteps, &too_many_steps()),
        compile(
            Code::UnknownSecret,
            "steps:\n  - name: build\n    image: alpine\n    environment:\n      TOKEN:\n        from_secret: api_tokn\n    commands: [make]\n",
            CompileContext {
                secrets: Some(["api_token".to_string()].into()),
                ..common::push_to_main()
            },
        ),
        lint(
            Code::UnknownStage,
            "stages: [build, test]\nsteps:\n  - name: unit\n    stage: tets\n    image: alpine\n    commands: [make test]\n",
        ),
        lint(
            Code::InvalidPath,
            &format!("workspace:\n  path: src/app\n{STEP}    commands: [make]\n"),
        ),
        lint(
            Code::UnknownVolume,
            "volumes:\n  - name: cache\n    temp: {}\nsteps:\n  - name: build\n    image: alpine\n    volumes:\n      - name: cahce\n        path: /cache\n    commands: [make]\n",
        ),
        drone(
            Code::UnsupportedPipeline,
            "kind: pipeline\ntype: exec\nname: default\nsteps:\n  - name: build\n    commands: [make]\n",
        ),
        lint(Code::NoSteps, "steps: []\n"),
        lint(
            Code::InvalidGlob,
            "when:\n  branch: \"release/[\"\nsteps:\n  - name: build\n    image: alpine\n    commands: [make]\n",
        ),
        lint(
            Code::InvalidMatrix,
            "matrix:\n  RUST: []\nsteps:\n  - name: build\n    image: rust\n    commands: [cargo build]\n",
        ),
        lint(
            Code::ConflictingFields,
            "steps:\n  - name: approve\n    image: alpine\n    approval:\n      timeout: 1h\n",
        ),
        lint(
            Code::InvalidSize,
            "steps:\n  - name: build\n    image: alpine\n    commands: [make]\n    resources:\n      memory: lots\n",
        ),
        lint(
            Code::DuplicatePipeline,
            "name: ci\nsteps:\n  - name: a\n    image: alpine\n    commands: [make]\n---\nname: ci\nsteps:\n  - name: b\n    image: alpine\n    commands: [make]\n",
        ),
        compile(
            Code::InvalidContext,
            "steps:\n  - name: build\n    image: alpine\n    commands: [make]\n",
            CompileContext {
                event: "pushh".into(),
                ..common::push_to_main()
            },
        ),
        lint(Code::TooManyEntries, &too_many_env_entries()),
        lint(
            Code::PrivateRegistry,
            "steps:\n  - name: build\n    image: localhost:5000/team/app:1.2\n    commands: [make]\n",
        ),
        drone(
            Code::IgnoredField,
            "kind: pipeline\ntype: docker\nname: default\nconcurrency:\n  limit: 1\nsteps:\n  - name: build\n    image: alpine\n    commands: [make]\n",
        ),
    ]
}

fn diagnostics_of(case: &Case) -> Vec<Diagnostic> {
    match &case.mode {
        Mode::Lint => common::lint_file(case.file, &case.source),
        Mode::Compile(ctx) => match common::compile_file(case.file, &case.source, ctx) {
            Ok(compiled) => compiled.warnings,
            Err(diagnostics) => diagnostics,
        },
    }
}

#[test]
fn every_code_has_a_case() {
    let cases = cases();
    for code in Code::ALL {
        assert!(
            cases.iter().any(|c| c.code == *code),
            "no case for {} {}",
            code.id(),
            code.name()
        );
    }
}

#[test]
fn every_case_reports_its_code_and_renders_with_a_caret() {
    for case in cases() {
        let diagnostics = diagnostics_of(&case);
        assert!(
            diagnostics.iter().any(|d| d.code == case.code),
            "{} not reported; got:\n{}",
            case.code.name(),
            common::render(&diagnostics, &case.source)
        );
        let rendered = common::render(&diagnostics, &case.source);
        insta::assert_snapshot!(format!("{}_{}", case.code.id(), case.code.name()), rendered);
    }
}

#[test]
fn unknown_variable_caret_points_inside_the_string() {
    let source = "steps:\n  - name: build\n    image: alpine\n    commands:\n      - echo \"commit ${CI_COMIT_SHA}\"\n";
    let diagnostics = common::lint(source);
    let d = diagnostics
        .iter()
        .find(|d| d.code == Code::UnknownVariable)
        .expect("reported");
    assert_eq!((d.line, d.column), (5, 22));
    assert_eq!(d.path, "steps[0].commands[0]");
    assert_eq!(d.help.as_deref(), Some("did you mean `CI_COMMIT_SHA`?"));
}

#[test]
fn diagnostics_serialize_to_json_with_stable_codes() {
    let diagnostics =
        common::lint("steps:\n  - name: build\n    image: alpine\n    comands: [make]\n");
    let json = serde_json::to_value(&diagnostics[0]).expect("serializes");
    assert_eq!(json["code"], "E006");
    assert_eq!(json["severity"], "error");
    assert_eq!(json["line"], 4);
    assert_eq!(json["column"], 5);
    assert_eq!(json["path"], "steps[0].comands");
    assert_eq!(json["help"], "did you mean `commands`?");
    let back: Diagnostic = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, diagnostics[0]);
}

#[test]
fn every_problem_is_reported_at_once_in_position_order() {
    let source = "steps:\n  - name: Build\n    image: alpine\n    comands: [make]\n  - name: test\n    depends_on: [nope]\n    timeout: forever\n";
    let diagnostics = common::lint(source);
    let names = common::names(&diagnostics);
    for expected in [
        "invalid-name",
        "unknown-field",
        "missing-field",
        "invalid-duration",
        "unknown-dependency",
    ] {
        assert!(names.contains(&expected), "{expected} missing in {names:?}");
    }
    let positions: Vec<(u32, u32)> = diagnostics.iter().map(|d| (d.line, d.column)).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted);
}
