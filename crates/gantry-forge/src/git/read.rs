//! Reading files at the commit through the repository's long-lived `git cat-file --batch`
//! (with the commit itself when the caller does not know yet whether the repository holds
//! it).

use super::objects::{Object, ObjectSession};
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
        let mut objects = self.git.objects.session(&self.git).await?;
        let (_, files) = batch_read(&mut objects, &self.sha, None, paths).await?;
        Ok(files)
    }
}

/// Reads through the repository's `cat-file` process: first (when `commit` is given) the
/// commit that `commit` names, peeled from a tag — `None` when the repository lacks it —
/// then each path's text at `rev`, `None` where it is missing or not a file.
pub(super) async fn batch_read(
    objects: &mut ObjectSession<'_>,
    rev: &str,
    commit: Option<&str>,
    paths: &[&str],
) -> Result<(Option<String>, Vec<Option<String>>), GitError> {
    for path in paths {
        check_path(path)?;
    }
    let mut found = None;
    if let Some(commit) = commit {
        // Only the id is wanted: the bytes are skipped.
        let object = objects.read(&format!("{commit}^{{commit}}"), 0).await?;
        found = object.filter(|o| o.kind == "commit").map(|o| o.oid);
    }
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let object = objects
            .read(&format!("{rev}:{path}"), MAX_FILE_BYTES)
            .await?;
        files.push(file_text(rev, path, object)?);
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

fn file_text(sha: &str, path: &str, object: Option<Object>) -> Result<Option<String>, GitError> {
    let unreadable = |reason: String| GitError::UnreadableFile {
        path: path.to_owned(),
        sha: sha.to_owned(),
        reason,
    };
    match object {
        Some(Object {
            kind, data: None, ..
        }) if kind == "blob" => Err(unreadable(format!(
            "it is larger than {} MiB",
            MAX_FILE_BYTES >> 20
        ))),
        Some(Object {
            kind,
            data: Some(bytes),
            ..
        }) if kind == "blob" => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| unreadable("it is not UTF-8 text".into())),
        // Missing, or not a file (a directory, a submodule).
        _ => Ok(None),
    }
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
