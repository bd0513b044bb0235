//! `${VAR}` substitution from the build environment.
//!
//! `${NAME}` is replaced; `$$` is a literal `$` (so `$${HOME}` reaches the shell as
//! `${HOME}`); a lone `$NAME` is left for the shell. Like Drone, a few shell operators
//! work: `${NAME:-default}`, `${NAME=default}`, `${NAME:offset}`, `${NAME:offset:length}`,
//! `${NAME#prefix}`, `${NAME##prefix}`, `${NAME%suffix}`, `${NAME%%suffix}`,
//! `${NAME/from/to}`, `${NAME//from/to}`, `${NAME^^}`, `${NAME,,}`, `${NAME^}`,
//! `${NAME,}` and `${#NAME}` (prefixes and suffixes are literal text, not patterns).
//! A default may itself hold references (`${A:-${B:-none}}`, up to 8 deep); it is
//! substituted only when it is used, as in the shell.

/// Deepest nesting of references inside defaults.
const MAX_NESTING: usize = 8;

/// A problem with one `${...}` in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset of the `$` in the string.
    pub offset: usize,
    /// The variable name (empty when the reference is malformed).
    pub name: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong with a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// The variable does not exist.
    Unknown,
    /// `${` without a closing `}` or without a valid name.
    Malformed(String),
}

/// Substitutes `text`. `lookup` gives a variable's value; names for which `keep` is true
/// are left as written (for the shell to expand at run time).
pub fn substitute(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    keep: &dyn Fn(&str) -> bool,
) -> Result<String, Vec<Problem>> {
    substitute_nested(text, lookup, keep, 0)
}

fn substitute_nested(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    keep: &dyn Fn(&str) -> bool,
    depth: usize,
) -> Result<String, Vec<Problem>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let consumed = if after.starts_with('$') {
            out.push('$');
            2
        } else if after.starts_with('{') {
            match reference(after, lookup, keep, depth) {
                Ok((value, len)) => {
                    out.push_str(&value);
                    len + 1
                }
                Err((name, kind, len)) => {
                    problems.push(Problem {
                        offset: offset + dollar,
                        name,
                        kind,
                    });
                    out.push_str(&rest[dollar..dollar + 1 + len]);
                    len + 1
                }
            }
        } else {
            out.push('$');
            1
        };
        offset += dollar + consumed;
        rest = &rest[dollar + consumed..];
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

type RefError = (String, ProblemKind, usize);

/// Resolves `{...}` at the start of `after`; returns the value and the bytes consumed.
fn reference(
    after: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    keep: &dyn Fn(&str) -> bool,
    depth: usize,
) -> Result<(String, usize), RefError> {
    let Some(close) = matching_close(after) else {
        return Err((
            String::new(),
            ProblemKind::Malformed("`${` has no closing `}`".into()),
            after.len(),
        ));
    };
    let inner = &after[1..close];
    let consumed = close + 1;
    let (length_of, body) = match inner.strip_prefix('#') {
        Some(body) if !body.is_empty() => (true, body),
        _ => (false, inner),
    };
    let name_len = body
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_alphanumeric() || *c == '_') || (*i == 0 && c.is_ascii_digit()))
        .map_or(body.len(), |(i, _)| i);
    let (name, operator) = body.split_at(name_len);
    if name.is_empty() {
        let message = format!("`${{{inner}}}` is not a variable reference");
        return Err((String::new(), ProblemKind::Malformed(message), consumed));
    }
    if keep(name) {
        return Ok((format!("${{{inner}}}"), consumed));
    }
    let value = lookup(name);
    if length_of {
        return match (value, operator.is_empty()) {
            (Some(v), true) => Ok((v.chars().count().to_string(), consumed)),
            (None, _) => Err((name.to_owned(), ProblemKind::Unknown, consumed)),
            (Some(_), false) => Err((name.to_owned(), malformed(inner), consumed)),
        };
    }
    let expand_default = |default: &str| -> Result<String, RefError> {
        if !default.contains("${") {
            return Ok(default.to_owned());
        }
        if depth + 1 >= MAX_NESTING {
            let message = format!("`${{{inner}}}` nests references more than {MAX_NESTING} deep");
            return Err((name.to_owned(), ProblemKind::Malformed(message), consumed));
        }
        substitute_nested(default, lookup, keep, depth + 1).map_err(|problems| {
            let first = problems.into_iter().next().map(|p| (p.name, p.kind));
            let (name, kind) = first.unwrap_or_else(|| (String::new(), malformed(inner)));
            (name, kind, consumed)
        })
    };
    match apply(name, value, operator) {
        Ok(Applied::Value(v)) => Ok((v, consumed)),
        Ok(Applied::Default(d)) => expand_default(d).map(|v| (v, consumed)),
        Err(kind) => Err((name.to_owned(), kind, consumed)),
    }
}

