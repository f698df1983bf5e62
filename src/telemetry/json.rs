//! A lean JSON line formatter for `tracing` events: one object per line, event fields
//! flattened beside `timestamp`, `level`, `target` and `message`.
//!
//! Why not `tracing_subscriber`'s JSON format: it goes through `serde_json` maps, several
//! times the cost of writing the line directly as this does (`bench/RESULTS.md`). The output
//! shape is the same as
//! `fmt().json().flatten_event(true)` without span data (the gateway opens no spans).

use std::fmt::{self, Write as _};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as single-line JSON objects.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLine;

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f
}

/// Writes the escaped contents of `s` (no quotes).
fn write_escaped(w: &mut (impl fmt::Write + ?Sized), s: &str) -> fmt::Result {
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(off) = bytes[start..].iter().position(|&b| needs_escape(b)) {
        let i = start + off;
        w.write_str(&s[start..i])?;
        match bytes[i] {
            b'"' => w.write_str("\\\"")?,
            b'\\' => w.write_str("\\\\")?,
            b'\n' => w.write_str("\\n")?,
            b'\r' => w.write_str("\\r")?,
            b'\t' => w.write_str("\\t")?,
            b => write!(w, "\\u{:04x}", b)?,
        }
        start = i + 1;
    }
    w.write_str(&s[start..])
}

/// Writes `s` as a JSON string literal.
pub fn write_str(w: &mut (impl fmt::Write + ?Sized), s: &str) -> fmt::Result {
    w.write_char('"')?;
    write_escaped(w, s)?;
    w.write_char('"')
}

/// Escapes whatever is formatted into it (for `Debug` values, without a temporary String).
struct Escaping<'a, W: fmt::Write + ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(self.0, s)
    }
}

struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.w.write_char(',')?;
        write_str(self.w, field.name())?;
        self.w.write_char(':')
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| write_str(self.w, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| write!(self.w, "{value}"));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| write!(self.w, "{value}"));
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| {
                // Three decimals through integer formatting (float formatting is slow).
                if value.is_finite() && value.abs() < 1e15 {
                    let milli = (value * 1000.0).round() as i64;
                    let sign = if milli < 0 { "-" } else { "" };
                    let m = milli.unsigned_abs();
                    write!(self.w, "{sign}{}.{:03}", m / 1000, m % 1000)
                } else {
                    self.w.write_str("null")
                }
            });
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| write!(self.w, "{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| {
                self.w.write_char('"')?;
                write!(Escaping(&mut *self.w), "{value:?}")?;
                self.w.write_char('"')
            });
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(
            writer,
            "{{\"timestamp\":\"{}\",\"level\":\"{}\",\"target\":",
            humantime::format_rfc3339_micros(SystemTime::now()),
            meta.level()
        )?;
        write_str(&mut writer, meta.target())?;
        let mut fields = Fields {
            w: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str("}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_json_strings() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn formats_a_whole_event_as_one_json_line() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .event_format(JsonLine)
            .with_writer(move || buf.clone())
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::info!(target: "access", path = "/a\"b", status = 200u64, latency_ms = 1.23456f64, neg = -0.5f64, ok = true, dbg = ?vec![1, 2], "request {}", "x");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n') && text.lines().count() == 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["target"], "access");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "request x");
        assert_eq!(v["path"], "/a\"b");
        assert_eq!(v["status"], 200);
        assert_eq!(v["latency_ms"], 1.235);
        assert_eq!(v["neg"], -0.5);
        assert_eq!(v["ok"], true);
        assert_eq!(v["dbg"], "[1, 2]");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
