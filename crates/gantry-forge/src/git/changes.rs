//! The files a push or a pull request changed, for `when: path` conditions.

use super::fetch::{
    deepen, ensure_commit, full_fetch, has_commit, is_shallow, is_shallow_boundary, unshallow,
};
use super::{CommitCheckout, GitError, is_commit_sha};
use crate::event::is_zero_sha;

/// How far history is deepened, step by step, looking for a merge base before giving up on
/// shallow history and fetching all of it.
const DEEPEN_STEPS: [u32; 4] = [16, 64, 256, 1024];

/// `git diff-tree` listing changed paths only, NUL-separated, renames as delete + add.
pub(super) const DIFF_NAMES: [&str; 6] = [
    "diff-tree",
    "-r",
    "-z",
    "--name-only",
    "--no-renames",
    "--no-commit-id",
];

impl CommitCheckout {
    /// Files changed by a push from `before` to `after` (sorted, renames as delete + add).
    ///
    /// When `before` is empty, all zeros (a new branch) or no longer exists (a force push
    /// dropped it), the files changed by the `after` commit alone are returned.
    pub async fn changed_files(&self, before: &str, after: &str) -> Result<Vec<String>, GitError> {
        let after = sha_arg(after)?;
        let before_known = !before.is_empty() && !is_zero_sha(before) && is_commit_sha(before);
        let before = before.to_ascii_lowercase();
        // Usually both commits are at hand (consecutive pushes, local repositories): one call.
        if before_known && let Some(names) = self.try_diff_names(&before, &after).await? {
            return Ok(names);
        }
        let _guard = self.lock.lock().await;
        ensure_commit(&self.git, &after, 1).await?;
        if !before_known {
            return self.files_of_commit(&after).await;
        }
        if let Err(err) = ensure_commit(&self.git, &before, 1).await {
            tracing::debug!(git.sha = before.as_str(), error = %err, "push base is gone; using the head commit alone");
            return self.files_of_commit(&after).await;
        }
        // Two trees are enough for a push: no history walk, so no deepening needed.
        self.diff_names(&before, &after).await
    }

    /// Files a pull request changes: `head` against its merge base with `base`.
    ///
    /// `base` is the target's SHA, or — for forges whose hook carries none (GitLab) — the
    /// target branch name, fetched here. History is deepened until a merge base appears;
    /// with unrelated histories the two trees are compared directly.
    pub async fn changed_files_against_base(
        &self,
        base: &str,
        head: &str,
    ) -> Result<Vec<String>, GitError> {
        let head = sha_arg(head)?;
        let _guard = self.lock.lock().await;
        let base = self.resolve_base(base).await?;
        ensure_commit(&self.git, &head, 1).await?;
        ensure_commit(&self.git, &base, 1).await?;
        let merge_base = match self.merge_base(&base, &head).await? {
            Some(found) => Some(found),
            None => self.deepen_to_merge_base(&base, &head).await?,
        };
        self.diff_names(merge_base.as_deref().unwrap_or(&base), &head)
            .await
    }

    async fn deepen_to_merge_base(
        &self,
        base: &str,
        head: &str,
    ) -> Result<Option<String>, GitError> {
        for step in DEEPEN_STEPS {
            if !is_shallow(&self.git) {
                return Ok(None);
            }
            if deepen(&self.git, &[base, head], step).await.is_err() {
                break;
            }
            if let Some(found) = self.merge_base(base, head).await? {
                return Ok(Some(found));
            }
        }
        if is_shallow(&self.git) {
            unshallow(&self.git, &[base, head]).await?;
        }
        self.merge_base(base, head).await
    }

    async fn merge_base(&self, base: &str, head: &str) -> Result<Option<String>, GitError> {
        let output = self
            .git
            .output("find the merge base", &["merge-base", base, head])
            .await?;
        let found = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok((output.status.success() && is_commit_sha(&found)).then_some(found))
    }

