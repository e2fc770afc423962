//! Log lines as etcd 3.4 prints them by default (capnslog, on stderr):
//! `2006-01-02 15:04:05.000000 I | etcdserver: published …`. The tracing
//! target is the package name etcd prints (`etcdserver`, `embed`, …); tools
//! that wait for etcd's lines (its e2e harness, scripts) find them here too.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

struct Capnslog;

impl<S, N> FormatEvent<S, N> for Capnslog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => 'E',
            Level::WARN => 'W',
            Level::INFO => 'I',
            Level::DEBUG => 'D',
            Level::TRACE => 'T',
        };
        write!(w, "{} {level} | {}: ", timestamp(), event.metadata().target())?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Local time is not known without a time-zone database: UTC, as etcd
/// prints in a container.
fn timestamp() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}", rem / 3600, rem / 60 % 60, rem % 60, now.subsec_micros())
}

/// Go's `time.Time` JSON form (RFC 3339 with nanoseconds, UTC).
pub fn rfc3339_nanos(t: std::time::SystemTime) -> String {
    let now = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let nanos = format!(".{:09}", now.subsec_nanos());
    let nanos = nanos.trim_end_matches('0');
    let nanos = if nanos == "." { "" } else { nanos };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{nanos}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Installs the logger for the process (`--log-level`: debug, info, warn,
/// error; etcd's default info). A second call does nothing.
pub fn init(level: &str) {
    let level = match level {
        "debug" => Level::DEBUG,
        "warn" => Level::WARN,
        "error" | "panic" | "fatal" => Level::ERROR,
        _ => Level::INFO,
    };
    // No colour codes: etcd's log is plain text, and it usually goes to a file.
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .event_format(Capnslog)
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_792), (2026, 12, 5));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