/// The index of the `}` closing the `{` at the start of `after`, skipping nested `${...}`
/// and `$$` escapes.
fn matching_close(after: &str) -> Option<usize> {
    let bytes = after.as_bytes();
    let mut depth = 0usize;
    let mut i = 1;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'$', Some(b'$')) => i += 1,
            (b'$', Some(b'{')) => {
                depth += 1;
                i += 1;
            }
            (b'}', _) if depth == 0 => return Some(i),
            (b'}', _) => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// What an operator produced: a value, or the default text still to substitute.
enum Applied<'a> {
    Value(String),
    Default(&'a str),
}

fn malformed(inner: &str) -> ProblemKind {
    ProblemKind::Malformed(format!(
        "`${{{inner}}}` uses an operator Gantry does not support"
    ))
}

/// Applies a shell-like operator to a variable's value (`None`: unknown variable).
fn apply<'o>(
    name: &str,
    value: Option<String>,
    operator: &'o str,
) -> Result<Applied<'o>, ProblemKind> {
    let inner = || format!("{name}{operator}");
    for default_op in [":-", ":=", "-", "="] {
        if let Some(default) = operator.strip_prefix(default_op) {
            let empty_counts = default_op.starts_with(':');
            return Ok(match value {
                Some(v) if !(empty_counts && v.is_empty()) => Applied::Value(v),
                _ => Applied::Default(default),
            });
        }
    }
    if operator.contains("${") {
        let message = format!(
            "`${{{}}}`: a reference inside a reference works only in a default (`${{A:-${{B}}}}`)",
            inner()
        );
        return Err(ProblemKind::Malformed(message));
    }
    let value = value.ok_or(ProblemKind::Unknown)?;
    let result = match operator {
        "" => value,
        "^^" => value.to_uppercase(),
        ",," => value.to_lowercase(),
        "^" => change_first(&value, true),
        "," => change_first(&value, false),
        _ => {
            return edit(&value, operator)
                .map(Applied::Value)
                .ok_or_else(|| malformed(&inner()));
        }
    };
    Ok(Applied::Value(result))
}

