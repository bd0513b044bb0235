//! Running the `git` binary: a bare repository, a timeout, a private HOME, no prompts, and
//! output scrubbed of credentials before it can reach an error or a log.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::GitError;
use super::netrc::Netrc;
use super::objects::ObjectReader;
use super::url::RemoteUrl;

/// Environment passed through from the server (proxies and CA settings only).
const PASSED_ENV: [&str; 9] = [
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
];

/// Config set on every call: only our four transports, no credential helpers, no
/// background maintenance racing concurrent fetches.
const CONFIG: [&str; 10] = [
    "protocol.allow=never",
    "protocol.file.allow=always",
    "protocol.git.allow=always",
    "protocol.http.allow=always",
    "protocol.https.allow=always",
    "credential.helper=",
    "core.askPass=",
    "gc.auto=0",
    "maintenance.auto=false",
    "advice.detachedHead=false",
];

/// Most stderr kept in an error: the tail is where git says what went wrong.
const STDERR_KEEP: usize = 2000;

/// One bare repository and how to run git in it.
#[derive(Clone)]
pub(crate) struct Git {
    /// The bare repository (`--git-dir`).
    pub(crate) repo: PathBuf,
    /// Limit on every call.
    pub(crate) timeout: Duration,
    /// Credentials for fetches, written to a temporary `.netrc`.
    pub(crate) credentials: Option<Netrc>,
    /// The remote, for netrc's machine and for scrubbing output.
    pub(crate) remote: RemoteUrl,
    /// `repo` is the remote itself (a local `file://` repository read in place): never
    /// fetch into it or change it.
    pub(crate) read_only: bool,
    /// The repository's long-lived `cat-file` process, shared by every handle to it.
    pub(crate) objects: Arc<ObjectReader>,
    /// How long `objects` keeps an unused process.
    pub(crate) idle_limit: Duration,
}

impl Git {
    /// Runs git; a non-zero exit is [`GitError::Failed`] carrying scrubbed stderr.
    pub(crate) async fn run(&self, action: &str, args: &[&str]) -> Result<Vec<u8>, GitError> {
        let output = self.output(action, args).await?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(self.failure(action, &output))
        }
    }

    /// Runs git and returns its output whatever the exit code (spawn and timeout still fail).
    pub(crate) async fn output(&self, action: &str, args: &[&str]) -> Result<Output, GitError> {
        self.output_with_input(action, args, None).await
    }

    /// [`Git::output`] with `input` written to git's stdin (small: it is written before
    /// the output is read).
    pub(crate) async fn output_with_input(
        &self,
        action: &str,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<Output, GitError> {
        // Lives until git exits: the HOME (and any .netrc in it) is removed on drop.
        let home = self.private_home()?;
        let mut command = self.command(home.path(), args);
        if input.is_some() {
            command.stdin(Stdio::piped());
        }
        tracing::debug!(
            git.action = action,
            git.remote = self.remote.display(),
            "running git"
        );
        let mut child = command.spawn().map_err(|err| GitError::Spawn {
            message: err.to_string(),
        })?;
        let run = async {
            if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
                // A write error means git exited early; its stderr says why.
                let _ = stdin.write_all(input).await;
            }
            child.wait_with_output().await
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(err)) => Err(GitError::Io {
                action: format!("wait for git to {action}"),
                message: err.to_string(),
            }),
            // Dropping the future kills the child (kill_on_drop).
            Err(_) => Err(GitError::Timeout {
                action: action.to_owned(),
                remote: self.remote.display().to_owned(),
                secs: self.timeout.as_secs(),
            }),
        }
    }

    /// A temporary HOME holding only the `.netrc` for this call, if there are credentials.
    fn private_home(&self) -> Result<tempfile::TempDir, GitError> {
        let home = self.private_home_without_credentials()?;
        // A host-less URL (file://) has no use for credentials.
        let host = self.remote.host().unwrap_or_default();
        if let Some(netrc) = self
            .credentials
            .as_ref()
            .filter(|c| !(c.machine.is_empty() && host.is_empty()))
        {
            netrc
                .write_into(home.path(), host)
                .map_err(|err| GitError::Io {
                    action: "write the clone credentials".into(),
                    message: err.to_string(),
                })?;
        }
        Ok(home)
    }

    /// An empty temporary HOME, for calls that never reach the remote.
    pub(super) fn private_home_without_credentials(&self) -> Result<tempfile::TempDir, GitError> {
        tempfile::Builder::new()
            .prefix("gantry-git-home-")
            .tempdir()
            .map_err(|err| GitError::Io {
                action: "create a temporary HOME for git".into(),
                message: err.to_string(),
            })
    }

    /// `git -c ... --git-dir <repo> <args>` with a scrubbed environment and no prompts.
    pub(super) fn command(&self, home: &Path, args: &[&str]) -> Command {
        let mut command = Command::new("git");
        command.env_clear();
        for name in PASSED_ENV.iter().chain(&["PATH"]) {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .env("HOME", home)
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_ASKPASS", "")
            .env("SSH_ASKPASS", "")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for setting in CONFIG {
            command.arg("-c").arg(setting);
        }
        command.arg("--git-dir").arg(&self.repo).args(args);
        command
    }

    /// The error for a failed call, with stderr scrubbed of every credential.
    pub(crate) fn failure(&self, action: &str, output: &Output) -> GitError {
        let stderr = self.scrub(&String::from_utf8_lossy(&output.stderr));
        let trimmed = stderr.trim();
        let start = trimmed.len().saturating_sub(STDERR_KEEP);
        let start = (start..=trimmed.len())
            .find(|i| trimmed.is_char_boundary(*i))
            .unwrap_or(0);
        GitError::Failed {
            action: action.to_owned(),
            remote: self.remote.display().to_owned(),
            stderr: trimmed[start..].to_owned(),
        }
    }

    /// Removes the raw URL, the URL's password and the netrc password from `text`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.replace(self.remote.as_git_arg(), self.remote.display());
        let secrets = [
            self.remote.password(),
            self.credentials.as_ref().map(|c| c.password.as_str()),
        ];
        for secret in secrets.into_iter().flatten().filter(|s| !s.is_empty()) {
            text = text.replace(secret, "<redacted>");
        }
        text
    }
}
