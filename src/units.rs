//! Typed values parsed from the strings of the config file: durations, byte sizes, rates.
//! A leaf: used by the configuration ([`crate::config::types`] re-exports it) and by the rules.
//!
//! Durations use `humantime` (`"250ms"`, `"30s"`, `"10m"`). Byte sizes and rates are small
//! grammars of our own (`"64MiB"`, `"4/s"`, `"120/min"`); `humantime`/`bytesize` do not cover
//! the rate form and a size parser is a dozen lines, so there is no extra dependency for it.

use std::num::NonZeroU32;
use std::time::Duration;

/// Parses a duration such as `"250ms"`, `"30s"` or `"10m"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    humantime::parse_duration(t).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Parses a byte size such as `"64MiB"`, `"16KiB"`, `"1048576"` or `"10MB"`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid size {s:?}: expected a number followed by a unit such as MiB"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: number out of range"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB or GB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// A rate: `count` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl Rate {
    /// The interval between two events at this rate.
    pub fn interval(&self) -> Duration {
        self.per / self.count.get()
    }

    /// Events per second, as a float (for display and the fallback share).
    pub fn per_second(&self) -> f64 {
        f64::from(self.count.get()) / self.per.as_secs_f64()
    }

    /// The window in whole seconds (at least 1), as used by the `RateLimit-Policy` header.
    pub fn window_secs(&self) -> u64 {
        self.per.as_secs().max(1)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s".to_string(),
            60 => "min".to_string(),
            3600 => "h".to_string(),
            _ => humantime::format_duration(self.per).to_string(),
        };
        write!(f, "{}/{}", self.count, unit)
    }
}

/// Parses a rate such as `"4/s"`, `"120/min"`, `"1000/h"` or `"10/30s"`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let (n, unit) = s
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("invalid rate {s:?}: expected COUNT/UNIT such as \"4/s\""))?;
    let count: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("invalid rate {s:?}: count must be a positive integer"))?;
    let count =
        NonZeroU32::new(count).ok_or_else(|| format!("invalid rate {s:?}: count must be > 0"))?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => parse_duration(other).map_err(|_| {
            format!("invalid rate {s:?}: unit must be s, min, h or a duration like 30s")
        })?,
    };
    if per.is_zero() {
        return Err(format!("invalid rate {s:?}: period must be > 0"));
    }
    Ok(Rate { count, per })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ten").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("16KiB"), Ok(16 << 10));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn rates() {
        let r = parse_rate("4/s").unwrap();
        assert_eq!(r.count.get(), 4);
        assert_eq!(r.per, Duration::from_secs(1));
        assert_eq!(r.interval(), Duration::from_millis(250));
        let r = parse_rate("120/min").unwrap();
        assert_eq!(r.window_secs(), 60);
        assert_eq!(r.to_string(), "120/min");
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("4").is_err());
        assert!(parse_rate("4/fortnight").is_err());
    }
}
