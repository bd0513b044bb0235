//! Getting commits into the bare cache: by SHA and shallow when the server allows it, by a
//! full fetch of branches, tags and pull-request heads when it does not (dumb HTTP, old
//! servers, `uploadpack.allowReachableSHA1InWant` off with protocol v0).

use super::GitError;
use super::command::Git;

/// Refs a full fetch mirrors: enough to reach any pushed commit or pull-request head.
const FULL_REFSPECS: [&str; 4] = [
    "+refs/heads/*:refs/heads/*",
    "+refs/tags/*:refs/tags/*",
    "+refs/pull/*/head:refs/pull/*/head",
    "+refs/merge-requests/*/head:refs/merge-requests/*/head",
];

/// Creates the bare repository once; a half-made one (no HEAD) is made again.
pub(super) async fn ensure_bare(git: &Git) -> Result<(), GitError> {
    if git.repo.join("HEAD").is_file() {
        return Ok(());
    }
    let repo = git.repo.to_string_lossy().into_owned();
    // `--git-dir` is ignored by init when a directory is given.
    git.run(
        "create the cache repository",
        &["init", "--bare", "--quiet", &repo],
    )
    .await?;
    Ok(())
}

/// The commit `sha` names (a tag object peeled), if the repository holds it.
pub(super) async fn commit_of(git: &Git, sha: &str) -> Result<Option<String>, GitError> {
    let object = format!("{sha}^{{commit}}");
    let args = [
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        &object,
    ];
    let output = git.output("look up a commit", &args).await?;
    let commit = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok((output.status.success() && super::is_commit_sha(&commit)).then_some(commit))
}

/// True when the repository holds the commit.
pub(super) async fn has_commit(git: &Git, sha: &str) -> Result<bool, GitError> {
    Ok(commit_of(git, sha).await?.is_some())
}

/// True when the repository's history is cut (it has a `shallow` file).
pub(super) fn is_shallow(git: &Git) -> bool {
    git.repo.join("shallow").is_file()
}

/// True when the history is cut at `sha` (its parents were not fetched).
pub(super) fn is_shallow_boundary(git: &Git, sha: &str) -> bool {
    std::fs::read_to_string(git.repo.join("shallow"))
        .is_ok_and(|list| list.lines().any(|line| line.trim() == sha))
}

/// Makes sure `sha` is in the cache, fetching it `depth` deep (or everything); returns the
/// commit it names.
pub(super) async fn ensure_commit(git: &Git, sha: &str, depth: u32) -> Result<String, GitError> {
    if let Some(commit) = commit_of(git, sha).await? {
        return Ok(commit);
    }
    if git.read_only {
        return Err(GitError::CommitNotFound {
            sha: sha.to_owned(),
            remote: git.remote.display().to_owned(),
            detail: "the local repository does not hold it".into(),
        });
    }
    let detail = match fetch_by_sha(git, sha, depth).await {
        Ok(()) => match commit_of(git, sha).await? {
            Some(commit) => return Ok(commit),
            None => "the fetch succeeded but did not bring the commit".to_owned(),
        },
        Err(err @ GitError::Timeout { .. }) => return Err(err),
        Err(err) => err.to_string(),
    };
    tracing::debug!(
        git.remote = git.remote.display(),
        git.sha = sha,
        "fetch by SHA refused; fetching all refs"
    );
    let full = full_fetch(git).await;
    if let Some(commit) = commit_of(git, sha).await? {
        pin(git, sha).await?;
        return Ok(commit);
    }
    let detail = match full {
        Ok(()) => detail,
        Err(GitError::Failed { stderr, .. }) if is_auth_failure(&stderr) => {
            return Err(GitError::AccessDenied {
                remote: git.remote.display().to_owned(),
                detail: stderr,
            });
        }
        Err(err) => format!("{detail}; then a full fetch: {err}"),
    };
    Err(GitError::CommitNotFound {
        sha: sha.to_owned(),
        remote: git.remote.display().to_owned(),
        detail,
    })
}

/// git's ways of saying the server wants (other) credentials.
fn is_auth_failure(stderr: &str) -> bool {
    [
        "Authentication failed",
        "could not read Username",
        "could not read Password",
        "HTTP 401",
        "HTTP 403",
    ]
    .iter()
    .any(|sign| stderr.contains(sign))
}

/// `git fetch --depth=N <url> +<sha>:refs/gantry/<sha>`: one commit, pinned by a ref so it
/// survives any later pruning.
async fn fetch_by_sha(git: &Git, sha: &str, depth: u32) -> Result<(), GitError> {
    let depth = format!("--depth={depth}");
    let refspec = format!("+{sha}:refs/gantry/{sha}");
    let args = [
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        &depth,
        git.remote.as_git_arg(),
        &refspec,
    ];
    git.run("fetch the commit", &args).await.map(drop)
}

/// Fetches every branch, tag and pull-request head (whole history).
pub(super) async fn full_fetch(git: &Git) -> Result<(), GitError> {
    let mut args = vec!["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"];
    if is_shallow(git) {
        args.push("--unshallow");
    }
    args.push(git.remote.as_git_arg());
    args.extend(FULL_REFSPECS);
    git.run("fetch all branches and tags", &args)
        .await
        .map(drop)
}

/// Fetches `count` more commits of history behind each of `shas`.
pub(super) async fn deepen(git: &Git, shas: &[&str], count: u32) -> Result<(), GitError> {
    let deepen = format!("--deepen={count}");
    let refspecs: Vec<String> = shas
        .iter()
        .map(|sha| format!("+{sha}:refs/gantry/{sha}"))
        .collect();
    let mut args = vec![
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        &deepen,
        git.remote.as_git_arg(),
    ];
    args.extend(refspecs.iter().map(String::as_str));
    git.run("deepen the history", &args).await.map(drop)
}

/// Fetches all of the history of `shas` (drops the shallow cut).
pub(super) async fn unshallow(git: &Git, shas: &[&str]) -> Result<(), GitError> {
    let refspecs: Vec<String> = shas
        .iter()
        .map(|sha| format!("+{sha}:refs/gantry/{sha}"))
        .collect();
    let mut args = vec![
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--unshallow",
        git.remote.as_git_arg(),
    ];
    args.extend(refspecs.iter().map(String::as_str));
    git.run("fetch the whole history", &args).await.map(drop)
}

/// Keeps a commit reachable from `refs/gantry/<sha>`.
async fn pin(git: &Git, sha: &str) -> Result<(), GitError> {
    let name = format!("refs/gantry/{sha}");
    git.run("pin the commit", &["update-ref", &name, sha])
        .await
        .map(drop)
}
