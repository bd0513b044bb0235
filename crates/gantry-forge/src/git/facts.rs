//! Everything preparing a build reads from its commit, without starting a git process
//! when the repository already holds it.
//!
//! When the repository holds the commit (a `file://` repository read in place, or a cache
//! that fetched it before), the repository's long-lived `git cat-file --batch` answers the
//! commit and every config name, and a push's changed files are compared in-process from
//! the trees it reads. Only when the commit is missing is it fetched first, and only when
//! the in-process comparison cannot answer (a push base not at hand, a shallow boundary, a
//! pull request's merge base) does the full changed-files logic run, with `git diff-tree`.

use super::read::{batch_read, first_config};
use super::tree_diff::push_changes;
use super::{CommitCheckout, ConfigFile, GitCache, GitError, Netrc, fetched};

/// The change whose files feed the path conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRange<'a> {
    /// No files are compared (tags, manual builds).
    None,
    /// A push from `before` (empty or all zeros when unknown) to the commit.
    Push {
        /// The branch's previous commit.
        before: &'a str,
    },
    /// A pull request: the commit against its merge base with `base` (a SHA, or the
    /// target branch's name).
    PullRequest {
        /// The target's SHA or branch name.
        base: &'a str,
    },
}

/// What a build needs from its commit.
#[derive(Debug)]
pub struct CommitFacts {
    /// The commit, ready for more reads.
    pub checkout: CommitCheckout,
    /// The first config name found, or why none could be read.
    pub config: Result<ConfigFile, GitError>,
    /// The changed files (`None` for [`ChangeRange::None`]).
    pub changed_files: Option<Result<Vec<String>, GitError>>,
}

impl GitCache {
    /// Reads the first of `names` and the files `changes` touched at `sha` from
    /// `clone_url`, fetching the commit only when the repository lacks it (see
    /// [`GitCache::fetch_commit`] for fetching, `file://` and `credentials`).
    pub async fn read_commit(
        &self,
        clone_url: &str,
        sha: &str,
        credentials: Option<Netrc>,
        names: &[&str],
        changes: ChangeRange<'_>,
    ) -> Result<CommitFacts, GitError> {
        let (git, lock, sha) = self.open(clone_url, sha, credentials)?;
        let present = git.read_only || git.repo.join("HEAD").is_file();
        if present {
            let mut objects = git.objects.session(&git).await?;
            if let (Some(commit), files) = batch_read(&mut objects, &sha, Some(&sha), names).await?
            {
                let config = first_config(names, files, &commit);
                let diff = push_changes(&mut objects, &git, &commit, changes).await;
                drop(objects);
                let checkout = CommitCheckout {
                    git,
                    sha: commit,
                    lock,
                };
                let changed_files = match diff {
                    Some(files) => Some(Ok(files)),
                    None => changed_files(&checkout, changes).await,
                };
                return Ok(CommitFacts {
                    checkout,
                    config,
                    changed_files,
                });
            }
        }
        let checkout = fetched(git, lock, &sha).await?;
        let config = checkout.config(names).await;
        let changed_files = changed_files(&checkout, changes).await;
        Ok(CommitFacts {
            checkout,
            config,
            changed_files,
        })
    }
}

impl GitCache {
    /// The commit `sha` of `clone_url` when the repository at hand already holds it,
    /// else `None`: never fetches (for pages that must not wait on the network).
    pub async fn cached_commit(
        &self,
        clone_url: &str,
        sha: &str,
    ) -> Result<Option<CommitCheckout>, GitError> {
        let (git, lock, sha) = self.open(clone_url, sha, None)?;
        if !(git.read_only || git.repo.join("HEAD").is_file()) {
            return Ok(None);
        }
        let mut objects = git.objects.session(&git).await?;
        let (commit, _) = batch_read(&mut objects, &sha, Some(&sha), &[]).await?;
        drop(objects);
        Ok(commit.map(|sha| CommitCheckout { git, sha, lock }))
    }
}

/// The changed files by the full logic (fetching what it needs).
async fn changed_files(
    checkout: &CommitCheckout,
    changes: ChangeRange<'_>,
) -> Option<Result<Vec<String>, GitError>> {
    let head = checkout.sha();
    match changes {
        ChangeRange::None => None,
        ChangeRange::Push { before } => Some(checkout.changed_files(before, head).await),
        ChangeRange::PullRequest { base } => {
            Some(checkout.changed_files_against_base(base, head).await)
        }
    }
}
