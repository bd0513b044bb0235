//! `gantry repo add|list|rotate-secret`.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::{Client, field, repo_path, table};

/// Repository commands.
#[derive(Subcommand)]
pub enum RepoCommand {
    /// Add a repository (admin); prints the webhook URL and secret to paste into the forge.
    Add {
        /// OWNER/NAME.
        repo: String,
        /// URL the server clones from.
        #[arg(long)]
        clone_url: String,
        /// Forge: github, gitea, gitlab or generic.
        #[arg(long, default_value = "generic")]
        forge: String,
        /// Pipeline file in the repository.
        #[arg(long)]
        config_path: Option<String>,
        /// Build timeout in minutes.
        #[arg(long)]
        timeout: Option<u32>,
        /// Only people with access may see its builds.
        #[arg(long)]
        private: bool,
        /// Allow privileged steps and host volumes (admin).
        #[arg(long)]
        trusted: bool,
    },
    /// List the repositories you may read.
    List,
    /// Replace the webhook secret with a new one (writers); prints it once with the hook
    /// URL. Hooks signed with the old secret are refused from now on.
    RotateSecret {
        /// OWNER/NAME.
        repo: String,
    },
}

pub async fn run(client: &Client, command: RepoCommand) -> anyhow::Result<ExitCode> {
    match command {
        RepoCommand::Add {
            repo,
            clone_url,
            forge,
            config_path,
            timeout,
            private,
            trusted,
        } => {
            let Some((owner, name)) = repo.split_once('/') else {
                anyhow::bail!("repository `{repo}` must be written OWNER/NAME");
            };
            let mut body = json!({
                "owner": owner, "name": name, "forge": forge, "clone_url": clone_url,
                "private": private, "trusted": trusted,
            });
            if let Some(path) = config_path {
                body["config_path"] = json!(path);
            }
            if let Some(minutes) = timeout {
                body["timeout_minutes"] = json!(minutes);
            }
            let created = client.call(Method::POST, "/api/repos", Some(body)).await?;
            println!("added {repo}");
            print_hook(&created);
        }
        RepoCommand::RotateSecret { repo } => {
            let path = format!("{}/webhook-secret", repo_path(&repo)?);
            let rotated = client.call(Method::POST, &path, None).await?;
            println!("new webhook secret for {repo}; hooks signed with the old one now get 401");
            print_hook(&rotated);
        }
        RepoCommand::List => {
            let repos = client.call(Method::GET, "/api/repos", None).await?;
            let list = repos
                .as_array()
                .cloned()
                .or_else(|| repos["repos"].as_array().cloned())
                .unwrap_or_default();
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| {
                    vec![
                        format!("{}/{}", field(r, "owner"), field(r, "name")),
                        field(r, "forge").to_owned(),
                        if r["private"].as_bool() == Some(true) {
                            "private"
                        } else {
                            "public"
                        }
                        .into(),
                        if r["trusted"].as_bool() == Some(true) {
                            "yes"
                        } else {
                            "no"
                        }
                        .into(),
                        field(r, "clone_url").to_owned(),
                    ]
                })
                .collect();
            table(
                &["REPO", "FORGE", "VISIBILITY", "TRUSTED", "CLONE URL"],
                &rows,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The hook URL and secret of a create or rotate answer, with what to do with them.
fn print_hook(answer: &serde_json::Value) {
    println!("hook URL:       {}", field(answer, "hook_url"));
    println!("webhook secret: {}", field(answer, "webhook_secret"));
    println!("(the secret is shown only now: paste both into the forge's webhook settings)");
}
