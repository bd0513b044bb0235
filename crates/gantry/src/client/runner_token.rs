//! `gantry runner-token create|list|revoke` (admin): the credentials `gantry runner`
//! connects with. They are API tokens with the role `runner`, stored hashed; the server
//! knows a runner only by its token.

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
        RunnerTokenCommand::Create { name } => {
            let body = json!({"name": name, "subject": name, "role": "runner"});
            let answer = client.call(Method::POST, "/api/tokens", Some(body)).await?;
            let Some(secret) = answer["secret"].as_str() else {
                bail!("the server's answer has no token text; is it a gantry server?");
            };
            eprintln!(
                "runner token {} created for `{name}`; it is shown once: store it now",
                answer["token"]["id"]
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
            table(&["ID", "NAME", "CREATED", "LAST USED", "STATE"], &rows);
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
}
