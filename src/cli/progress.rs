//! Progress of a long command (import, export, re-extraction): a bar redrawn in place for a
//! person at a terminal, and a log line every few seconds otherwise, so a run under a job
//! scheduler or `nohup` shows it is alive and how far it has got.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// A rate measured over less than this is noise (the first files include opening the
/// database), so no time left is shown before it.
const SETTLE: Duration = Duration::from_secs(1);

/// Shared by the threads doing the work; cloning is cheap.
#[derive(Clone)]
pub(super) struct Progress(Arc<Inner>);

struct Inner {
    /// What is being done and counted, for example "imported" and "files".
    verb: &'static str,
    what: &'static str,
    started: Instant,
    /// How often a log line is written when stderr is not a terminal.
    every: Duration,
    total: AtomicU64,
    done: AtomicU64,
    /// Seconds after `started` when the last log line was written.
    logged_at: AtomicU64,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(verb: &'static str, total: u64, what: &'static str, every: Duration) -> Progress {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = ProgressBar::new(total);
            let template = format!(
                "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {what} · {{per_sec}} · \
                 {{left}} {{msg}}"
            );
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(
                    style
                        .with_key(
                            "left",
                            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                                let left = time_left(state.pos(), state.len(), state.elapsed());
                                let _ = out.write_str(&left);
                            },
                        )
                        .progress_chars("=> "),
                );
            }
            bar
        });
        Progress(Arc::new(Inner {
            verb,
            what,
            started: Instant::now(),
            every,
            total: AtomicU64::new(total),
            done: AtomicU64::new(0),
            logged_at: AtomicU64::new(0),
            bar,
        }))
    }

    /// The work grew or was counted late (re-extraction learns its total from the server).
    pub fn set_total(&self, total: u64) {
        self.0.total.store(total, Ordering::Relaxed);
        if let Some(bar) = &self.0.bar {
            bar.set_length(total);
        }
    }

    pub fn set(&self, done: u64) {
        self.0.done.store(done, Ordering::Relaxed);
        self.update();
    }

    pub fn inc(&self, by: u64) {
        self.0.done.fetch_add(by, Ordering::Relaxed);
        self.update();
    }

    /// A short note after the counts, for example how many inputs were bad.
    pub fn note(&self, note: String) {
        if let Some(bar) = &self.0.bar {
            bar.set_message(note);
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.0.started.elapsed()
    }

    /// Clears the bar; the command prints its own summary line after.
    pub fn finish(&self) {
        if let Some(bar) = &self.0.bar {
            bar.finish_and_clear();
        }
    }

    fn update(&self) {
        let inner = &self.0;
        let done = inner.done.load(Ordering::Relaxed);
        if let Some(bar) = &inner.bar {
            bar.set_position(done);
            return;
        }
        let elapsed = inner.started.elapsed();
        let last = inner.logged_at.load(Ordering::Relaxed);
        if elapsed.as_secs() < last + inner.every.as_secs() {
            return;
        }
        // One thread wins the right to log this interval.
        if inner
            .logged_at
            .compare_exchange(
                last,
                elapsed.as_secs(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        let total = inner.total.load(Ordering::Relaxed);
        tracing::info!(
            "{} {done}/{total} {} ({:.0}/s), {}",
            inner.verb,
            inner.what,
            done as f64 / elapsed.as_secs_f64().max(1e-9),
            time_left(done, Some(total), elapsed)
        );
    }
}

/// "about 3m 20s left" from the rate so far; no figure before there is a rate to go on.
fn time_left(done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let Some(total) = total else {
        return String::new();
    };
    if done == 0 || elapsed < SETTLE {
        return "estimating time left".into();
    }
    let seconds = total.saturating_sub(done) as f64 * elapsed.as_secs_f64() / done as f64;
    let seconds = seconds.round() as u64;
    if seconds >= 60 {
        format!("about {}m {:02}s left", seconds / 60, seconds % 60)
    } else {
        format!("about {seconds}s left")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_time_left_is_guessed_before_there_is_a_rate() {
        assert_eq!(
            time_left(0, Some(100), Duration::from_secs(30)),
            "estimating time left"
        );
        assert_eq!(
            time_left(5, Some(100), Duration::from_millis(200)),
            "estimating time left"
        );
        assert_eq!(
            time_left(50, Some(100), Duration::from_secs(10)),
            "about 10s left"
        );
        assert_eq!(
            time_left(10, Some(100), Duration::from_secs(10)),
            "about 1m 30s left"
        );
    }
}
