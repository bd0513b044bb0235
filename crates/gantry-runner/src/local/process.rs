//! Host processes of the local backend: each step runs in its own process group, so
//! killing the group takes every child it started with it.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{ChildStderr, ChildStdout, Command};
use tokio::sync::watch;

use super::records;
use crate::backend::{BackendError, LogChunk, LogStream, OutputStream, StepExit};

/// Bytes read from a pipe at a time.
const READ_CHUNK: usize = 32 * 1024;

/// How long `kill` waits for a killed process to be reaped before giving up waiting.
const REAP_WAIT: Duration = Duration::from_secs(10);

/// What to run for a step.
pub(super) struct Launch {
    /// Program and arguments.
    pub(super) argv: Vec<String>,
    /// Working directory.
    pub(super) dir: PathBuf,
    /// The complete environment.
    pub(super) env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// Where to record the running process (see `records`), if anywhere, and the mark
    /// `env` gives it.
    pub(super) records: Option<(PathBuf, String)>,
}

/// A started step process.
pub(super) struct LocalProcess {
    /// Its process group (the id of the process itself, which leads the group).
    group: Pid,
    /// Set once the process ended (and was reaped).
    exit: watch::Receiver<Option<StepExit>>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
}

impl LocalProcess {
    /// Starts `launch` in a new process group. A task reaps it when it ends and then kills
    /// whatever it left running in its group, as a container's end would.
    pub(super) fn spawn(launch: Launch) -> Result<Self, BackendError> {
        let Some((program, args)) = launch.argv.split_first() else {
            return Err(BackendError::Other("nothing to run: empty command".into()));
        };
        let mut child = Command::new(program)
            .args(args)
            .current_dir(&launch.dir)
            .env_clear()
            .envs(launch.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| {
                BackendError::Other(format!(
                    "cannot start `{program}` in {}: {e}",
                    launch.dir.display()
                ))
            })?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| BackendError::Other(format!("`{program}` ended before it started")))?;
        let group = Pid::from_raw(pid);
        // Should the reaping task be dropped first (the tokio runtime shutting down), the
        // guard still kills the group: no step outlives its runner. It is made out here so
        // that it is dropped even if the task never got to run. Once the group is killed
        // it removes the step's record, which a runner killed outright leaves behind for
        // its next start to find.
        let mut guard = GroupGuard {
            group,
            record: None,
        };
        if let Some((dir, mark)) = &launch.records {
            guard.record = records::write(dir, pid, mark).map_err(|e| {
                BackendError::Other(format!(
                    "cannot record the step's process in {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let (tx, exit) = watch::channel(None);
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(status) => step_exit(status),
                Err(e) => {
                    tracing::warn!(error = %e, "waiting for a local step failed");
                    StepExit {
                        code: -1,
                        oom_killed: false,
                    }
                }
            };
            drop(guard);
            let _ = tx.send(Some(exit));
        });
        Ok(Self {
            group,
            exit,
            stdout,
            stderr,
        })
    }

    /// Its output from start to end, stdout and stderr interleaved as they come. Only the
    /// first call gets it.
    pub(super) fn take_output(&mut self) -> Option<LogStream> {
        let stdout = self.stdout.take();
        let stderr = self.stderr.take();
        if stdout.is_none() && stderr.is_none() {
            return None;
        }
        let out = stdout.map(|r| read_chunks(r, OutputStream::Stdout));
        let err = stderr.map(|r| read_chunks(r, OutputStream::Stderr));
        let merged = futures_util::stream::select(
            futures_util::stream::iter(out).flatten(),
            futures_util::stream::iter(err).flatten(),
        );
        Some(Box::pin(merged))
    }

    /// A handle that resolves when the process has ended.
    pub(super) fn exit_watch(&self) -> watch::Receiver<Option<StepExit>> {
        self.exit.clone()
    }

    /// Kills the whole process group and waits (a bounded time) until it was reaped.
    pub(super) async fn kill(self) {
        kill_group(self.group);
        let mut exit = self.exit;
        if tokio::time::timeout(REAP_WAIT, wait_exit(&mut exit))
            .await
            .is_err()
        {
            tracing::warn!(pgid = %self.group, "a killed local step was not reaped in time");
        }
    }
}

/// Waits until the process ended.
pub(super) async fn wait_exit(
    exit: &mut watch::Receiver<Option<StepExit>>,
) -> Result<StepExit, BackendError> {
    match exit.wait_for(Option::is_some).await {
        Ok(seen) => Ok(seen.unwrap_or(StepExit {
            code: -1,
            oom_killed: false,
        })),
        Err(_) => Err(BackendError::Other(
            "the step's process was lost: its reaper stopped".into(),
        )),
    }
}

/// Kills a process group when dropped, then removes its record.
struct GroupGuard {
    group: Pid,
    record: Option<PathBuf>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.group);
        if let Some(record) = &self.record {
            records::remove(record);
        }
    }
}

/// SIGKILL to every process in the group; a group that is already gone is fine.
fn kill_group(group: Pid) {
    match killpg(group, Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid = %group, error = %e, "killing a local step failed"),
    }
}

/// Exit code as a shell reports it: the code, or 128 + the signal that killed it.
fn step_exit(status: ExitStatus) -> StepExit {
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        (None, None) => -1,
    };
    StepExit {
        code,
        oom_killed: false,
    }
}

/// Reads a pipe into chunks until it closes.
fn read_chunks<R>(
    reader: R,
    stream: OutputStream,
) -> impl Stream<Item = Result<LogChunk, BackendError>> + Send
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let buffer = vec![0u8; READ_CHUNK];
    futures_util::stream::unfold(
        (Some(reader), buffer),
        move |(reader, mut buffer)| async move {
            let mut reader = reader?;
            match reader.read(&mut buffer).await {
                Ok(0) => None,
                Ok(n) => {
                    let chunk = LogChunk {
                        stream,
                        data: buffer[..n].to_vec(),
                    };
                    Some((Ok(chunk), (Some(reader), buffer)))
                }
                Err(e) => {
                    let error =
                        BackendError::Other(format!("reading the step's {stream:?} failed: {e}"));
                    Some((Err(error), (None, buffer)))
                }
            }
        },
    )
}
