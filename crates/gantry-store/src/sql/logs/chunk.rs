//! A run of consecutive log lines kept as one row of `log_chunks`.
//!
//! A row per line costs both databases a tuple, an index entry and a WAL record per line;
//! a row per runner batch (up to 1,024 lines or 64 KiB) costs them once per batch, which is
//! what takes ingest past 50 MB/s. The lines of a chunk are numbered `first..=last` without
//! a gap and chunks of a step never overlap, so (step, number) stays an exact key: reading
//! after N decodes the chunk that holds N+1 and skips the lines before it.
//!
//! Columns: `streams` holds one letter per line (`o` stdout, `e` stderr, `s` system);
//! `elapsed_ms` and `text_ends` are comma-separated decimals (each line's elapsed time, and
//! the byte offset in `texts` where its text ends); `texts` is the texts one after the
//! other. Plain text rather than a binary layout so that SQL alone can write a one-line
//! chunk (the migration from one row per line does).

use sqlx::FromRow;

use crate::error::{StoreError, StoreResult};
use crate::logs::LogLine;

/// Most lines in one chunk (the runner's batch size).
const CHUNK_LINES: usize = 1024;
/// Text bytes after which a chunk is complete (the runner's batch size).
const CHUNK_BYTES: usize = 64 * 1024;

/// One row of `log_chunks` (without its step).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub(super) struct Chunk {
    pub first_number: i64,
    pub last_number: i64,
    pub streams: String,
    pub elapsed_ms: String,
    pub text_ends: String,
    pub texts: String,
}

/// The letter a stream is stored as, or `None` for a stream the store does not know.
pub(super) fn stream_code(stream: &str) -> Option<char> {
    match stream {
        "stdout" => Some('o'),
        "stderr" => Some('e'),
        "system" => Some('s'),
        _ => None,
    }
}

fn stream_name(code: u8) -> Option<&'static str> {
    match code {
        b'o' => Some("stdout"),
        b'e' => Some("stderr"),
        b's' => Some("system"),
        _ => None,
    }
}

impl Chunk {
    fn starting_at(number: i64) -> Self {
        Chunk {
            first_number: number,
            last_number: number - 1,
            streams: String::new(),
            elapsed_ms: String::new(),
            text_ends: String::new(),
            texts: String::new(),
        }
    }

    fn line_count(&self) -> usize {
        self.streams.len()
    }

    fn is_full(&self) -> bool {
        self.line_count() >= CHUNK_LINES || self.texts.len() >= CHUNK_BYTES
    }

    /// Room for the lines a chunk starting with `lines[0]` holds at most, so that
    /// encoding a batch does not grow its columns line by line.
    fn reserve_for(&mut self, lines: &[&LogLine]) {
        let mut count = 0;
        let mut bytes = 0;
        for line in lines.iter().take(CHUNK_LINES) {
            count += 1;
            bytes += line.text.len();
            if bytes >= CHUNK_BYTES {
                break;
            }
        }
        self.streams.reserve(count);
        // Up to 7 digits and a comma per text end (a chunk's text ends below 10 MiB),
        // a few for elapsed milliseconds (longer ones grow the column).
        self.text_ends.reserve(count * 8);
        self.elapsed_ms.reserve(count * 6);
        self.texts.reserve(bytes);
    }

    /// Appends the line numbered `last_number + 1`, its stream already checked.
    fn push(&mut self, line: &LogLine) {
        if !self.streams.is_empty() {
            self.elapsed_ms.push(',');
            self.text_ends.push(',');
        }
        self.streams.push(stream_code(&line.stream).unwrap_or('o'));
        // NUL becomes U+FFFD: Postgres text cannot hold NUL, and both databases must
        // store the same lines.
        if line.text.contains('\0') {
            self.texts.push_str(&line.text.replace('\0', "\u{FFFD}"));
        } else {
            self.texts.push_str(&line.text);
        }
        push_decimal(&mut self.elapsed_ms, line.elapsed_ms);
        push_decimal(
            &mut self.text_ends,
            i64::try_from(self.texts.len()).unwrap_or(i64::MAX),
        );
        self.last_number = line.number;
    }