fn change_first(value: &str, upper: bool) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(c) if upper => c.to_uppercase().chain(chars).collect(),
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Prefix/suffix removal, replacement and substrings.
fn edit(value: &str, operator: &str) -> Option<String> {
    if let Some(prefix) = operator
        .strip_prefix("##")
        .or_else(|| operator.strip_prefix('#'))
    {
        return Some(value.strip_prefix(prefix).unwrap_or(value).to_owned());
    }
    if let Some(suffix) = operator
        .strip_prefix("%%")
        .or_else(|| operator.strip_prefix('%'))
    {
        return Some(value.strip_suffix(suffix).unwrap_or(value).to_owned());
    }
    if let Some(spec) = operator.strip_prefix("//") {
        let (from, to) = spec.split_once('/').unwrap_or((spec, ""));
        return (!from.is_empty()).then(|| value.replace(from, to));
    }
    if let Some(spec) = operator.strip_prefix('/') {
        let (from, to) = spec.split_once('/').unwrap_or((spec, ""));
        return (!from.is_empty()).then(|| value.replacen(from, to, 1));
    }
    let spec = operator.strip_prefix(':')?;
    let (start, length) = match spec.split_once(':') {
        Some((s, l)) => (
            s.trim().parse::<usize>().ok()?,
            Some(l.trim().parse::<usize>().ok()?),
        ),
        None => (spec.trim().parse::<usize>().ok()?, None),
    };
    let chars = value.chars().skip(start);
    Some(match length {
        Some(n) => chars.take(n).collect(),
        None => chars.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<String, Vec<Problem>> {
        let lookup = |name: &str| match name {
            "SHA" => Some("0123456789abcdef".to_string()),
            "TAG" => Some("v1.2.3".to_string()),
            "EMPTY" => Some(String::new()),
            "NAME" => Some("Gantry".to_string()),
            _ => None,
        };
        substitute(text, &lookup, &|name| name == "MINE")
    }

    #[test]
    fn plain_references_and_escapes() {
        assert_eq!(run("a ${SHA} b").unwrap(), "a 0123456789abcdef b");
        assert_eq!(
            run("$${HOME} $$HOME $HOME 5$").unwrap(),
            "${HOME} $HOME $HOME 5$"
        );
        assert_eq!(run("${MINE} ${MINE:-x}").unwrap(), "${MINE} ${MINE:-x}");
    }

    #[test]
    fn operators() {
        assert_eq!(run("${SHA:0:8}").unwrap(), "01234567");
        assert_eq!(run("${SHA:10}").unwrap(), "abcdef");
        assert_eq!(run("${TAG##v}").unwrap(), "1.2.3");
        assert_eq!(run("${TAG#v}").unwrap(), "1.2.3");
        assert_eq!(run("${TAG%.3}").unwrap(), "v1.2");
        assert_eq!(run("${TAG//./-}").unwrap(), "v1-2-3");
        assert_eq!(run("${TAG/./-}").unwrap(), "v1-2.3");
        assert_eq!(
            run("${NAME^^} ${NAME,,} ${NAME,}").unwrap(),
            "GANTRY gantry gantry"
        );
        assert_eq!(run("${#TAG}").unwrap(), "6");
        assert_eq!(
            run("${NOPE:-fallback} ${EMPTY:-e} ${EMPTY-e}").unwrap(),
            "fallback e "
        );
    }

    #[test]
    fn problems_have_offsets() {
        let problems = run("x ${NOPE} ${SHA} ${ALSO}").unwrap_err();
        assert_eq!(problems.len(), 2);
        assert_eq!((problems[0].offset, problems[0].name.as_str()), (2, "NOPE"));
        assert_eq!(
            (problems[1].offset, problems[1].name.as_str()),
            (17, "ALSO")
        );
        assert_eq!(problems[0].kind, ProblemKind::Unknown);
    }

    #[test]
    fn nested_defaults() {
        assert_eq!(run("${NOPE:-${TAG}}").unwrap(), "v1.2.3");
        assert_eq!(run("${NOPE:-${ALSO:-x}}!").unwrap(), "x!");
        assert_eq!(
            run("${SHA:0:4}-${EMPTY:-a${NAME}b}").unwrap(),
            "0123-aGantryb"
        );
        assert_eq!(run("${TAG:-${NOPE}}").unwrap(), "v1.2.3");
        let problems = run("x ${NOPE:-${ALSO}}").unwrap_err();
        assert_eq!((problems[0].offset, problems[0].name.as_str()), (2, "ALSO"));
        assert!(matches!(
            run("${TAG/${SHA}/x}").unwrap_err()[0].kind,
            ProblemKind::Malformed(_)
        ));
        let deep = format!("{}x{}", "${NOPE:-".repeat(20), "}".repeat(20));
        assert!(matches!(
            run(&deep).unwrap_err()[0].kind,
            ProblemKind::Malformed(_)
        ));
        assert!(run("${NOPE:-${").is_err());
    }

    #[test]
    fn malformed_references() {
        for bad in ["${", "${}", "${1A}", "${ SHA}", "${SHA:x}", "${SHA@Q}"] {
            let problems = run(bad).unwrap_err();
            assert!(
                matches!(problems[0].kind, ProblemKind::Malformed(_)),
                "{bad}"
            );
        }
    }
}
