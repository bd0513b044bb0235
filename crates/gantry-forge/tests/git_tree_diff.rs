//! The changed files `read_commit` compares in-process from tree objects are exactly what
//! `git diff-tree -r --name-only --no-renames` lists, over a history with adds, deletes,
//! nested directories, mode changes, symbolic links, submodules, renames, files and
//! directories swapping places, and a merge — and no git process is started to get them.

mod common;

use std::path::Path;

use common::log_capture::LogCapture;
use common::{Repo, ZERO, git, within};
use gantry_forge::{ChangeRange, DEFAULT_CONFIG_NAMES, GitCache};

const PIPELINE: &str = "steps:\n  - name: t\n    image: busybox\n";

/// Writes `text` at `path` in the work tree (directories made as needed).
fn write(work: &Path, path: &str, text: &str) {
    let full = work.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, text).unwrap();
}

/// Commits whatever the work tree holds now and pushes it; returns the SHA.
fn commit(repo: &Repo, message: &str) -> String {
    repo.commit(message, &[])
}

/// A history touching every kind of change diff-tree reports; returns its commits in order.
fn varied_history(repo: &Repo) -> Vec<String> {
    let w = &repo.work;
    let mut shas = Vec::new();
    write(w, ".pipeline.yml", PIPELINE);
    for (path, text) in [
        ("a.txt", "a"),
        ("dir/b.txt", "b"),
        ("dir/sub/c.txt", "c"),
        ("x", "file"),
        ("run.sh", "echo"),
        ("name with space.txt", "s"),
    ] {
        write(w, path, text);
    }
    shas.push(commit(repo, "root"));
    write(w, "dir/sub/deep/d.txt", "d");
    write(w, "new/e.txt", "e");
    write(w, "a.txt", "a2");
    shas.push(commit(repo, "nested adds and a change"));
    std::fs::remove_file(w.join("dir/sub/c.txt")).unwrap();
    std::fs::remove_dir_all(w.join("new")).unwrap();
    shas.push(commit(repo, "deletes"));
    git(w, &["update-index", "--chmod=+x", "run.sh"]);
    git(w, &["commit", "-q", "-m", "mode change"]);
    git(w, &["push", "-q", "--all", "origin"]);
    shas.push(git(w, &["rev-parse", "HEAD"]));
    std::fs::remove_file(w.join("x")).unwrap();
    write(w, "x/inner.txt", "now a directory");
    shas.push(commit(repo, "file becomes a directory"));
    std::fs::remove_dir_all(w.join("dir/sub")).unwrap();
    write(w, "dir/sub", "now a file");
    shas.push(commit(repo, "directory becomes a file"));
    std::os::unix::fs::symlink("a.txt", w.join("link")).unwrap();
    shas.push(commit(repo, "a symbolic link"));
    std::fs::remove_file(w.join("link")).unwrap();
    std::os::unix::fs::symlink("dir/b.txt", w.join("link")).unwrap();
    shas.push(commit(repo, "the link points elsewhere"));
    for (id, message) in [("1", "a submodule"), ("2", "the submodule moves on")] {
        let cacheinfo = format!("160000,{},vendor/lib", id.repeat(40));
        git(w, &["update-index", "--add", "--cacheinfo", &cacheinfo]);
        git(w, &["commit", "-q", "-m", message]);
        shas.push(git(w, &["rev-parse", "HEAD"]));
    }
    git(w, &["mv", "a.txt", "renamed.txt"]);
    shas.push(commit(repo, "a rename"));
    shas.push(merged_side_branch(repo));
    shas
}

/// Merges a side branch (made from two commits back) into main; returns the merge.
fn merged_side_branch(repo: &Repo) -> String {
    let w = &repo.work;
    git(w, &["checkout", "-q", "-b", "side", "HEAD~2"]);
    write(w, "side/f.txt", "f");
    commit(repo, "side work");
    git(w, &["checkout", "-q", "main"]);
    git(w, &["merge", "-q", "--no-ff", "--no-edit", "side"]);
    git(w, &["push", "-q", "--all", "origin"]);
    git(w, &["rev-parse", "HEAD"])
}

/// What diff-tree lists: from `before` to `after`, or the commit against its first parent.
fn diff_tree(repo: &Repo, before: Option<&str>, after: &str) -> Vec<String> {
    let mut args = vec!["diff-tree", "-r", "-z", "--name-only", "--no-renames"];
    args.push("--no-commit-id");
    match before {
        Some(before) => args.extend([before, after]),
        None => args.extend(["--root", "--diff-merges=first-parent", after]),
    }
    let out = git(&repo.bare, &args);
    let mut names: Vec<String> = out
        .split('\0')
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

async fn read_changes(cache: &GitCache, url: &str, sha: &str, before: &str) -> Vec<String> {
    let facts = cache
        .read_commit(
            url,
            sha,
            None,
            &DEFAULT_CONFIG_NAMES,
            ChangeRange::Push { before },
        )
        .await
        .unwrap();
    assert_eq!(facts.config.unwrap().text, PIPELINE);
    facts.changed_files.expect("asked for").unwrap()
}

#[tokio::test]
async fn in_process_changes_match_diff_tree_on_a_varied_history() {
    within(async {
        let repo = Repo::new("app");
        let shas = varied_history(&repo);
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path()).unwrap();
        let url = repo.file_url();
        // The only test in this file: tracing's per-callsite cache can miss events of a
        // thread-local subscriber while other tests run.
        let (logs, _guard) = LogCapture::install();
        let mut compared = 0;
        for (i, after) in shas.iter().enumerate() {
            // Each commit alone (a new branch), then against every earlier commit.
            let alone = read_changes(&cache, &url, after, ZERO).await;
            assert_eq!(alone, diff_tree(&repo, None, after), "commit {i} alone");
            for (j, before) in shas[..i].iter().enumerate() {
                let files = read_changes(&cache, &url, after, before).await;
                assert_eq!(files, diff_tree(&repo, Some(before), after), "{j} -> {i}");
                compared += 1;
            }
            // Backwards too: what a force push to an older commit changed.
            if i > 0 {
                let back = read_changes(&cache, &url, &shas[0], after).await;
                assert_eq!(back, diff_tree(&repo, Some(after), &shas[0]), "{i} -> 0");
            }
        }
        assert!(compared > 50, "{compared}");
        // The merge pushed as a new branch: against its first parent only.
        let merge = shas.last().unwrap();
        assert_eq!(
            read_changes(&cache, &url, merge, ZERO).await,
            ["side/f.txt"]
        );
        let text = logs.text();
        assert!(
            !text.contains("running git"),
            "every answer came from the cat-file process:\n{text}"
        );
        assert_eq!(text.matches("started git cat-file").count(), 1, "{text}");
    })
    .await;
}
