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

const STEP: &str = "steps:\n  - name: a\n    image: alpine\n    commands: [\"true\"]\n";

#[test]
fn more_than_64_documents_are_refused() {
    let source = (0..65)
        .map(|i| format!("---\nname: p{i}\n{STEP}"))
        .collect::<String>();
    assert_eq!(names(&lint(&source)), ["too-many-entries"]);
}

#[test]
fn a_matrix_that_multiplies_past_10000_steps_is_refused() {
    let values: Vec<String> = (0..256).map(|i| format!("v{i}")).collect();
    let mut source = format!("matrix:\n  V: [{}]\nsteps:\n", values.join(", "));
    for i in 0..50 {
        source.push_str(&format!(
            "  - name: s{i}\n    image: alpine\n    commands: [\"true\"]\n"
        ));
    }
    assert_eq!(names(&lint(&source)), ["too-many-steps"]);
    let compiled = common::compile_file(".pipeline.yml", &source, &common::push_to_main());
    assert_eq!(
        names(&compiled.expect_err("too many steps")),
        ["too-many-steps"]
    );
}

#[test]
fn maps_with_more_than_1000_entries_are_refused() {
    for (key, form) in [
        ("environment", "      V{i}: x\n"),
        ("environment", "      - V{i}=x\n"),
        ("settings", "      s{i}: x\n"),
    ] {
        let entries: String = (0..1001)
            .map(|i| form.replace("{i}", &i.to_string()))
            .collect();
        let body = if key == "settings" {
            "    image: plugins/x\n".to_string()
        } else {
            "    image: alpine\n    commands: [\"true\"]\n".to_string()
        };
        let source = format!("steps:\n  - name: a\n{body}    {key}:\n{entries}");
        assert_eq!(names(&lint(&source)), ["too-many-entries"], "{key} {form}");
    }
    let labels: String = (0..5000).map(|i| format!("  l{i}: x\n")).collect();
    assert_eq!(
        names(&lint(&format!("labels:\n{labels}{STEP}"))),
        ["too-many-entries"]
    );
}

#[test]
fn many_failure_handlers_and_long_unknown_words_are_handled() {
    let mut source = String::from(
        "steps:\n  - name: first\n    image: alpine\n    depends_on: []\n    commands: [\"true\"]\n",
    );
    for i in 0..900 {
        source.push_str(&format!(
            "  - name: h{i}\n    image: alpine\n    when: {{status: [failure]}}\n    commands: [\"true\"]\n"
        ));
    }
    assert!(lint(&source).is_empty());
    // A long word is not compared with every candidate (the distance costs the product
    // of the lengths): no suggestion, still a clear error.
    let long_value = format!(
        "steps:\n  - name: a\n    image: alpine\n    pull: {}\n    commands: [\"true\"]\n",
        "k".repeat(100_000)
    );
    let diagnostics = lint(&long_value);
    assert_eq!(names(&diagnostics), ["invalid-value"]);
}

#[test]
fn control_characters_in_the_file_never_reach_the_terminal_raw() {
    let source = "steps:\n  - name: \"a\\e[31m\"\n    image: alpine\n    commands: [\"true\"]\n";
    let diagnostics = lint(source);
    assert_eq!(names(&diagnostics), ["invalid-name"]);
    let rendered = common::render(&diagnostics, source);
    assert!(!rendered.contains('\u{1b}'), "{rendered:?}");
    assert!(rendered.contains("\\u{1b}"), "{rendered}");
}
