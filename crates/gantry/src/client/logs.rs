//! `gantry logs REPO BUILD [STEP] [-f]`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::{Client, field, repo_path};

/// How often `-f` asks for new lines.
const POLL: Duration = Duration::from_millis(500);

/// Arguments of `gantry logs`.
#[derive(Args)]
pub struct LogsArgs {
    /// OWNER/NAME.
    repo: String,
    /// Build number.
    build: u64,
    /// Step name (default: every step, in order).
    step: Option<String>,
    /// Follow: keep printing new lines until the step (or build) ends.
    #[arg(short, long)]
    follow: bool,
}

pub async fn run(client: &Client, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let base = format!("{}/builds/{}", repo_path(&args.repo)?, args.build);
    let build = client.call(Method::GET, &base, None).await?;
    let steps: Vec<String> = match &args.step {
        Some(step) => vec![step.clone()],
        None => step_names(&build),
    };
    let many = steps.len() > 1;
    for step in steps {
        let path = format!("{base}/steps/{step}/logs");
        if !args.follow {
            let text = client.text(&path).await?;
            for line in text.lines() {
                print_line(many, &step, line);
            }
            continue;
        }
        follow(client, &base, &path, &step, many).await?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_line(prefixed: bool, step: &str, text: &str) {
    if prefixed {
        println!("[{step}] {text}");
    } else {
        println!("{text}");
    }
}

/// Prints lines as they arrive (JSON lines after the last seen number) until the step is
/// final and no line is left.
async fn follow(
    client: &Client,
    base: &str,
    path: &str,
    step: &str,
    many: bool,
) -> anyhow::Result<()> {
    let mut after = 0u64;
    loop {
        let batch = client.text(&format!("{path}?after={after}")).await?;
        let mut got = 0;
        for line in batch.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(n) = value["number"].as_u64() {
                after = after.max(n);
            }
            print_line(many, step, field(&value, "text"));
            got += 1;
        }
        if got > 0 {
            continue;
        }
        let build = client.call(Method::GET, base, None).await?;
        if step_is_final(&build, step) {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

fn step_names(build: &Value) -> Vec<String> {
    build["workflows"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|wf| wf["steps"].as_array().into_iter().flatten())
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect()
}

fn step_is_final(build: &Value, step: &str) -> bool {
    let status = build["workflows"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|wf| wf["steps"].as_array().into_iter().flatten())
        .find(|s| s["name"].as_str() == Some(step))
        .and_then(|s| s["status"].as_str())
        .unwrap_or("error");
    !matches!(status, "pending" | "running" | "blocked")
}