    /// A base given as a SHA is used as is; a branch name is fetched and resolved.
    async fn resolve_base(&self, base: &str) -> Result<String, GitError> {
        if is_commit_sha(base) {
            return Ok(base.to_ascii_lowercase());
        }
        let invalid = |reason| GitError::InvalidArgument {
            what: "branch",
            value: base.chars().take(200).collect(),
            reason,
        };
        if base.is_empty() || base.starts_with('-') {
            return Err(invalid("it is empty or starts with `-`"));
        }
        let checked = self
            .git
            .output(
                "check a branch name",
                &["check-ref-format", "--branch", base],
            )
            .await?;
        if !checked.status.success() {
            return Err(invalid("it is not a valid branch name"));
        }
        if self.git.read_only {
            let branch = format!("refs/heads/{base}");
            let sha = self
                .git
                .run(
                    "resolve the base branch",
                    &["rev-parse", "--verify", &branch],
                )
                .await?;
            return Ok(String::from_utf8_lossy(&sha).trim().to_owned());
        }
        let local = format!("refs/gantry/branches/{base}");
        let refspec = format!("+refs/heads/{base}:{local}");
        let args = [
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--depth=1",
            self.git.remote.as_git_arg(),
            &refspec,
        ];
        if self.git.run("fetch the base branch", &args).await.is_err() {
            full_fetch(&self.git).await?;
            let branch = format!("refs/heads/{base}");
            self.git
                .run("fetch the base branch", &["update-ref", &local, &branch])
                .await?;
        }
        let sha = self
            .git
            .run(
                "resolve the base branch",
                &["rev-parse", "--verify", &local],
            )
            .await?;
        Ok(String::from_utf8_lossy(&sha).trim().to_owned())
    }

    /// Files the commit itself changed: against its first parent, or all its files when it
    /// has none (a root commit, or history we cannot deepen).
    async fn files_of_commit(&self, sha: &str) -> Result<Vec<String>, GitError> {
        let mut parent = self.first_parent(sha).await?;
        if parent.is_none()
            && self.is_shallow_boundary(sha)
            && deepen(&self.git, &[sha], 1).await.is_ok()
        {
            parent = self.first_parent(sha).await?;
        }
        match parent {
            Some(parent) => self.diff_names(&parent, sha).await,
            None => {
                let out = self
                    .git
                    .run(
                        "list the commit's files",
                        &["ls-tree", "-r", "-z", "--name-only", sha],
                    )
                    .await?;
                Ok(names(&out))
            }
        }
    }

    async fn first_parent(&self, sha: &str) -> Result<Option<String>, GitError> {
        let spec = format!("{sha}^1");
        let output = self
            .git
            .output(
                "find the parent commit",
                &["rev-parse", "--verify", "--quiet", &spec],
            )
            .await?;
        let parent = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if output.status.success()
            && is_commit_sha(&parent)
            && has_commit(&self.git, &parent).await?
        {
            Ok(Some(parent))
        } else {
            Ok(None)
        }
    }

    fn is_shallow_boundary(&self, sha: &str) -> bool {
        is_shallow_boundary(&self.git, sha)
    }

    /// The diff when both commits are already present, else `None`.
    async fn try_diff_names(&self, from: &str, to: &str) -> Result<Option<Vec<String>>, GitError> {
        let args = [DIFF_NAMES.as_slice(), &[from, to]].concat();
        let output = self.git.output("list changed files", &args).await?;
        Ok(output.status.success().then(|| names(&output.stdout)))
    }

    async fn diff_names(&self, from: &str, to: &str) -> Result<Vec<String>, GitError> {
        let args = [DIFF_NAMES.as_slice(), &[from, to]].concat();
        Ok(names(&self.git.run("list changed files", &args).await?))
    }
}

fn sha_arg(sha: &str) -> Result<String, GitError> {
    if is_commit_sha(sha) {
        Ok(sha.to_ascii_lowercase())
    } else {
        Err(GitError::InvalidSha(sha.chars().take(80).collect()))
    }
}

/// NUL-separated paths → sorted, unique strings.
pub(super) fn names(out: &[u8]) -> Vec<String> {
    let mut list: Vec<String> = out
        .split(|b| *b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect();
    list.sort();
    list.dedup();
    list
}
