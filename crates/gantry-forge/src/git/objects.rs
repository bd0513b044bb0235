//! One long-lived `git cat-file --batch` process per repository, so a hook's reads cost a
//! pipe round trip each instead of a process start.
//!
//! Requests to one repository are serialised by a lock. A process whose answer was cut
//! short (a timeout, an error, a cancelled caller) is never asked again: the next request
//! starts a fresh one. Objects that a fetch (or a push into a `file://` repository) adds
//! later are visible to a running process: on a miss, git rescans the object directory and
//! its packs. A process idle for the cache's idle limit is stopped, and dropping the cache stops
//! them all (kill on drop).

use std::process::Stdio;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{Mutex, MutexGuard};

use super::GitError;
use super::command::Git;

/// Longest wait for one object, whatever the cache's timeout for network calls.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest answer header kept (`<oid> <type> <size>`, or our own request and `missing`).
const MAX_HEADER_BYTES: u64 = 8 * 1024;

/// The `cat-file` process of one repository, if one is running.
#[derive(Default)]
pub(crate) struct ObjectReader {
    slot: Mutex<Option<CatFile>>,
}

/// A running `git cat-file --batch`.
struct CatFile {
    /// Killed when dropped.
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// git's HOME, removed when the process is dropped.
    _home: tempfile::TempDir,
    last_used: Instant,
    /// A request was written and its answer not read to the end: the stream is unusable.
    mid_answer: bool,
}

/// An object found by [`ObjectSession::read`].
pub(crate) struct Object {
    /// Its id (hex).
    pub(crate) oid: String,
    /// `blob`, `tree`, `commit` or `tag`.
    pub(crate) kind: String,
    /// Its bytes, or `None` when it is larger than the limit asked for.
    pub(crate) data: Option<Vec<u8>>,
}

/// Exclusive use of a repository's `cat-file` process for a series of reads.
pub(crate) struct ObjectSession<'a> {
    guard: MutexGuard<'a, Option<CatFile>>,
    git: &'a Git,
}

impl ObjectReader {
    /// Waits for this repository's process (starting one if none runs) and keeps it until
    /// the session is dropped.
    pub(crate) async fn session<'a>(
        self: &'a Arc<Self>,
        git: &'a Git,
    ) -> Result<ObjectSession<'a>, GitError> {
        let mut guard = self.slot.lock().await;
        if guard.as_mut().is_some_and(CatFile::unusable) {
            *guard = None;
        }
        if guard.is_none() {
            let process = CatFile::start(git)?;
            let pid = process.child.id();
            tokio::spawn(stop_when_idle(Arc::downgrade(self), pid, git.idle_limit));
            *guard = Some(process);
        }
        Ok(ObjectSession { guard, git })
    }
}

/// Stops the process with id `pid` once it has been idle for `limit`; ends early when the
/// reader is gone or runs another process.
async fn stop_when_idle(reader: Weak<ObjectReader>, pid: Option<u32>, limit: Duration) {
    loop {
        tokio::time::sleep(limit / 2).await;
        let Some(reader) = reader.upgrade() else {
            return;
        };
        let Ok(mut slot) = reader.slot.try_lock() else {
            continue; // in use, so not idle
        };
        match slot.as_ref() {
            Some(process) if process.child.id() == pid => {
                if process.last_used.elapsed() >= limit {
                    tracing::debug!(git.pid = pid, "stopping an idle git cat-file");
                    *slot = None;
                    return;
                }
            }
            _ => return,
        }
    }
}

impl CatFile {
    fn start(git: &Git) -> Result<Self, GitError> {
        let home = git.private_home_without_credentials()?;
        let mut command = git.command(home.path(), &["cat-file", "--batch"]);
        // Batch mode writes to stderr only when it dies; the next request then fails.
        command.stdin(Stdio::piped()).stderr(Stdio::null());
        let mut child = command.spawn().map_err(|err| GitError::Spawn {
            message: err.to_string(),
        })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(GitError::Io {
                action: "start git cat-file".into(),
                message: "its pipes are missing".into(),
            });
        };
        tracing::debug!(git.remote = git.remote.display(), "started git cat-file");
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            _home: home,
            last_used: Instant::now(),
            mid_answer: false,
        })
    }

    /// True when the process exited or an answer was left half-read.
    fn unusable(&mut self) -> bool {
        self.mid_answer || !matches!(self.child.try_wait(), Ok(None))
    }
}