    /// Appends to `out` the lines numbered above `after`, until `out` holds `limit`.
    pub(super) fn read_into(
        &self,
        after: i64,
        limit: usize,
        out: &mut Vec<LogLine>,
    ) -> StoreResult<()> {
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "log_chunks",
            reason: format!(
                "chunk {}..={}: {reason}",
                self.first_number, self.last_number
            ),
        };
        let count = self.last_number - self.first_number + 1;
        if usize::try_from(count).ok() != Some(self.streams.len()) {
            return Err(corrupt(format!(
                "{} streams for {count} lines",
                self.streams.len()
            )));
        }
        let mut elapsed = self.elapsed_ms.split(',');
        let mut ends = self.text_ends.split(',');
        let mut start = 0;
        for (index, code) in self.streams.bytes().enumerate() {
            let number = self.first_number + index as i64;
            let (Some(elapsed), Some(end)) = (elapsed.next(), ends.next()) else {
                return Err(corrupt(format!("line {number} has no time or end")));
            };
            let end: usize = end
                .parse()
                .map_err(|_| corrupt(format!("line {number}: text end `{end}`")))?;
            let text = self.texts.get(start..end);
            start = end;
            if number <= after {
                continue;
            }
            if out.len() >= limit {
                break;
            }
            let (Some(text), Some(stream), Ok(elapsed_ms)) =
                (text, stream_name(code), elapsed.parse())
            else {
                return Err(corrupt(format!("line {number} cannot be read")));
            };
            out.push(LogLine {
                number,
                stream: stream.to_string(),
                text: text.to_string(),
                elapsed_ms,
            });
        }
        Ok(())
    }
}

/// Appends `value` in decimal, without the formatting machinery (two numbers per line
/// are written, which made `write!` a visible share of encoding short lines).
fn push_decimal(out: &mut String, value: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push('-');
    }
    for &digit in &digits[at..] {
        out.push(char::from(digit));
    }
}

/// The lines as chunks: ordered by number, cut at every gap in the numbers and where a
/// chunk is full. Each chunk's columns are sized once for the lines it will hold.
pub(super) fn chunks_of(mut lines: Vec<&LogLine>) -> Vec<Chunk> {
    if !lines.is_sorted_by_key(|line| line.number) {
        lines.sort_by_key(|line| line.number);
    }
    let mut chunks: Vec<Chunk> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let open = chunks
            .last_mut()
            .filter(|c| c.last_number + 1 == line.number && !c.is_full());
        match open {
            Some(chunk) => chunk.push(line),
            None => {
                let mut chunk = Chunk::starting_at(line.number);
                chunk.reserve_for(&lines[index..]);
                chunk.push(line);
                chunks.push(chunk);
            }
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(number: i64, stream: &str, text: &str) -> LogLine {
        LogLine {
            number,
            stream: stream.to_string(),
            text: text.to_string(),
            elapsed_ms: number * 7,
        }
    }

    fn read(chunk: &Chunk, after: i64, limit: usize) -> Vec<LogLine> {
        let mut out = Vec::new();
        chunk.read_into(after, limit, &mut out).unwrap();
        out
    }

    #[test]
    fn chunks_round_trip_and_read_exactly_after_a_number() {
        let lines = [
            line(4, "stdout", "four"),
            line(2, "stderr", ""),
            line(3, "system", "dré,i"),
            line(7, "stdout", "seven\0"),
        ];
        let chunks = chunks_of(lines.iter().collect());
        assert_eq!(chunks.len(), 2, "cut at the gap between 4 and 7");
        assert_eq!((chunks[0].first_number, chunks[0].last_number), (2, 4));
        assert_eq!(chunks[0].streams, "eso");
        let all = read(&chunks[0], -1, 10);
        assert_eq!(
            all,
            vec![lines[1].clone(), lines[2].clone(), lines[0].clone()]
        );
        assert_eq!(
            read(&chunks[0], 2, 10),
            vec![lines[2].clone(), lines[0].clone()]
        );
        assert_eq!(read(&chunks[0], 2, 1), vec![lines[2].clone()]);
        assert!(read(&chunks[0], 4, 10).is_empty());
        assert_eq!(read(&chunks[1], 0, 10)[0].text, "seven\u{FFFD}");
    }

    #[test]
    fn chunks_are_cut_at_the_runners_batch_size() {
        let many: Vec<LogLine> = (0..2500).map(|n| line(n, "stdout", "x")).collect();
        let counts: Vec<usize> = chunks_of(many.iter().collect())
            .iter()
            .map(Chunk::line_count)
            .collect();
        assert_eq!(counts, vec![1024, 1024, 452]);
        let long = "y".repeat(40 * 1024);
        let big: Vec<LogLine> = (0..3).map(|n| line(n, "stdout", &long)).collect();
        assert_eq!(chunks_of(big.iter().collect()).len(), 2);
    }

    #[test]
    fn decimals_are_written_as_rust_prints_them() {
        for value in [0, 7, -7, 10, 65_536, -1_000_000, i64::MAX, i64::MIN] {
            let mut out = String::from("x");
            push_decimal(&mut out, value);
            assert_eq!(out, format!("x{value}"));
        }
    }

    #[test]
    fn a_damaged_chunk_is_a_clear_error() {
        let mut chunk = chunks_of(vec![&line(0, "stdout", "a")]).remove(0);
        chunk.text_ends = "9".into();
        let error = chunk.read_into(-1, 10, &mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("log_chunks"), "{error}");
        chunk.last_number = 5;
        assert!(chunk.read_into(-1, 10, &mut Vec::new()).is_err());
    }
}
