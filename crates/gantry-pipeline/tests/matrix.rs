//! `matrix:`: one plan per combination, with its variables in the environment.

mod common;

use std::collections::BTreeMap;

use common::{compile_ok, lint, names};

#[test]
fn one_plan_per_combination_with_variables_substituted() {
    let source = "matrix:
  GO: [\"1.22\", \"1.23\"]
  OS: [linux, windows]
  exclude:
    - GO: \"1.22\"
      OS: windows
steps:
  - name: test
    image: golang:${GO}
    commands: [\"GOOS=${OS} go test ./...\"]
";
    let compiled = compile_ok(source);
    let combos: Vec<&BTreeMap<String, String>> = compiled.plans.iter().map(|p| &p.matrix).collect();
    assert_eq!(combos.len(), 3);
    assert_eq!(
        combos[0],
        &BTreeMap::from([("GO".into(), "1.22".into()), ("OS".into(), "linux".into())])
    );
    let images: Vec<&str> = compiled
        .plans
        .iter()
        .map(|p| p.steps[1].image.as_str())
        .collect();
    assert_eq!(images, ["golang:1.22", "golang:1.23", "golang:1.23"]);
    assert_eq!(
        compiled.plans[2].steps[1].commands,
        ["GOOS=windows go test ./..."]
    );
    assert_eq!(compiled.plans[2].steps[1].environment["OS"], "windows");
    assert_eq!(
        compiled.plans[2].steps[1].environment["CI_MATRIX"],
        "GO=1.23 OS=windows"
    );
}

#[test]
fn numbers_keep_their_spelling() {
    let source = "matrix:\n  GO: [1.20, 1.21]\nsteps:\n  - name: t\n    image: golang:${GO}\n    commands: [go test]\n";
    let images: Vec<String> = compile_ok(source)
        .plans
        .iter()
        .map(|p| p.steps[1].image.clone())
        .collect();
    assert_eq!(images, ["golang:1.20", "golang:1.21"]);
}

#[test]
fn include_alone_lists_the_combinations() {
    let source = "matrix:\n  include:\n    - {DB: postgres, VERSION: \"16\"}\n    - {DB: mysql, VERSION: \"8\"}\nsteps:\n  - name: t\n    image: ${DB}:${VERSION}\n    commands: [\"true\"]\n";
    let images: Vec<String> = compile_ok(source)
        .plans
        .iter()
        .map(|p| p.steps[1].image.clone())
        .collect();
    assert_eq!(images, ["postgres:16", "mysql:8"]);
}

#[test]
fn matrix_mistakes_are_reported() {
    let source = "matrix:
  CI_X: [a]
  bad-name: [a]
  EMPTY: []
  RUST: [stable]
  exclude:
    - RUTS: stable
steps:
  - name: t
    image: rust:${RUST}
    commands: [\"true\"]
";
    assert_eq!(
        names(&lint(source)),
        [
            "reserved-env",
            "invalid-name",
            "invalid-matrix",
            "invalid-matrix"
        ]
    );
    let diagnostics = lint(source);
    assert_eq!(diagnostics[3].help.as_deref(), Some("did you mean `RUST`?"));
}

#[test]
fn too_many_combinations_are_refused() {
    let values = (0..20)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let source = format!(
        "matrix:\n  A: [{values}]\n  B: [{values}]\nsteps:\n  - name: t\n    image: alpine\n    commands: [\"true\"]\n"
    );
    assert_eq!(names(&lint(&source)), ["invalid-matrix"]);
}

#[test]
fn a_diagnostic_inside_a_matrix_is_reported_once() {
    let source = "matrix:\n  A: [x, y, z]\nsteps:\n  - name: t\n    image: alpine\n    commands: [\"echo ${NOPE}\"]\n";
    assert_eq!(names(&lint(source)), ["unknown-variable"]);
}
