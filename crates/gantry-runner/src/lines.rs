//! Reassembling raw output chunks into masked lines.
//!
//! Backends deliver bytes cut anywhere: mid-line, mid-UTF-8 character, mid-secret. A
//! [`LineAssembler`] buffers them per stream and hands out whole lines, masked. A line
//! longer than [`MAX_LINE_BYTES`] is cut into pieces; the cut never falls inside a secret,
//! and the bytes that may be the beginning of a secret stay buffered until the next chunk
//! decides, so cutting cannot leak a secret either.

use crate::mask::Masker;

/// Longest line handed out; longer ones are cut into pieces of about this size.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Turns a stream of byte chunks into masked lines.
#[derive(Debug)]
pub struct LineAssembler {
    pending: Vec<u8>,
    max_line: usize,
}

impl Default for LineAssembler {
    fn default() -> Self {
        Self::new(MAX_LINE_BYTES)
    }
}

impl LineAssembler {
    /// An assembler that cuts lines longer than `max_line` bytes (at least 1).
    pub fn new(max_line: usize) -> Self {
        Self {
            pending: Vec::new(),
            max_line: max_line.max(1),
        }
    }

    /// Adds `data` and hands every line it completes to `emit` (without line ending,
    /// masked).
    pub fn push(&mut self, data: &[u8], masker: &Masker, mut emit: impl FnMut(&str)) {
        self.pending.extend_from_slice(data);
        // Only the new bytes can hold a newline: earlier ones were scanned already.
        let scan_from = self.pending.len() - data.len();
        if let Some(last) = self.pending[scan_from..].iter().rposition(|&b| b == b'\n') {
            let end = scan_from + last;
            emit_lines(&self.pending[..end], masker, &mut emit);
            self.pending.drain(..=end);
        }
        // Bytes that may begin a secret completed by the next chunk stay pending, so a
        // line is cut only once more than `hold_back` bytes follow the cut.
        let hold_back = masker.longest_pattern().saturating_sub(1);
        while self.pending.len() >= self.max_line + hold_back {
            let cut = self.cut_point(masker);
            let piece: Vec<u8> = self.pending.drain(..cut).collect();
            finish_line(&piece, masker, &mut emit);
        }
    }

    /// Hands out the last line if the output did not end with a newline.
    pub fn finish(&mut self, masker: &Masker, mut emit: impl FnMut(&str)) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            finish_line(&rest, masker, &mut emit);
        }
    }

    /// Where to cut an over-long pending line: at `max_line` bytes, moved back to a
    /// character boundary, or forward past a secret that would straddle the cut.
    fn cut_point(&self, masker: &Masker) -> usize {
        let mut cut = back_to_char_boundary(&self.pending, self.max_line);
        if cut == 0 {
            cut = self.max_line;
        }
        if !masker.is_empty() {
            for range in masker.secret_ranges(&self.pending) {
                if range.start < cut && cut < range.end {
                    cut = range.end;
                }
            }
        }
        cut
    }
}

/// Moves `at` back (at most three bytes) to the start of the UTF-8 character it is in.
fn back_to_char_boundary(buf: &[u8], mut at: usize) -> usize {
    for _ in 0..3 {
        match buf.get(at) {
            Some(b) if b & 0xC0 == 0x80 && at > 0 => at -= 1,
            _ => break,
        }
    }
    at
}

/// Hands out the newline-separated lines of `region` (complete lines without the last
/// newline). Nearly always the whole region is valid UTF-8 and holds no secret, which two
/// passes over it establish; then lines are handed out as they are, with no per-line work
/// but the split.
fn emit_lines(region: &[u8], masker: &Masker, emit: &mut impl FnMut(&str)) {
    let clean = masker.is_empty() || !masker.contains_secret(region);
    match std::str::from_utf8(region) {
        Ok(text) if clean => {
            for line in text.split('\n') {
                emit(line.strip_suffix('\r').unwrap_or(line));
            }
        }
        _ => {
            for raw in region.split(|&b| b == b'\n') {
                finish_line(raw, masker, emit);
            }
        }
    }
}

