//! What `gantry exec` and `gantry compile` know about the commit: read from git when the
//! current directory is a repository, with sensible values otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use gantry_pipeline::CompileContext;

use crate::EventArgs;

/// The pipeline file to use: the one given, else `.pipeline.yml`, else `.drone.yml`.
pub fn pipeline_file(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(file) = given {
        return Ok(file);
    }
    for name in [".pipeline.yml", ".drone.yml"] {
        let path = PathBuf::from(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!(
        "no pipeline file here: neither .pipeline.yml nor .drone.yml exists in {} (pass a FILE)",
        std::env::current_dir().map_or_else(|_| ".".into(), |d| d.display().to_string())
    )
}

/// Reads a pipeline file, refusing what is not UTF-8 text.
pub fn read_pipeline(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))
}

/// Runs `git args...` in `dir`, returning trimmed stdout when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Builds the compile context for a local run in `dir`.
pub fn local_context(dir: &Path, event: &EventArgs) -> CompileContext {
    let dir_name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "workspace".into());
    let branch = event
        .branch
        .clone()
        .or_else(|| git(dir, &["rev-parse", "--abbrev-ref", "HEAD"]).filter(|b| b != "HEAD"))
        .unwrap_or_else(|| "main".into());
    let sha = git(dir, &["rev-parse", "HEAD"]).unwrap_or_else(|| "0".repeat(40));
    let git_ref = match (&event.tag, event.event.as_str()) {
        (Some(tag), _) => format!("refs/tags/{tag}"),
        _ => format!("refs/heads/{branch}"),
    };
    let mut ctx = CompileContext {
        repo: format!("local/{dir_name}"),
        repo_url: git(dir, &["config", "--get", "remote.origin.url"]).unwrap_or_default(),
        event: event.event.clone(),
        git_ref,
        branch,
        tag: event.tag.clone().unwrap_or_default(),
        sha,
        message: git(dir, &["log", "-1", "--format=%s"]).unwrap_or_default(),
        author: git(dir, &["log", "-1", "--format=%an"]).unwrap_or_default(),
        build_number: 1,
        deploy_target: event.target.clone().unwrap_or_default(),
        cron: event.cron.clone().unwrap_or_default(),
        trusted: event.trusted,
        // The user's own machine and engine: a registry on localhost is theirs to use.
        allow_private_registries: true,
        ..CompileContext::default()
    };
    ctx.changed_files = None;
    ctx
}
