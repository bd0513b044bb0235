//! The files a push changed, compared in-process from commit and tree objects read through
//! the repository's `cat-file` process: the list `git diff-tree -r --name-only
//! --no-renames` gives, without starting a process per hook.
//!
//! Trees are compared entry by entry (name, mode, object id); an entry that is a tree on
//! one side only is listed file by file (a file replaced by a directory is the file deleted
//! and every file under the directory added); a submodule is one entry, as in diff-tree.
//! Anything unexpected — an object missing, a malformed tree, a walk beyond its bounds —
//! gives `None`, and the caller falls back to `git diff-tree`.

use std::collections::BTreeMap;

use super::command::Git;
use super::facts::ChangeRange;
use super::fetch::is_shallow_boundary;
use super::is_commit_sha;
use super::objects::ObjectSession;
use crate::event::is_zero_sha;

/// Largest commit object read (its header holds the tree and the parents).
const MAX_COMMIT_BYTES: usize = 1024 * 1024;
/// Largest tree object read.
const MAX_TREE_BYTES: usize = 8 * 1024 * 1024;
/// Most trees one comparison reads.
const MAX_TREES: usize = 20_000;
/// Most tree entries one comparison looks at.
const MAX_ENTRIES: usize = 500_000;

/// Git's mode for a directory, a symbolic link, a submodule and a regular file.
const MODE_TREE: u32 = 0o040000;
const MODE_LINK: u32 = 0o120000;
const MODE_SUBMODULE: u32 = 0o160000;
const MODE_FILE: u32 = 0o100000;

/// Files `changes` touched at `commit` (sorted, unique), or `None` when a push's trees are
/// not both at hand or the comparison gave up: a pull request, a shallow boundary, a push
/// base the repository lacks.
pub(super) async fn push_changes(
    objects: &mut ObjectSession<'_>,
    git: &Git,
    commit: &str,
    changes: ChangeRange<'_>,
) -> Option<Vec<String>> {
    let ChangeRange::Push { before } = changes else {
        return None;
    };
    let before = before.to_ascii_lowercase();
    let old_tree = if is_commit_sha(&before) && !is_zero_sha(&before) {
        Some(tree_of(objects, &before).await?)
    } else if is_shallow_boundary(git, commit) {
        return None; // its parent must be fetched first
    } else {
        // A new branch: the commit against its first parent, all of its files for a root.
        match first_parent(objects, commit).await? {
            Some(parent) => Some(tree_of(objects, &parent).await?),
            None => None,
        }
    };
    let new_tree = tree_of(objects, commit).await?;
    let mut walk = TreeWalk {
        objects,
        hash_len: commit.len() / 2,
        trees_read: 0,
        entries_seen: 0,
        changed: Vec::new(),
    };
    walk.compare(old_tree, Some(new_tree)).await?;
    let mut changed = walk.changed;
    changed.sort();
    changed.dedup();
    Some(changed)
}

/// The tree a commit (or a tag pointing to one) holds.
async fn tree_of(objects: &mut ObjectSession<'_>, rev: &str) -> Option<String> {
    let object = objects.read(&format!("{rev}^{{tree}}"), 0).await.ok()??;
    (object.kind == "tree").then_some(object.oid)
}

/// `Some(None)` for a root commit; `None` when the commit cannot be read.
async fn first_parent(objects: &mut ObjectSession<'_>, commit: &str) -> Option<Option<String>> {
    let object = objects.read(commit, MAX_COMMIT_BYTES).await.ok()??;
    if object.kind != "commit" {
        return None;
    }
    let text = String::from_utf8_lossy(object.data.as_deref()?).into_owned();
    let header = text.split("\n\n").next().unwrap_or_default();
    let parent = header
        .lines()
        .find_map(|line| line.strip_prefix("parent "))
        .map(str::to_owned);
    match parent {
        Some(parent) if !is_commit_sha(&parent) => None,
        parent => Some(parent),
    }
}

/// One tree entry: its mode as diff-tree compares it, and its raw object id.
#[derive(PartialEq, Eq)]
struct Entry {
    mode: u32,
    oid: Vec<u8>,
}

struct TreeWalk<'s, 'a> {
    objects: &'s mut ObjectSession<'a>,
    /// Bytes in a raw object id (20 for SHA-1, 32 for SHA-256).
    hash_len: usize,
    trees_read: usize,
    entries_seen: usize,
    changed: Vec<String>,
}

