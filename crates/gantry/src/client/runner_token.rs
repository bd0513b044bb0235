//! `gantry runner-token create|list|revoke` (admin): the credentials `gantry runner`
//! connects with. They are API tokens with the role `runner`, stored hashed; the server
//! knows a runner only by its token. A token may be scoped: `--labels` are imposed on its
//! runner (it cannot declare other values for them), `--repos` limit which repositories'
//! workflows it may claim.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, field, table};

/// Runner token commands.
#[derive(Subcommand)]
pub enum RunnerTokenCommand {
    /// Create a token for a runner; its text is printed once.
    Create {
        /// A name to recognise the runner by (e.g. its host).
        name: String,
        /// Labels imposed on the runner: it is routed with them and refused if it declares
        /// another value for one (e.g. `os=linux,gpu=true`).
        #[arg(long, value_name = "KEY=VALUE,...", value_parser = parse_labels)]
        labels: Option<Labels>,
        /// The only repositories whose workflows the runner may take (`owner/name` or
        /// `owner/*`, comma separated); every repository without it.
        #[arg(long, value_name = "OWNER/NAME,...", value_delimiter = ',')]
        repos: Option<Vec<String>>,
    },
    /// List runner tokens (never their text).
    List,
    /// Revoke a runner token: the runner is disconnected and its work requeued.
    Revoke {
        /// The token's id (from `list`).
        id: i64,
    },
}

pub async fn run(client: &Client, command: RunnerTokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        RunnerTokenCommand::Create {
            name,
            labels,
            repos,
        } => {
            let mut body = json!({"name": name, "subject": name, "role": "runner"});
            if let Some(labels) = labels {
                body["labels"] = json!(labels.0);
            }
            if let Some(repos) = repos {
                body["repos"] = json!(repos);
            }
            let answer = client.call(Method::POST, "/api/tokens", Some(body)).await?;
            let Some(secret) = answer["secret"].as_str() else {
                bail!("the server's answer has no token text; is it a gantry server?");
            };
            let token = &answer["token"];
            let scope = match (scope_labels(token), scope_repos(token)) {
                (labels, repos) if labels == "-" && repos == "*" => String::new(),
                (labels, repos) => format!(" (labels {labels}; repositories {repos})"),
            };
            eprintln!(
                "runner token {} created for `{name}`{scope}; it is shown once: store it now",
                token["id"]
            );
            println!("{secret}");
        }
        RunnerTokenCommand::List => {
            let rows: Vec<Vec<String>> = runner_tokens(client)
                .await?
                .iter()
                .map(|t| {
                    vec![
                        t["id"].to_string(),
                        field(t, "name").to_owned(),
                        scope_labels(t),
                        scope_repos(t),
                        millis(&t["created_at"]),
                        millis(&t["last_used_at"]),
                        if t["revoked_at"].is_null() {
                            "active"
                        } else {
                            "revoked"
                        }
                        .to_owned(),
                    ]
                })
                .collect();
            table(
                &[
                    "ID",
                    "NAME",
                    "LABELS",
                    "REPOS",
                    "CREATED",
                    "LAST USED",
                    "STATE",
                ],
                &rows,
            );
        }
        RunnerTokenCommand::Revoke { id } => {
            // Only runner tokens: an admin's own token is not revoked by a typo here.
            let known = runner_tokens(client).await?;
            if !known.iter().any(|t| t["id"].as_i64() == Some(id)) {
                bail!("no runner token with id {id}; `gantry runner-token list` shows them");
            }
            client
                .call(Method::DELETE, &format!("/api/tokens/{id}"), None)
                .await?;
            println!("runner token {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn runner_tokens(client: &Client) -> anyhow::Result<Vec<Value>> {
    let answer = client.call(Method::GET, "/api/tokens", None).await?;
    Ok(answer
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|t| t["role"] == "runner")
                .cloned()
                .collect()
        })
        .unwrap_or_default())
}

/// Parsed `--labels`.
#[derive(Clone, Debug)]
pub struct Labels(BTreeMap<String, String>);

fn parse_labels(text: &str) -> Result<Labels, String> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("`{pair}` is not KEY=VALUE"));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() {
            return Err(format!("`{pair}` needs a key and a value"));
        }
        if labels.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(format!("the label `{key}` is given twice"));
        }
    }
    if labels.is_empty() {
        return Err("give at least one KEY=VALUE, or leave --labels out".into());
    }
    Ok(Labels(labels))
}

/// A token's imposed labels as `k=v,...`, or `-`.
fn scope_labels(token: &Value) -> String {
    let pairs: Vec<String> = (token["labels"].as_object().into_iter().flatten())
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if pairs.is_empty() {
        "-".into()
    } else {
        pairs.join(",")
    }
}

/// A token's repositories as `a/b,c/*`, or `*` (every repository).
fn scope_repos(token: &Value) -> String {
    match token["repos"].as_array() {
        Some(repos) => (repos.iter())
            .map(|r| r.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(","),
        None => "*".into(),
    }
}

/// Unix milliseconds as a UTC time, or `-`.
fn millis(value: &Value) -> String {
    let Some(ms) = value.as_i64() else {
        return "-".into();
    };
    format!("{}Z", gantry_store::utc_minutes(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc() {
        assert_eq!(millis(&json!(0)), "1970-01-01 00:00Z");
        assert_eq!(millis(&json!(1_795_000_000_000_i64)), "2026-11-18 11:06Z");
        assert_eq!(millis(&Value::Null), "-");
    }

    #[test]
    fn scopes_parse_and_print() {
        let labels = parse_labels("os=linux, gpu=true").unwrap().0;
        assert_eq!(labels.len(), 2);
        assert!(parse_labels("os").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_labels("os=a,os=b").unwrap_err().contains("twice"));
        assert!(parse_labels("=x").unwrap_err().contains("key and a value"));
        let token = json!({"labels": {"gpu": "true", "os": "linux"}, "repos": ["a/b", "c/*"]});
        assert_eq!(scope_labels(&token), "gpu=true,os=linux");
        assert_eq!(scope_repos(&token), "a/b,c/*");
        let plain = json!({"labels": {}, "repos": null});
        assert_eq!(
            (scope_labels(&plain), scope_repos(&plain)),
            ("-".into(), "*".into())
        );
    }
}
