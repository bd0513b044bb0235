//! Compiler speed, by hand: `cargo run --release -p gantry-pipeline --example bench_compile`.
//!
//! Figures are ratios against a baseline measured in the same run: parsing the same YAML
//! into a plain `serde_json::Value` with serde-saphyr (what any YAML consumer pays).

use std::time::{Duration, Instant};

use gantry_pipeline::CompileContext;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm up
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn steps(count: usize) -> String {
    let mut source = String::from("steps:\n");
    for i in 0..count {
        source.push_str(&format!(
            "  - name: step-{i}\n    image: alpine:3.20\n    environment:\n      N: \"{i}\"\n    commands:\n      - echo ${{CI_COMMIT_SHA}} {i}\n      - make target-{i}\n"
        ));
    }
    source
}

fn alias_bomb() -> String {
    let mut source = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        source.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    source
}

fn report(name: &str, source: &str, runs: usize) {
    let ctx = CompileContext {
        repo: "acme/app".into(),
        branch: "main".into(),
        ..CompileContext::default()
    };
    let baseline = time(runs, || {
        let _ = serde_saphyr::from_str::<serde_json::Value>(source);
    });
    let lint = time(runs, || {
        let _ = gantry_pipeline::lint(".pipeline.yml", source);
    });
    let compile = time(runs, || {
        let _ = gantry_pipeline::compile(".pipeline.yml", source, &ctx);
    });
    let ratio = |d: Duration| d.as_secs_f64() / baseline.as_secs_f64().max(1e-9);
    println!(
        "{name:<22} {:>8} bytes  parse {:>9.3?}  lint {:>9.3?} ({:>5.1}x)  compile {:>9.3?} ({:>5.1}x)",
        source.len(),
        baseline,
        lint,
        ratio(lint),
        compile,
        ratio(compile)
    );
}

fn main() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for name in ["basic", "matrix", "promote"] {
        let source =
            std::fs::read_to_string(examples.join(name).join(".pipeline.yml")).expect("example");
        report(&format!("examples/{name}"), &source, 200);
    }
    report("100 steps", &steps(100), 50);
    report("1000 steps", &steps(1000), 10);
    let bomb = alias_bomb();
    let start = Instant::now();
    let diagnostics = gantry_pipeline::lint(".pipeline.yml", &bomb);
    println!(
        "alias bomb (10^12 values if expanded): refused in {:.3?} with {}",
        start.elapsed(),
        diagnostics.first().map_or("nothing", |d| d.code.name())
    );
}
