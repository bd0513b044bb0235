//! Hostile and broken input: limits are enforced with a diagnostic, nothing panics.

mod common;

use common::{lint, names};

#[test]
fn an_alias_bomb_is_refused() {
    let mut source = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        source.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    source.push_str("steps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n");
    assert_eq!(names(&lint(&source)), ["alias-bomb"]);
}

#[test]
fn a_two_mib_file_is_refused_before_parsing() {
    let source = format!(
        "steps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n# {}\n",
        "x".repeat(2 << 20)
    );
    let diagnostics = lint(&source);
    assert_eq!(names(&diagnostics), ["file-too-large"]);
    assert_eq!((diagnostics[0].line, diagnostics[0].column), (0, 0));
}

#[test]
fn more_than_a_thousand_steps_are_refused() {
    let mut source = String::from("steps:\n");
    for i in 0..1001 {
        source.push_str(&format!(
            "  - name: s{i}\n    image: alpine\n    commands: [\"true\"]\n"
        ));
    }
    assert_eq!(names(&lint(&source)), ["too-many-steps"]);
    let thousand = source.split("  - name: s1000").next().unwrap_or_default();
    assert!(lint(thousand).is_empty());
}

#[test]
fn deep_nesting_is_refused() {
    let mut source =
        String::from("steps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\nx:\n");
    for depth in 1..60 {
        source.push_str(&format!("{}k:\n", "  ".repeat(depth)));
    }
    assert!(names(&lint(&source)).contains(&"too-deep"));
}

#[test]
fn anchors_aliases_and_merge_keys_work() {
    let source = "x-defaults: &defaults
  image: alpine:3.20
  environment:
    A: \"1\"
steps:
  - <<: *defaults
    name: a
    commands: [\"true\"]
  - <<: *defaults
    name: b
    image: debian:12
    commands: [\"true\"]
";
    // Top-level `x-` keys hold anchors and are otherwise ignored.
    let compiled = common::compile_ok(source);
    let images: Vec<&str> = compiled.plans[0]
        .steps
        .iter()
        .skip(1)
        .map(|s| s.image.as_str())
        .collect();
    assert_eq!(images, ["alpine:3.20", "debian:12"]);
    assert_eq!(compiled.plans[0].steps[2].environment["A"], "1");
    let inline = "steps:
  - &base
    name: a
    image: alpine:3.20
    commands: [\"true\"]
  - <<: *base
    name: b
    image: debian:12
";
    let compiled = common::compile_ok(inline);
    let images: Vec<&str> = compiled.plans[0]
        .steps
        .iter()
        .skip(1)
        .map(|s| s.image.as_str())
        .collect();
    assert_eq!(images, ["alpine:3.20", "debian:12"]);
    assert_eq!(compiled.plans[0].steps[2].commands, ["true"]);
}

#[test]
fn odd_documents_get_diagnostics_not_panics() {
    for source in [
        "",
        "---\n",
        "[]",
        "42",
        "steps: 5",
        "steps: [5]",
        "steps:\n  - ~\n",
        "? [a]\n: b\n",
        "steps:\n  - name: [a]\n",
        "\u{feff}steps: []",
        "steps:\n\t- name: a\n",
        "!!binary aGVsbG8=",
        "steps:\n  - name: a\n    image: alpine\n    commands: [\"${}\", \"${A:-}\", \"$\", \"${#}\"]\n",
    ] {
        let diagnostics = lint(source);
        assert!(
            !diagnostics.is_empty(),
            "{source:?} should have a diagnostic"
        );
        let _ = common::render(&diagnostics, source);
    }
}

#[test]
fn truncating_the_examples_anywhere_never_panics() {
    for (name, path) in common::example_files() {
        let source = std::fs::read_to_string(&path).expect("readable");
        let mut cut = 0;
        while cut < source.len() {
            if source.is_char_boundary(cut) {
                let prefix = &source[..cut];
                let diagnostics = common::lint_file(&name, prefix);
                let _ = common::render(&diagnostics, prefix);
            }
            cut += 7;
        }
    }
}