/// Decodes one line (dropping a CR of a CR LF ending), masks it and hands it out.
fn finish_line(raw: &[u8], masker: &Masker, emit: &mut impl FnMut(&str)) {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    // Valid UTF-8 (nearly every line) takes the fast validator, not the lossy decoder.
    match std::str::from_utf8(raw) {
        Ok(text) => emit(&masker.mask(text)),
        Err(_) => emit(&masker.mask(&String::from_utf8_lossy(raw))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(chunks: &[&[u8]], max_line: usize, masker: &Masker) -> Vec<String> {
        let mut assembler = LineAssembler::new(max_line);
        let mut out = Vec::new();
        for chunk in chunks {
            assembler.push(chunk, masker, |line| out.push(line.to_owned()));
        }
        assembler.finish(masker, |line| out.push(line.to_owned()));
        out
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let lines = assemble(&[b"hel", b"lo\nwor", b"ld\n"], 1024, &Masker::default());
        assert_eq!(lines, ["hello", "world"]);
    }

    #[test]
    fn crlf_endings_are_dropped_lone_cr_kept() {
        let lines = assemble(&[b"a\r", b"\nb\rc\r\n"], 1024, &Masker::default());
        assert_eq!(lines, ["a", "b\rc"]);
    }

    #[test]
    fn a_final_line_without_newline_is_flushed() {
        let lines = assemble(&[b"one\ntwo"], 1024, &Masker::default());
        assert_eq!(lines, ["one", "two"]);
    }

    #[test]
    fn empty_lines_are_kept() {
        let lines = assemble(&[b"\n\nx\n"], 1024, &Masker::default());
        assert_eq!(lines, ["", "", "x"]);
    }

    #[test]
    fn utf8_character_split_across_chunks_survives() {
        let bytes = "é€😀\n".as_bytes();
        for split in 1..bytes.len() {
            let lines = assemble(
                &[&bytes[..split], &bytes[split..]],
                1024,
                &Masker::default(),
            );
            assert_eq!(lines, ["é€😀"], "split at {split}");
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let lines = assemble(&[b"a\xffb\n"], 1024, &Masker::default());
        assert_eq!(lines, ["a\u{fffd}b"]);
    }

    #[test]
    fn long_lines_are_cut_on_character_boundaries() {
        let line = "é".repeat(10); // 20 bytes
        let lines = assemble(&[line.as_bytes()], 7, &Masker::default());
        assert!(lines.iter().all(|l| !l.contains('\u{fffd}')), "{lines:?}");
        assert_eq!(lines.concat(), line);
        assert!(lines.iter().all(|l| l.len() <= 7));
    }

    #[test]
    fn sec_09_secret_split_across_chunks_is_masked() {
        let masker = Masker::new(["s3cr3t-value"]);
        let text = b"token=s3cr3t-value end\n";
        for split in 1..text.len() {
            let lines = assemble(&[&text[..split], &text[split..]], 1024, &masker);
            assert_eq!(lines, ["token=******** end"], "split at {split}");
        }
    }

    #[test]
    fn sec_09_cutting_a_long_line_never_splits_a_secret() {
        let masker = Masker::new(["SECRETSECRET"]);
        let text = format!("{}SECRETSECRET{}\n", "x".repeat(60), "y".repeat(60));
        for max_line in [5, 8, 16, 61, 64, 70] {
            for split in [1, 30, 62, 66, 71, 100] {
                let (a, b) = text.as_bytes().split_at(split);
                let lines = assemble(&[a, b], max_line, &masker);
                let joined = lines.concat();
                assert!(
                    !joined.contains("SECRET"),
                    "max {max_line} split {split}: {lines:?}"
                );
                assert!(joined.contains(crate::mask::MASK));
            }
        }
    }

    #[test]
    fn one_byte_chunks_give_the_same_lines() {
        let masker = Masker::new(["hunter2"]);
        let text = b"a hunter2 b\r\nsecond\nthird";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        let lines = assemble(&chunks, 1024, &masker);
        assert_eq!(lines, ["a ******** b", "second", "third"]);
    }

    #[test]
    fn sec_09_a_chunk_of_many_lines_masks_only_the_line_with_the_secret() {
        let masker = Masker::new(["hunter2"]);
        let lines = assemble(
            &[b"one\ntwo hunter2\r\nthree\n\xffhunter2\nlast"],
            1024,
            &masker,
        );
        assert_eq!(
            lines,
            ["one", "two ********", "three", "\u{fffd}********", "last"]
        );
    }

    #[test]
    fn a_chunk_of_clean_lines_comes_out_unchanged() {
        let masker = Masker::new(["hunter2"]);
        let text: String = (0..500).map(|n| format!("line {n}\r\n")).collect();
        let lines = assemble(&[text.as_bytes()], 1024, &masker);
        assert_eq!(lines.len(), 500);
        assert_eq!(lines[499], "line 499");
    }
}
