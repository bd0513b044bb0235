//! ANSI colours of a log line into styled segments: foreground colours (SGR 30–37, 90–97),
//! bold, and their resets are kept; every other escape sequence and control character is
//! dropped. `assets/log.js` does the same for lines that arrive later.

/// A run of text with one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// CSS classes: `c0`–`c15` for the colour, `b` for bold (may be empty).
    pub class: String,
    /// The text (escaped by the template).
    pub text: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    colour: Option<u8>,
    bold: bool,
}

impl Style {
    fn class(self) -> String {
        let mut class = self.colour.map(|c| format!("c{c}")).unwrap_or_default();
        if self.bold {
            if !class.is_empty() {
                class.push(' ');
            }
            class.push('b');
        }
        class
    }

    fn apply(&mut self, params: &str) {
        let mut params = params.split([';', ':']);
        while let Some(param) = params.next() {
            match param.parse::<u8>().unwrap_or(0) {
                // 256-colour and true-colour forms: their arguments are not styles.
                38 | 48 | 58 => match params.next() {
                    Some("5") => {
                        params.next();
                    }
                    Some("2") => {
                        params.nth(2);
                    }
                    _ => {}
                },
                0 => *self = Style::default(),
                1 => self.bold = true,
                22 => self.bold = false,
                39 => self.colour = None,
                n @ 30..=37 => self.colour = Some(n - 30),
                n @ 90..=97 => self.colour = Some(n - 90 + 8),
                _ => {}
            }
        }
    }
}

/// The segments of one log line. A carriage return keeps only what follows it (what a
/// terminal would show last).
pub fn segments(line: &str) -> Vec<Segment> {
    let line = line
        .rsplit('\r')
        .find(|part| !part.is_empty())
        .unwrap_or("");
    let mut out: Vec<Segment> = Vec::new();
    let mut style = Style::default();
    let mut chars = line.chars().peekable();
    let mut text = String::new();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            let sequence = take_escape(&mut chars);
            if let Some(params) = sequence {
                push(&mut out, style, &mut text);
                style.apply(&params);
            }
        } else if c == '\t' || !c.is_control() {
            text.push(c);
        }
    }
    push(&mut out, style, &mut text);
    out
}

/// Consumes one escape sequence after ESC; returns the parameters of an SGR (`ESC[...m`).
fn take_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    match chars.next()? {
        '[' => {
            let mut params = String::new();
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    return (c == 'm').then_some(params);
                }
                params.push(c);
            }
            None
        }
        ']' => {
            // OSC: up to BEL or ESC \.
            while let Some(c) = chars.next() {
                if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                    break;
                }
            }
            None
        }
        _ => None,
    }
}

fn push(out: &mut Vec<Segment>, style: Style, text: &mut String) {
    if text.is_empty() {
        return;
    }
    let class = style.class();
    match out.last_mut() {
        Some(last) if last.class == class => last.text.push_str(text),
        _ => out.push(Segment {
            class,
            text: std::mem::take(text),
        }),
    }
    text.clear();
}

/// The line as plain text, escapes removed.
pub fn plain(line: &str) -> String {
    segments(line).into_iter().map(|s| s.text).collect()
}

/// True for a line that reads like an error: `error`, `failed`, `fatal` or `panic` at the
/// start of a word, in any case (`log.js` uses the same rule).
pub fn looks_like_error(line: &str) -> bool {
    let lower = plain(line).to_ascii_lowercase();
    ["error", "failed", "fatal", "panic"].iter().any(|word| {
        lower
            .match_indices(word)
            .any(|(at, _)| at == 0 || !lower.as_bytes()[at - 1].is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(class: &str, text: &str) -> Segment {
        Segment {
            class: class.into(),
            text: text.into(),
        }
    }

    #[test]
    fn colours_and_bold_are_kept() {
        let line = "\u{1b}[31merror\u{1b}[0m: \u{1b}[1;92mok\u{1b}[22m!";
        assert_eq!(
            segments(line),
            vec![
                seg("c1", "error"),
                seg("", ": "),
                seg("c10 b", "ok"),
                seg("c10", "!")
            ]
        );
    }

    #[test]
    fn other_sequences_and_controls_are_dropped() {
        let line = "a\u{1b}[2Kb\u{1b}]0;title\u{7}c\u{1b}[48;5;1md\u{0}e\u{8}";
        assert_eq!(segments(line), vec![seg("", "abcde")]);
        assert_eq!(plain("50%\r100%"), "100%");
        assert_eq!(plain("<script>"), "<script>");
    }

    #[test]
    fn error_lines_are_words_not_substrings() {
        assert!(looks_like_error("Error: it broke"));
        assert!(looks_like_error("test x ... FAILED"));
        assert!(looks_like_error("thread 'main' panicked at"));
        assert!(!looks_like_error("no terrors, no prefailed"));
        assert!(!looks_like_error("all fine"));
    }
}
