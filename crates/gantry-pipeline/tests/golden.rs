//! Golden tests: every file under `examples/` compiles, for a fixed build, to the IR
//! checked in under `tests/snapshots/`.

mod common;

use gantry_pipeline::CompileContext;

#[test]
fn every_example_compiles_to_its_snapshot() {
    let files = common::example_files();
    assert!(files.len() >= 10, "examples are missing: {files:?}");
    for (name, path) in files {
        let source = std::fs::read_to_string(&path).expect("example is readable");
        let lint = common::lint_file(&name, &source);
        let errors: Vec<_> = lint.iter().filter(|d| d.is_error()).collect();
        assert!(
            errors.is_empty(),
            "{name} has lint errors:\n{}",
            common::render(&lint, &source)
        );
        let compiled = common::compile_file(&name, &source, &common::push_to_main())
            .unwrap_or_else(|d| {
                panic!("{name} does not compile:\n{}", common::render(&d, &source))
            });
        let snapshot = name.replace(['/', '.'], "_");
        insta::assert_json_snapshot!(format!("example_{snapshot}"), compiled);
    }
}

#[test]
fn promote_example_for_a_production_promotion() {
    let path = common::examples_dir().join("promote/.pipeline.yml");
    let source = std::fs::read_to_string(path).expect("example is readable");
    let ctx = CompileContext {
        event: "promote".into(),
        deploy_target: "production".into(),
        ..common::push_to_main()
    };
    let compiled = common::compile_file("promote/.pipeline.yml", &source, &ctx).expect("compiles");
    let names: Vec<&str> = compiled.plans[0]
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["clone", "deploy-production", "notify"]);
    insta::assert_json_snapshot!("example_promote_production", compiled);
}

#[test]
fn demo_example_uses_only_busybox_and_runs_two_steps_in_parallel() {
    let path = common::examples_dir().join("demo/.pipeline.yml");
    let source = std::fs::read_to_string(path).expect("example is readable");
    let ctx = CompileContext {
        clone: false,
        secrets: Some(["demo_token".to_string()].into()),
        ..common::push_to_main()
    };
    let compiled = common::compile_file("demo/.pipeline.yml", &source, &ctx).expect("compiles");
    let plan = &compiled.plans[0];
    assert!(
        plan.steps
            .iter()
            .chain(&plan.services)
            .all(|s| s.image == "busybox:latest")
    );
    let roots: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| s.needs.is_empty())
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(roots, ["hello", "system-info"]);
    assert_eq!(plan.secret_names(), ["demo_token"]);
    assert_eq!(plan.services[0].name, "web");
    assert!(
        plan.steps
            .iter()
            .any(|s| s.commands.iter().any(|c| c.contains("http://web:8080/")))
    );
}
