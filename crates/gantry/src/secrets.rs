//! `--secret NAME=VALUE`, `--secrets-file FILE` and `--env NAME=VALUE` parsing.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};

/// Splits `NAME=VALUE`, checking the name. `what` names the flag for the error.
pub fn parse_pair(pair: &str, what: &str) -> anyhow::Result<(String, String)> {
    let Some((name, value)) = pair.split_once('=') else {
        bail!("{what} `{pair}` has no `=`: write it as NAME=VALUE");
    };
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("{what} name `{name}` is not valid: use letters, digits and `_`");
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Reads a secrets file: `NAME=VALUE` per line, `#` comments and blank lines ignored;
/// a value in double quotes may use `\n`, `\"` and `\\` escapes (for multi-line secrets).
pub fn read_secrets_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read secrets file {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = parse_pair(line, "secret")
            .with_context(|| format!("{}:{}", path.display(), index + 1))?;
        let value = unquote(&value)
            .with_context(|| format!("{}:{}: bad quoting", path.display(), index + 1))?;
        out.insert(name, value);
    }
    Ok(out)
}

fn unquote(value: &str) -> anyhow::Result<String> {
    let trimmed = value.trim_end();
    let Some(inner) = trimmed.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return Ok(value.to_owned());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(c @ ('"' | '\\')) => out.push(c),
            other => bail!("unknown escape `\\{}`", other.unwrap_or(' ')),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_files() {
        assert_eq!(
            parse_pair("A_1=x=y", "secret").unwrap(),
            ("A_1".into(), "x=y".into())
        );
        assert!(parse_pair("novalue", "secret").is_err());
        assert!(parse_pair("bad-name=1", "secret").is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.env");
        std::fs::write(&file, "# c\n\nTOKEN=abc\nKEY=\"l1\\nl2\"\n").unwrap();
        let map = read_secrets_file(&file).unwrap();
        assert_eq!(map["TOKEN"], "abc");
        assert_eq!(map["KEY"], "l1\nl2");
    }
}
