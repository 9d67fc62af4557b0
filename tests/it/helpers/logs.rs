//! The test binary's logger: every warning and error leadstream logs, kept in memory so a test
//! can read what the server wrote (and how often). Warnings, not the info line of every
//! webhook: the whole test binary pays for what is kept. Installed once; tests running at the
//! same time log into the same list, so a test picks its own lines (by target, text, time).

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// One log line.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Instant,
    pub level: log::Level,
    pub target: String,
    pub text: String,
}

struct Capture {
    lines: Mutex<Vec<Line>>,
}

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn && m.target().starts_with("leadstream")
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            self.lines.lock().unwrap().push(Line {
                at: Instant::now(),
                level: record.level(),
                target: record.target().to_string(),
                text: record.args().to_string(),
            });
        }
    }
    fn flush(&self) {}
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::new(Capture {
            lines: Mutex::new(Vec::new()),
        }));
        log::set_logger(c).expect("no other logger in the test binary");
        log::set_max_level(log::LevelFilter::Warn);
        c
    })
}

/// Starts capturing (if it has not started yet); call before the server logs what you want.
pub fn capture_logs() {
    capture();
}

/// The lines logged since `t` for which `keep` holds, oldest first.
pub fn lines_since(t: Instant, keep: impl Fn(&Line) -> bool) -> Vec<Line> {
    capture()
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.at >= t && keep(l))
        .cloned()
        .collect()
}
