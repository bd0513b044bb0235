//! `gantry build list|show|trigger|cancel|restart`.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, field, repo_path, table};

/// Build commands.
#[derive(Subcommand)]
pub enum BuildCommand {
    /// List a repository's builds, newest first.
    List {
        /// OWNER/NAME.
        repo: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show one build: its steps, their status, and compile diagnostics.
    Show {
        /// OWNER/NAME.
        repo: String,
        /// Build number.
        number: u64,
    },
    /// Start a build of a branch's head or of an exact commit.
    Trigger {
        /// OWNER/NAME.
        repo: String,
        /// Branch (default: the repository's default branch, `main`).
        #[arg(long)]
        branch: Option<String>,
        /// Exact commit SHA.
        #[arg(long)]
        sha: Option<String>,
    },
    /// Cancel a build: queued work is dropped, running steps are killed.
    Cancel {
        /// OWNER/NAME.
        repo: String,
        /// Build number.
        number: u64,
    },
    /// Run a finished build again (as a new build).
    Restart {
        /// OWNER/NAME.
        repo: String,
        /// Build number.
        number: u64,
        /// Only the workflows that did not succeed.
        #[arg(long)]
        failed: bool,
    },
}

pub async fn run(client: &Client, command: BuildCommand) -> anyhow::Result<ExitCode> {
    match command {
        BuildCommand::List { repo, limit } => {
            let path = format!("{}/builds?limit={limit}", repo_path(&repo)?);
            let builds = client.call(Method::GET, &path, None).await?;
            let rows: Vec<Vec<String>> = builds
                .as_array()
                .map(|list| list.iter().map(build_row).collect())
                .unwrap_or_default();
            table(
                &["#", "STATUS", "EVENT", "REF", "COMMIT", "AUTHOR", "MESSAGE"],
                &rows,
            );
        }
        BuildCommand::Show { repo, number } => {
            let path = format!("{}/builds/{number}", repo_path(&repo)?);
            let build = client.call(Method::GET, &path, None).await?;
            show(&build);
        }
        BuildCommand::Trigger { repo, branch, sha } => {
            let mut body = json!({});
            if let Some(b) = branch {
                body["branch"] = json!(b);
            }
            if let Some(s) = sha {
                body["sha"] = json!(s);
            }
            let path = format!("{}/builds", repo_path(&repo)?);
            let build = client.call(Method::POST, &path, Some(body)).await?;
            println!("build #{} {}", build["number"], field(&build, "status"));
        }
        BuildCommand::Cancel { repo, number } => {
            let path = format!("{}/builds/{number}/cancel", repo_path(&repo)?);
            let build = client.call(Method::POST, &path, None).await?;
            println!("build #{number} {}", field(&build, "status"));
        }
        BuildCommand::Restart {
            repo,
            number,
            failed,
        } => {
            let path = format!("{}/builds/{number}/restart", repo_path(&repo)?);
            let body = json!({ "failed_only": failed });
            let build = client.call(Method::POST, &path, Some(body)).await?;
            println!(
                "build #{} {} (restart of #{number})",
                build["number"],
                field(&build, "status")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn build_row(b: &Value) -> Vec<String> {
    let message = field(b, "message")
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(50)
        .collect();
    vec![
        b["number"].to_string(),
        field(b, "status").to_owned(),
        field(b, "event").to_owned(),
        field(b, "git_ref")
            .trim_start_matches("refs/heads/")
            .to_owned(),
        field(b, "sha").chars().take(8).collect(),
        field(b, "author").to_owned(),
        message,
    ]
}

fn show(build: &Value) {
    println!(
        "build #{} {}  {} {} {}",
        build["number"],
        field(build, "status"),
        field(build, "event"),
        field(build, "git_ref"),
        field(build, "sha").chars().take(12).collect::<String>()
    );
    if let Some(error) = build["error"].as_str() {
        println!("error: {error}");
    }
    for d in build["diagnostics"].as_array().into_iter().flatten() {
        println!(
            "  {}:{}: {}: {}",
            d["line"],
            d["column"],
            field(d, "severity"),
            field(d, "message")
        );
    }
    let mut rows = Vec::new();
    for wf in build["workflows"].as_array().into_iter().flatten() {
        for step in wf["steps"].as_array().into_iter().flatten() {
            let duration = match (step["started_at"].as_i64(), step["finished_at"].as_i64()) {
                (Some(a), Some(b)) => format!("{:.1}s", (b - a) as f64 / 1000.0),
                _ => "-".into(),
            };
            rows.push(vec![
                field(wf, "name").to_owned(),
                field(step, "name").to_owned(),
                field(step, "status").to_owned(),
                step["exit_code"]
                    .as_i64()
                    .map_or("-".into(), |c| c.to_string()),
                duration,
                step["error"].as_str().unwrap_or("").to_owned(),
            ]);
        }
    }
    println!();
    table(
        &["WORKFLOW", "STEP", "STATUS", "EXIT", "DURATION", "ERROR"],
        &rows,
    );
}
