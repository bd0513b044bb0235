//! What `gantry exec` prints: `[step]`-prefixed log lines, a live status per step on a
//! TTY, and a final table.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::time::{Duration, SystemTime};

use gantry_runner::{LogBatch, RunEvent, StepReport, StepStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

const PALETTE: [u8; 6] = [36, 35, 34, 33, 32, 96];

/// Prints run events for a person.
pub struct Printer {
    color: bool,
    width: usize,
    colors: BTreeMap<String, u8>,
    live: Option<MultiProgress>,
    spinners: BTreeMap<String, ProgressBar>,
}

impl Printer {
    /// A printer for these step names (used for the prefix width and colours).
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let tty = std::io::stdout().is_terminal();
        let color = tty && std::env::var_os("NO_COLOR").is_none();
        let colors: BTreeMap<String, u8> = names
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n.to_owned(), PALETTE[i % PALETTE.len()]))
            .collect();
        let width = colors.keys().map(String::len).max().unwrap_or(4);
        let live = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            color,
            width,
            colors,
            live,
            spinners: BTreeMap::new(),
        }
    }

    /// Prints a line outside the live area (so it never tears the spinners).
    pub fn line(&self, text: &str) {
        match &self.live {
            Some(live) => live.suspend(|| println!("{text}")),
            None => println!("{text}"),
        }
    }

    fn prefix(&self, step: &str) -> String {
        let padded = format!(
            "[{step}]{:pad$}",
            "",
            pad = self.width.saturating_sub(step.len())
        );
        match (self.color, self.colors.get(step)) {
            (true, Some(code)) => format!("\x1b[{code}m{padded}\x1b[0m"),
            _ => padded,
        }
    }

    /// Handles one event from the runtime.
    pub fn event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Logs(batch) => self.log(batch),
            RunEvent::Step(report) => self.step(report),
        }
    }

    /// Prints a batch of lines at once (one write, one pause of the live area).
    fn log(&self, batch: &LogBatch) {
        if batch.is_empty() {
            return;
        }
        let prefix = self.prefix(batch.step());
        let mut text = String::with_capacity(batch.text_len() + batch.len() * (prefix.len() + 2));
        for (i, line) in batch.iter().enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(&prefix);
            text.push(' ');
            text.push_str(line.text);
        }
        self.line(&text);
    }

    fn step(&mut self, report: &StepReport) {
        let name = report.step.clone();
        match report.status {
            StepStatus::Pending => {}
            StepStatus::Running | StepStatus::Blocked => {
                let message = if report.status == StepStatus::Blocked {
                    "waiting for approval"
                } else if report.attempt > 1 {
                    "running (retry)"
                } else {
                    "running"
                };
                if let Some(live) = &self.live {
                    let bar = self.spinners.entry(name.clone()).or_insert_with(|| {
                        let bar = live.add(ProgressBar::new_spinner());
                        bar.set_style(
                            ProgressStyle::with_template("{spinner} {prefix} {msg} {elapsed}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        );
                        bar.set_prefix(name.clone());
                        bar.enable_steady_tick(Duration::from_millis(120));
                        bar
                    });
                    bar.set_message(message);
                } else {
                    self.line(&format!("{} -- {message}", self.prefix(&name)));
                }
            }
            _ => {
                if let Some(bar) = self.spinners.remove(&name) {
                    bar.finish_and_clear();
                }
                let mut text = format!("{} -- {}", self.prefix(&name), self.status(report.status));
                if let Some(error) = &report.error {
                    text.push_str(&format!(": {error}"));
                }
                self.line(&text);
            }
        }
    }

    /// A status word, coloured on a TTY.
    pub fn status(&self, status: StepStatus) -> String {
        let (word, code) = status_word(status);
        if self.color {
            format!("\x1b[{code}m{word}\x1b[0m")
        } else {
            word.to_owned()
        }
    }

    /// Prints the final table of steps, status and duration.
    pub fn summary(&mut self, steps: &[StepReport]) {
        for (_, bar) in std::mem::take(&mut self.spinners) {
            bar.finish_and_clear();
        }
        let width = steps.iter().map(|s| s.step.len()).max().unwrap_or(4).max(4);
        self.line("");
        self.line(&format!(
            "{:width$}  {:9}  {:>9}",
            "STEP", "STATUS", "DURATION"
        ));
        for s in steps {
            let (word, _) = status_word(s.status);
            // Pad the plain word, then colour it, so ANSI codes do not break alignment.
            let pad = " ".repeat(9usize.saturating_sub(word.len()));
            let duration = duration(s.started, s.finished);
            let mut row = format!(
                "{:width$}  {}{pad}  {:>9}",
                s.step,
                self.status(s.status),
                duration
            );
            if let Some(error) = &s.error {
                row.push_str(&format!("  {error}"));
            }
            self.line(&row);
        }
    }
}

fn status_word(status: StepStatus) -> (&'static str, u8) {
    match status {
        StepStatus::Pending => ("pending", 90),
        StepStatus::Running => ("running", 34),
        StepStatus::Blocked => ("blocked", 33),
        StepStatus::Success => ("success", 32),
        StepStatus::Failure => ("failure", 31),
        StepStatus::Skipped => ("skipped", 90),
        StepStatus::Cancelled => ("cancelled", 33),
    }
}

fn duration(started: Option<SystemTime>, finished: Option<SystemTime>) -> String {
    match (started, finished) {
        (Some(a), Some(b)) => {
            let d = b.duration_since(a).unwrap_or_default();
            if d.as_secs() >= 60 {
                format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
            } else {
                format!("{:.1}s", d.as_secs_f64())
            }
        }
        _ => "-".into(),
    }
}
