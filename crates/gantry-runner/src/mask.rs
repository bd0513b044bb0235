//! Secret masking: every secret value is replaced by `********` before a line or an error
//! message leaves the runtime.
//!
//! Masking works on whole lines (after [`crate::lines`] reassembled them), so a secret that
//! the backend delivered split across two chunks is still found. A multi-line secret is
//! masked line by line: each of its lines is a pattern of its own, because log lines never
//! contain a newline. Overlapping matches of different secrets are masked as their union.
//!
//! Values (or lines of values) shorter than [`MIN_SECRET_CHARS`] characters, ignoring
//! surrounding whitespace, are not masked: replacing every `a` or `ok` in a log would make
//! it unreadable and would tell a reader the secret's value anyway.

use std::borrow::Cow;
use std::ops::Range;

use aho_corasick::AhoCorasick;

/// What replaces a secret.
pub const MASK: &str = "********";

/// Secret lines shorter than this many characters (after trimming) are not masked.
pub const MIN_SECRET_CHARS: usize = 3;

/// Finds and replaces secret values in text.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// The searcher over `patterns`; `None` when there is nothing to mask or when building
    /// it failed (then `patterns` is searched one by one).
    finder: Option<AhoCorasick>,
    patterns: Vec<String>,
}

impl Masker {
    /// A masker for these secret values.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut patterns: Vec<String> = secrets
            .into_iter()
            .flat_map(|value| value.split('\n'))
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            // A pasted value often carries stray spaces that a shell's `echo $X` drops: mask
            // the trimmed form too.
            .flat_map(|line| [line, line.trim()])
            .filter(|line| line.trim().chars().count() >= MIN_SECRET_CHARS)
            .map(str::to_owned)
            .collect();
        patterns.sort();
        patterns.dedup();
        let finder = if patterns.is_empty() {
            None
        } else {
            AhoCorasick::new(&patterns).ok()
        };
        Self { finder, patterns }
    }

    /// True when nothing would ever be masked.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Length in bytes of the longest pattern (0 without patterns).
    pub fn longest_pattern(&self) -> usize {
        self.patterns.iter().map(String::len).max().unwrap_or(0)
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.is_empty() {
            return Cow::Borrowed(text);
        }
        let ranges = self.secret_ranges(text.as_bytes());
        if ranges.is_empty() {
            return Cow::Borrowed(text);
        }
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0;
        for range in ranges {
            out.extend_from_slice(&bytes[at..range.start]);
            out.extend_from_slice(MASK.as_bytes());
            at = range.end;
        }
        out.extend_from_slice(&bytes[at..]);
        // Matches of UTF-8 patterns in UTF-8 text start and end on character boundaries,
        // so this is always valid; lossy decoding keeps it panic-free regardless.
        Cow::Owned(
            String::from_utf8(out)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        )
    }

    /// True when `haystack` contains a secret. Patterns hold no newline, so a text of many
    /// lines without a secret has no line with one: one search can clear a whole chunk.
    pub fn contains_secret(&self, haystack: &[u8]) -> bool {
        match &self.finder {
            Some(finder) => finder.is_match(haystack),
            None => !self.is_empty() && !self.search_one_by_one(haystack).is_empty(),
        }
    }

    /// Byte ranges of `haystack` covered by a secret, sorted, overlaps merged.
    pub(crate) fn secret_ranges(&self, haystack: &[u8]) -> Vec<Range<usize>> {
        let mut found: Vec<Range<usize>> = match &self.finder {
            // Most lines hold no secret: the prefiltered check rejects them quickly.
            Some(finder) if !finder.is_match(haystack) => return Vec::new(),
            Some(finder) => finder
                .find_overlapping_iter(haystack)
                .map(|m| m.range())
                .collect(),
            None => self.search_one_by_one(haystack),
        };
        if found.is_empty() {
            return found;
        }
        found.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(found.len());
        for range in found {
            match merged.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        merged
    }

    /// Fallback when the automaton could not be built (enormous secret sets).
    fn search_one_by_one(&self, haystack: &[u8]) -> Vec<Range<usize>> {
        let mut found = Vec::new();
        for pattern in &self.patterns {
            let needle = pattern.as_bytes();
            let mut start = 0;
            while let Some(pos) = haystack
                .get(start..)
                .and_then(|rest| rest.windows(needle.len()).position(|w| w == needle))
            {
                found.push(start + pos..start + pos + needle.len());
                start += pos + 1;
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sec_09_a_secret_with_surrounding_spaces_is_masked_as_printed_by_a_shell() {
        let masker = Masker::new([" hunter2 \t"]);
        assert_eq!(masker.mask("token=hunter2."), "token=********.");
        assert_eq!(masker.mask("x  hunter2 \t y"), "x ******** y");
    }

    #[test]
    fn masks_every_occurrence() {
        let m = Masker::new(["hunter2"]);
        assert_eq!(
            m.mask("pw=hunter2 again hunter2"),
            "pw=******** again ********"
        );
    }

    #[test]
    fn leaves_text_without_secrets_borrowed() {
        let m = Masker::new(["hunter2"]);
        assert!(matches!(m.mask("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn sec_09_multi_line_secret_is_masked_line_by_line() {
        let m = Masker::new(["-----BEGIN KEY-----\r\nMIIBOgIBAAJBAK\n-----END KEY-----\n"]);
        assert_eq!(m.mask("-----BEGIN KEY-----"), MASK);
        assert_eq!(m.mask("  MIIBOgIBAAJBAK"), format!("  {MASK}"));
        assert_eq!(m.mask("-----END KEY-----"), MASK);
    }

    #[test]
    fn short_values_are_not_masked() {
        let m = Masker::new(["", "ab", "  x  ", "abc"]);
        assert_eq!(m.mask("ab x abc"), format!("ab x {MASK}"));
    }

    #[test]
    fn overlapping_secrets_are_masked_as_their_union() {
        let m = Masker::new(["abcd", "cdef"]);
        assert_eq!(m.mask("xabcdefy"), format!("x{MASK}y"));
    }

    #[test]
    fn unicode_secret_next_to_unicode_text() {
        let m = Masker::new(["pässwörd"]);
        assert_eq!(m.mask("ünpässwördé"), format!("ün{MASK}é"));
    }

    #[test]
    fn fallback_search_matches_the_automaton() {
        let m = Masker::new(["abcd", "cdef"]);
        let fallback = Masker {
            finder: None,
            patterns: m.patterns.clone(),
        };
        let text = b"abcdef abcd cdef";
        let mut merged = fallback.secret_ranges(text);
        merged.dedup();
        assert_eq!(merged, m.secret_ranges(text));
    }
}
