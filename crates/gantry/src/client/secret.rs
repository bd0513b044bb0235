//! `gantry secret set|rm|ls`.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::{Client, field, repo_path, table};

/// Secret commands.
#[derive(Subcommand)]
pub enum SecretCommand {
    /// Set a secret. The value comes from VALUE, --from-file, or standard input.
    Set {
        /// OWNER/NAME.
        repo: String,
        /// Secret name (what `from_secret:` refers to).
        name: String,
        /// The value (prefer standard input or --from-file: arguments show up in `ps`).
        value: Option<String>,
        /// Read the value from this file (multi-line values welcome).
        #[arg(long, value_name = "FILE", conflicts_with = "value")]
        from_file: Option<std::path::PathBuf>,
    },
    /// Delete a secret.
    Rm {
        /// OWNER/NAME.
        repo: String,
        /// Secret name.
        name: String,
    },
    /// List secret names (values are never shown).
    Ls {
        /// OWNER/NAME.
        repo: String,
    },
}

pub async fn run(client: &Client, command: SecretCommand) -> anyhow::Result<ExitCode> {
    match command {
        SecretCommand::Set {
            repo,
            name,
            value,
            from_file,
        } => {
            let value = match (value, from_file) {
                (Some(v), _) => v,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                (None, None) => {
                    let mut v = String::new();
                    std::io::stdin()
                        .read_to_string(&mut v)
                        .context("reading the value from standard input")?;
                    v.trim_end_matches('\n').to_owned()
                }
            };
            let path = format!("{}/secrets/{name}", repo_path(&repo)?);
            client
                .call(Method::PUT, &path, Some(json!({ "value": value })))
                .await?;
            println!("secret `{name}` set on {repo}");
        }
        SecretCommand::Rm { repo, name } => {
            let path = format!("{}/secrets/{name}", repo_path(&repo)?);
            client.call(Method::DELETE, &path, None).await?;
            println!("secret `{name}` deleted from {repo}");
        }
        SecretCommand::Ls { repo } => {
            let path = format!("{}/secrets", repo_path(&repo)?);
            let answer = client.call(Method::GET, &path, None).await?;
            let list = answer
                .as_array()
                .cloned()
                .or_else(|| answer["secrets"].as_array().cloned())
                .unwrap_or_default();
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| vec![field(s, "name").to_owned()])
                .collect();
            table(&["NAME"], &rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}