impl ObjectSession<'_> {
    /// The object `spec` names (`<oid>`, `<rev>:<path>`, `<oid>^{tree}`), or `None` when
    /// the repository has none; its bytes only when at most `max_bytes`.
    pub(crate) async fn read(
        &mut self,
        spec: &str,
        max_bytes: usize,
    ) -> Result<Option<Object>, GitError> {
        let timeout = self.git.timeout.min(READ_TIMEOUT);
        let Some(process) = self.guard.as_mut() else {
            return Err(broken("the process was stopped after an earlier error"));
        };
        let answer = tokio::time::timeout(timeout, process.request(spec, max_bytes)).await;
        let result = match answer {
            Ok(result) => result,
            Err(_) => Err(GitError::Timeout {
                action: "read an object".into(),
                remote: self.git.remote.display().to_owned(),
                secs: timeout.as_secs(),
            }),
        };
        if result.is_err() {
            *self.guard = None; // the stream is in an unknown state
        }
        result
    }
}

impl CatFile {
    async fn request(&mut self, spec: &str, max_bytes: usize) -> Result<Option<Object>, GitError> {
        if spec.contains(['\n', '\r', '\0']) {
            return Err(broken("a request held a line break"));
        }
        self.mid_answer = true;
        self.last_used = Instant::now();
        let line = format!("{spec}\n");
        self.stdin.write_all(line.as_bytes()).await.map_err(io)?;
        self.stdin.flush().await.map_err(io)?;
        let mut header = Vec::new();
        (&mut self.stdout)
            .take(MAX_HEADER_BYTES)
            .read_until(b'\n', &mut header)
            .await
            .map_err(io)?;
        if header.pop() != Some(b'\n') {
            return Err(broken("git cat-file stopped or gave an overlong header"));
        }
        let header = String::from_utf8(header).map_err(|_| broken("a header is not UTF-8"))?;
        let Some((oid, kind, size)) = parse_header(&header) else {
            // `<spec> missing`, `<spec> ambiguous`: nothing follows.
            self.mid_answer = false;
            return Ok(None);
        };
        let data = self.body(size, max_bytes).await?;
        self.mid_answer = false;
        Ok(Some(Object {
            oid: oid.to_owned(),
            kind: kind.to_owned(),
            data,
        }))
    }

    /// Reads (or, above `max_bytes`, skips) `size` bytes and the newline after them.
    async fn body(&mut self, size: u64, max_bytes: usize) -> Result<Option<Vec<u8>>, GitError> {
        if size > max_bytes as u64 {
            let skip = size + 1;
            let skipped =
                tokio::io::copy(&mut (&mut self.stdout).take(skip), &mut tokio::io::sink())
                    .await
                    .map_err(io)?;
            return if skipped == skip {
                Ok(None)
            } else {
                Err(broken("git cat-file stopped mid-object"))
            };
        }
        let mut data = vec![0; size as usize + 1];
        self.stdout.read_exact(&mut data).await.map_err(io)?;
        if data.pop() != Some(b'\n') {
            return Err(broken("an object did not end with a newline"));
        }
        Ok(Some(data))
    }
}

/// `<oid> <type> <size>` → its parts; `None` for any other answer.
fn parse_header(header: &str) -> Option<(&str, &str, u64)> {
    let mut fields = header.split(' ');
    let (oid, kind, size) = (fields.next()?, fields.next()?, fields.next()?);
    let known = matches!(kind, "blob" | "tree" | "commit" | "tag");
    let size = size.parse().ok()?;
    (fields.next().is_none() && known && super::is_commit_sha(oid)).then_some((oid, kind, size))
}

fn io(err: std::io::Error) -> GitError {
    GitError::Io {
        action: "read objects through git cat-file".into(),
        message: err.to_string(),
    }
}

fn broken(message: &str) -> GitError {
    GitError::Io {
        action: "read objects through git cat-file".into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_header;

    #[test]
    fn headers_of_found_objects_parse_and_others_do_not() {
        let oid = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            parse_header(&format!("{oid} blob 12")),
            Some((oid, "blob", 12))
        );
        assert_eq!(parse_header(&format!("{oid}:a b c missing")), None);
        assert_eq!(parse_header("HEAD missing"), None);
        assert_eq!(parse_header(&format!("{oid} ambiguous")), None);
        assert_eq!(parse_header(&format!("{oid} blob -1")), None);
    }
}
