//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use gantry_pipeline::{CompileContext, Compiled, Diagnostic};

/// How long one compiler call may take before a test gives up (a hang guard, far above
/// any real duration; speed is measured in bench/, not here).
pub const HANG_LIMIT: Duration = Duration::from_secs(120);

/// Runs `f` on a thread with a 2 MiB stack (what a tokio worker has) and fails the test
/// if it does not finish within [`HANG_LIMIT`]; a panic in `f` fails the test as is.
pub fn guarded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn a test thread");
    match rx.recv_timeout(HANG_LIMIT) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => {
            panic!("the compiler did not return within {HANG_LIMIT:?}")
        }
        Err(RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread ended without sending"),
        },
    }
}

/// [`gantry_pipeline::lint`] under [`guarded`].
pub fn lint_file(file: &str, source: &str) -> Vec<Diagnostic> {
    let (file, source) = (file.to_owned(), source.to_owned());
    guarded(move || gantry_pipeline::lint(&file, &source))
}

/// [`gantry_pipeline::compile`] under [`guarded`].
pub fn compile_file(
    file: &str,
    source: &str,
    ctx: &CompileContext,
) -> Result<Compiled, Vec<Diagnostic>> {
    let (file, source, ctx) = (file.to_owned(), source.to_owned(), ctx.clone());
    guarded(move || gantry_pipeline::compile(&file, &source, &ctx))
}

/// The build every golden test compiles for.
pub fn push_to_main() -> CompileContext {
    CompileContext {
        repo: "acme/app".into(),
        repo_url: "https://git.example.com/acme/app.git".into(),
        event: "push".into(),
        git_ref: "refs/heads/main".into(),
        branch: "main".into(),
        sha: "6f1c2a9e0b7d4c3f8a5e2d1b0c9f8e7d6a5b4c3d".into(),
        before: "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567".into(),
        message: "Fix the flaky test".into(),
        author: "Ada".into(),
        build_number: 42,
        build_link: "https://ci.example.com/acme/app/42".into(),
        prev_build_status: "success".into(),
        changed_files: Some(vec!["services/api/handlers.go".into(), "README.md".into()]),
        ..CompileContext::default()
    }
}

/// The workspace's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Every pipeline file under `examples/`, sorted, as (relative path, path).
pub fn example_files() -> Vec<(String, PathBuf)> {
    let root = examples_dir();
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("examples directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                let relative = path
                    .strip_prefix(&root)
                    .expect("under root")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((relative, path));
            }
        }
    }
    out.sort();
    out
}

/// Compiles `source` for a push to main, panicking with the rendered diagnostics.
pub fn compile_ok(source: &str) -> Compiled {
    compile_with(source, &push_to_main())
}

/// Compiles `source` for `ctx`, panicking with the rendered diagnostics.
pub fn compile_with(source: &str, ctx: &CompileContext) -> Compiled {
    match compile_file(".pipeline.yml", source, ctx) {
        Ok(compiled) => compiled,
        Err(diagnostics) => panic!("expected success, got:\n{}", render(&diagnostics, source)),
    }
}

/// Compiles `source` for `ctx`, expecting errors.
pub fn compile_err(source: &str, ctx: &CompileContext) -> Vec<Diagnostic> {
    match compile_file(".pipeline.yml", source, ctx) {
        Ok(compiled) => panic!("expected errors, got {compiled:#?}"),
        Err(diagnostics) => diagnostics,
    }
}

/// The lint diagnostics of `source` as `.pipeline.yml`.
pub fn lint(source: &str) -> Vec<Diagnostic> {
    lint_file(".pipeline.yml", source)
}

/// The readable code names of `diagnostics`.
pub fn names(diagnostics: &[Diagnostic]) -> Vec<&'static str> {
    diagnostics.iter().map(|d| d.code.name()).collect()
}

/// Every diagnostic rendered against `source`.
pub fn render(diagnostics: &[Diagnostic], source: &str) -> String {
    diagnostics.iter().map(|d| d.render(source)).collect()
}
