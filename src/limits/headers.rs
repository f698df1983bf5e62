//! The per-user limit on the wire (docs/behaviour.md, "On the wire"): `RateLimit-Policy` and `RateLimit` as in the
//! IETF httpapi ratelimit-headers draft (Structured Fields items with parameters).
//!
//! - `RateLimit-Policy: "user";q=120;w=60` — the long-run quota `q` per window `w` seconds
//!   (`[user_limit] rate`); constant for a given config.
//! - `RateLimit: "user";r=29;t=1` — `r` requests could be sent right now (what is left of
//!   the burst) and `t` seconds until one more unit is available: on a 429 exactly the
//!   `Retry-After`, otherwise one emission interval (the limit is a GCRA: quota comes back
//!   one unit per `interval`, not in a window reset).

use std::time::Duration;

use http::HeaderValue;

use crate::config::Rate;

/// The policy name used in both fields.
pub const POLICY: &str = "user";

pub static RATELIMIT_POLICY: http::HeaderName = http::HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");

/// Whole seconds, rounded up (the draft has no sub-second precision).
pub fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs();
    if d.subsec_nanos() > 0 { s + 1 } else { s }
}

/// `"user";q=<quota>;w=<window>`: `rate` expressed over whole seconds.
pub fn policy(rate: &Rate) -> HeaderValue {
    let w = rate.window_secs();
    let q = (rate.per_second() * w as f64).round() as u64;
    HeaderValue::from_str(&format!("\"{POLICY}\";q={q};w={w}"))
        .unwrap_or(HeaderValue::from_static("\"user\""))
}

/// `"user";r=<remaining>;t=<seconds>`, written on the stack (this runs on every request).
pub fn state(remaining: u32, reset: Duration) -> HeaderValue {
    use std::io::Write;
    const CAP: usize = 64;
    let mut buf = [0u8; CAP];
    let left = {
        let mut w = &mut buf[..];
        write!(w, "\"{POLICY}\";r={remaining};t={}", ceil_secs(reset)).map(|()| w.len())
    };
    left.ok()
        .and_then(|left| HeaderValue::from_bytes(&buf[..CAP - left]).ok())
        .unwrap_or(HeaderValue::from_static("\"user\";r=0"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::parse_rate;

    #[test]
    fn policy_field() {
        assert_eq!(
            policy(&parse_rate("120/min").unwrap()),
            "\"user\";q=120;w=60"
        );
        assert_eq!(policy(&parse_rate("4/s").unwrap()), "\"user\";q=4;w=1");
        assert_eq!(policy(&parse_rate("10/30s").unwrap()), "\"user\";q=10;w=30");
        assert_eq!(
            policy(&parse_rate("1000/h").unwrap()),
            "\"user\";q=1000;w=3600"
        );
        // sub-second periods are expressed per second
        assert_eq!(policy(&parse_rate("5/500ms").unwrap()), "\"user\";q=10;w=1");
    }

    #[test]
    fn state_field() {
        assert_eq!(state(117, Duration::from_secs(12)), "\"user\";r=117;t=12");
        assert_eq!(state(0, Duration::from_millis(1_200)), "\"user\";r=0;t=2");
        assert_eq!(state(30, Duration::ZERO), "\"user\";r=30;t=0");
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
    }
}
