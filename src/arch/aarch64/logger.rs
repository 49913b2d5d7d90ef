//! The `log` backend: every record goes to the console, one line under the console lock,
//! prefixed with `(granite)` and the time since boot (from the architected counter).
//!
//! The level comes from `loglvl=` (Xen's `none|error|warning|info|debug|all`, default info).

use super::console;
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};
use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger;

static LOGGER: Logger = Logger;

/// Seconds and microseconds since the counter started (it starts at reset).
pub fn uptime() -> (u64, u64) {
    let freq = CNTFRQ_EL0.get().max(1);
    let t = CNTPCT_EL0.get();
    (t / freq, (t % freq) * 1_000_000 / freq)
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let (s, us) = uptime();
        let tag = match r.level() {
            Level::Error => "ERROR: ",
            Level::Warn => "Warning: ",
            Level::Info => "",
            Level::Debug => "debug: ",
            Level::Trace => "trace: ",
        };
        console::write_fmt(format_args!("(granite) [{s:5}.{us:06}] {tag}{}\n", r.args()));
    }

    fn flush(&self) {
        console::flush();
    }
}

/// Install the logger (MMU on: `set_logger` uses an atomic read-modify-write).
pub fn init(level: LevelFilter) {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
