//! Reading files at the commit: every name in one `git cat-file --batch` call (with the
//! commit itself when the caller does not know yet whether the repository holds it).

use super::command::Git;
use super::{CommitCheckout, ConfigFile, GitError};

/// Largest file read (bigger ones are refused, not truncated).
const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

impl CommitCheckout {
    /// The file at `path` in the commit, or `None` when there is no such file.
    pub async fn read_file(&self, path: &str) -> Result<Option<String>, GitError> {
        Ok(self.read_files(&[path]).await?.pop().flatten())
    }

    /// The first of `names` that exists at the commit, with its text.
    pub async fn config(&self, names: &[&str]) -> Result<ConfigFile, GitError> {
        let found = self.read_files(names).await?;
        first_config(names, found, &self.sha)
    }

    /// Each path's text, or `None` where it is missing or not a file.
    async fn read_files(&self, paths: &[&str]) -> Result<Vec<Option<String>>, GitError> {
        let (_, files) = batch_read(&self.git, &self.sha, None, paths).await?;
        Ok(files)
    }
}

/// One `git cat-file --batch` session: first (when `commit` is given) the commit that
/// `commit` names, peeled from a tag — `None` when the repository lacks it — then each
/// path's text at `rev`, `None` where it is missing or not a file.
pub(super) async fn batch_read(
    git: &Git,
    rev: &str,
    commit: Option<&str>,
    paths: &[&str],
) -> Result<(Option<String>, Vec<Option<String>>), GitError> {
    let mut input = String::new();
    if let Some(commit) = commit {
        input.push_str(&format!("{commit}^{{commit}}\n"));
    }
    for path in paths {
        check_path(path)?;
        input.push_str(&format!("{rev}:{path}\n"));
    }
    let output = git
        .output_with_input(
            "read files",
            &["cat-file", "--batch"],
            Some(input.as_bytes()),
        )
        .await?;
    if !output.status.success() {
        return Err(git.failure("read files", &output));
    }
    let unexpected = || GitError::Io {
        action: "read files".into(),
        message: "git cat-file gave output in an unexpected form".into(),
    };
    let mut rest = output.stdout.as_slice();
    let mut found = None;
    if commit.is_some() {
        let (entry, after) = batch_entry(rest).ok_or_else(unexpected)?;
        rest = after;
        found = match entry {
            BatchEntry::Commit(oid) if super::is_commit_sha(oid) => Some(oid.to_owned()),
            _ => None,
        };
    }
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let (entry, after) = batch_entry(rest).ok_or_else(unexpected)?;
        rest = after;
        files.push(file_text(rev, path, entry)?);
    }
    Ok((found, files))
}

/// The first of `names` that was `found`, with its text.
pub(super) fn first_config(
    names: &[&str],
    found: Vec<Option<String>>,
    sha: &str,
) -> Result<ConfigFile, GitError> {
    names
        .iter()
        .zip(found)
        .find_map(|(name, text)| {
            text.map(|text| ConfigFile {
                path: (*name).to_owned(),
                text,
            })
        })
        .ok_or_else(|| GitError::NoConfig {
            names: names.join(" or "),
            sha: sha.to_owned(),
        })
}

fn file_text(sha: &str, path: &str, entry: BatchEntry<'_>) -> Result<Option<String>, GitError> {
    let unreadable = |reason: String| GitError::UnreadableFile {
        path: path.to_owned(),
        sha: sha.to_owned(),
        reason,
    };
    match entry {
        BatchEntry::Blob(bytes) if bytes.len() > MAX_FILE_BYTES => Err(unreadable(format!(
            "it is larger than {} MiB",
            MAX_FILE_BYTES >> 20
        ))),
        BatchEntry::Blob(bytes) => String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| unreadable("it is not UTF-8 text".into())),
        BatchEntry::Commit(_) | BatchEntry::Other => Ok(None),
    }
}

/// One answer of `git cat-file --batch`.
enum BatchEntry<'a> {
    /// A file's bytes.
    Blob(&'a [u8]),
    /// A commit, by its id.
    Commit(&'a str),
    /// Missing, or not a file (a directory, a submodule).
    Other,
}

/// Splits the next answer off `out`: `<oid> <type> <size>\n<bytes>\n`, or `<name> missing\n`.
fn batch_entry(out: &[u8]) -> Option<(BatchEntry<'_>, &[u8])> {
    let newline = out.iter().position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(&out[..newline]).ok()?;
    let rest = &out[newline + 1..];
    let mut fields = header.rsplitn(3, ' ');
    let (last, kind) = (fields.next()?, fields.next()?);
    let Ok(size) = last.parse::<usize>() else {
        // `<name> missing` / `<name> ambiguous`: no body follows.
        return Some((BatchEntry::Other, rest));
    };
    let body = rest.get(..size)?;
    let after = rest.get(size + 1..)?;
    let entry = match kind {
        "blob" => BatchEntry::Blob(body),
        "commit" => BatchEntry::Commit(header.split(' ').next()?),
        _ => BatchEntry::Other,
    };
    Some((entry, after))
}

/// Refuses paths that could name something outside the commit's tree or confuse git.
fn check_path(path: &str) -> Result<(), GitError> {
    let bad = |reason| GitError::InvalidArgument {
        what: "path",
        value: path.chars().take(200).collect(),
        reason,
    };
    if path.is_empty() {
        return Err(bad("it is empty"));
    }
    if path.starts_with('/') || path.contains('\\') || path.chars().any(char::is_control) {
        return Err(bad(
            "it must be relative, with `/` separators and no control characters",
        ));
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(bad("it must not hold empty, `.` or `..` components"));
    }
    Ok(())
}