impl TreeWalk<'_, '_> {
    /// Lists every file that differs between two trees (`None`: no tree on that side).
    async fn compare(&mut self, old: Option<String>, new: Option<String>) -> Option<()> {
        let mut pending = vec![(Vec::new(), old, new)];
        while let Some((prefix, old, new)) = pending.pop() {
            if old == new {
                continue;
            }
            let old = self.entries(old.as_deref()).await?;
            let new = self.entries(new.as_deref()).await?;
            let names: std::collections::BTreeSet<&Vec<u8>> =
                old.keys().chain(new.keys()).collect();
            for name in names {
                let (before, after) = (old.get(name), new.get(name));
                if before == after {
                    continue;
                }
                let mut path = prefix.clone();
                path.extend_from_slice(name);
                let leaf = |entry: Option<&Entry>| entry.is_some_and(|e| e.mode != MODE_TREE);
                if leaf(before) || leaf(after) {
                    self.changed
                        .push(String::from_utf8_lossy(&path).into_owned());
                }
                let subtree = |entry: Option<&Entry>| {
                    entry
                        .filter(|e| e.mode == MODE_TREE)
                        .map(|e| hex::encode(&e.oid))
                };
                let (old_sub, new_sub) = (subtree(before), subtree(after));
                if old_sub.is_some() || new_sub.is_some() {
                    path.push(b'/');
                    pending.push((path, old_sub, new_sub));
                }
            }
        }
        Some(())
    }

    /// A tree's entries by name (none for `None`), within the walk's bounds.
    async fn entries(&mut self, tree: Option<&str>) -> Option<BTreeMap<Vec<u8>, Entry>> {
        let Some(tree) = tree else {
            return Some(BTreeMap::new());
        };
        self.trees_read += 1;
        if self.trees_read > MAX_TREES {
            return None;
        }
        let object = self.objects.read(tree, MAX_TREE_BYTES).await.ok()??;
        if object.kind != "tree" {
            return None;
        }
        let entries = parse_tree(object.data.as_deref()?, self.hash_len)?;
        self.entries_seen += entries.len();
        (self.entries_seen <= MAX_ENTRIES).then_some(entries)
    }
}

/// `<octal mode> <name>\0<raw id>`, repeated; `None` when malformed.
fn parse_tree(mut data: &[u8], hash_len: usize) -> Option<BTreeMap<Vec<u8>, Entry>> {
    let mut entries = BTreeMap::new();
    while !data.is_empty() {
        let space = data.iter().position(|b| *b == b' ')?;
        let mode = std::str::from_utf8(&data[..space]).ok()?;
        let mode = u32::from_str_radix(mode, 8).ok()?;
        let rest = &data[space + 1..];
        let nul = rest.iter().position(|b| *b == 0)?;
        let name = &rest[..nul];
        if name.is_empty() || name.contains(&b'/') {
            return None;
        }
        let oid = rest.get(nul + 1..nul + 1 + hash_len)?;
        let entry = Entry {
            mode: canonical_mode(mode),
            oid: oid.to_vec(),
        };
        entries.insert(name.to_vec(), entry);
        data = &rest[nul + 1 + hash_len..];
    }
    Some(entries)
}

/// The mode as git compares it: a file is only executable or not; an unknown type is a
/// submodule.
fn canonical_mode(mode: u32) -> u32 {
    match mode & 0o170000 {
        MODE_TREE => MODE_TREE,
        MODE_LINK => MODE_LINK,
        MODE_FILE if mode & 0o100 != 0 => 0o100755,
        MODE_FILE => 0o100644,
        _ => MODE_SUBMODULE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mode: &str, name: &str, id: u8) -> Vec<u8> {
        let mut bytes = format!("{mode} {name}\0").into_bytes();
        bytes.extend([id; 20]);
        bytes
    }

    #[test]
    fn trees_parse_with_canonical_modes_and_malformed_ones_do_not() {
        let tree = [entry("100664", "a", 1), entry("40000", "dir", 2)].concat();
        let parsed = parse_tree(&tree, 20).unwrap();
        assert_eq!(parsed[b"a".as_slice()].mode, 0o100644);
        assert_eq!(parsed[b"dir".as_slice()].mode, MODE_TREE);
        assert!(parse_tree(&tree[..tree.len() - 1], 20).is_none());
        assert!(parse_tree(&entry("100644", "a/b", 1), 20).is_none());
        assert!(parse_tree(&entry("9", "a", 1), 20).is_none());
        assert!(parse_tree(b"100644 a", 20).is_none());
    }
}
