//! Path canonicalisation: the one place a client path becomes the path that is matched,
//! judged by the rules and forwarded upstream.
//!
//! # Guarantees
//! - Percent-encoded *unreserved* characters (RFC 3986 §2.3) are decoded; every other escape
//!   is kept, with upper-case hex, so the path Outseta receives is the path the rule judged.
//! - One trailing `/` is dropped (`/api/v1/crm/people/P1/` is `/api/v1/crm/people/P1`, as
//!   Outseta's routing reads it), so the path judged and forwarded never ends with `/`.
//! - Rejected (→ 400 before any rule is tried): a path not starting with `/`, an empty
//!   segment (`//`, two trailing slashes), a `.` or `..` segment (also when spelled `%2E`), an
//!   encoded `/` (`%2F`), `\` raw or encoded, NUL, an encoded `%` (double encoding) and a
//!   malformed escape.
//! - `canonicalize` is idempotent: the output of a successful call canonicalises to itself.

use std::fmt;

/// Why a path was refused. `Display` never includes the path itself (it may carry PII).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    EmptySegment,
    DotSegment,
    EncodedSlash,
    Backslash,
    Nul,
    DoubleEncoding,
    BadEscape,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAbsolute => "path must start with '/'",
            Self::EmptySegment => "path contains an empty segment",
            Self::DotSegment => "path contains a '.' or '..' segment",
            Self::EncodedSlash => "path contains an encoded '/'",
            Self::Backslash => "path contains a backslash",
            Self::Nul => "path contains a NUL byte",
            Self::DoubleEncoding => "path contains an encoded '%'",
            Self::BadEscape => "path contains a malformed percent-escape",
        })
    }
}

impl std::error::Error for PathError {}

/// A canonical path: the string forwarded upstream and its segments for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonPath {
    path: String,
    /// Byte ranges of each segment inside `path`.
    segments: Vec<(usize, usize)>,
}

impl CanonPath {
    pub fn as_str(&self) -> &str {
        &self.path
    }

    pub fn segments(&self) -> impl ExactSizeIterator<Item = &str> + Clone {
        self.segments.iter().map(|&(a, b)| &self.path[a..b])
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// `raw` without one trailing `/`, unless that would leave nothing or another `/` at the end.
fn without_trailing_slash(raw: &str) -> &str {
    match raw.strip_suffix('/') {
        Some(rest) if !rest.is_empty() && !rest.ends_with('/') => rest,
        _ => raw,
    }
}

/// Canonicalises a raw request path (without the query). See the module docs.
pub fn canonicalize(raw: &str) -> Result<CanonPath, PathError> {
    let raw = without_trailing_slash(raw);
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut segments = Vec::with_capacity(8);
    let plain = |b: &u8| b.is_ascii_graphic() && *b != b'%' && *b != b'\\';
    if bytes.iter().all(plain) {
        // Nothing to decode or escape (the common case): the path is its own canonical
        // form once its segments are checked.
        let mut start = 1;
        for end in (1..=bytes.len()).filter(|&i| i == bytes.len() || bytes[i] == b'/') {
            match &raw[start..end] {
                "" if bytes.len() == 1 => break,
                "" => return Err(PathError::EmptySegment),
                "." | ".." => return Err(PathError::DotSegment),
                _ => segments.push((start, end)),
            }
            start = end + 1;
        }
        return Ok(CanonPath {
            path: raw.to_string(),
            segments,
        });
    }
    let mut path = String::with_capacity(raw.len());
    for seg in raw[1..].split('/') {
        if seg.is_empty() {
            return Err(PathError::EmptySegment);
        }
        path.push('/');
        let start = path.len();
        let sb = seg.as_bytes();
        // Most segments are plain ASCII with nothing to decode or escape: copied at once.
        let mut i = if sb.iter().all(plain) {
            path.push_str(seg);
            sb.len()
        } else {
            0
        };
        while i < sb.len() {
            let b = sb[i];
            match b {
                b'%' => {
                    let (Some(h), Some(l)) = (
                        sb.get(i + 1).copied().and_then(hex_val),
                        sb.get(i + 2).copied().and_then(hex_val),
                    ) else {
                        return Err(PathError::BadEscape);
                    };
                    let decoded = (h << 4) | l;
                    match decoded {
                        b'/' => return Err(PathError::EncodedSlash),
                        b'\\' => return Err(PathError::Backslash),
                        0 => return Err(PathError::Nul),
                        b'%' => return Err(PathError::DoubleEncoding),
                        d if is_unreserved(d) => path.push(d as char),
                        d => {
                            path.push('%');
                            path.push(HEX[usize::from(d >> 4)] as char);
                            path.push(HEX[usize::from(d & 0xF)] as char);
                        }
                    }
                    i += 3;
                }
                b'\\' => return Err(PathError::Backslash),
                0 => return Err(PathError::Nul),
                // Raw bytes other than these reach us only as the URI grammar allows them;
                // non-ASCII or control bytes are escaped so the forwarded form is plain ASCII.
                b if b.is_ascii_graphic() => {
                    path.push(b as char);
                    i += 1;
                }
                b => {
                    path.push('%');
                    path.push(HEX[usize::from(b >> 4)] as char);
                    path.push(HEX[usize::from(b & 0xF)] as char);
                    i += 1;
                }
            }
        }
        let s = &path[start..];
        if s == "." || s == ".." {
            return Err(PathError::DotSegment);
        }
        segments.push((start, path.len()));
    }
    Ok(CanonPath { path, segments })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_only_unreserved() {
        let c = canonicalize("/api/v1/crm/people/%41bc%7e%3f").unwrap();
        assert_eq!(c.as_str(), "/api/v1/crm/people/Abc~%3F");
        assert_eq!(
            c.segments().collect::<Vec<_>>(),
            ["api", "v1", "crm", "people", "Abc~%3F"]
        );
    }

    #[test]
    fn a_plain_path_is_its_own_form_with_its_segments() {
        let c = canonicalize("/api/v1/crm/people/hDAEYqL6").unwrap();
        assert_eq!(c.as_str(), "/api/v1/crm/people/hDAEYqL6");
        assert_eq!(
            c.segments().collect::<Vec<_>>(),
            ["api", "v1", "crm", "people", "hDAEYqL6"]
        );
        let c = canonicalize("/a.b/~c").unwrap();
        assert_eq!(c.segments().collect::<Vec<_>>(), ["a.b", "~c"]);
    }

    #[test]
    fn root_has_no_segments() {
        let c = canonicalize("/").unwrap();
        assert_eq!(c.segment_count(), 0);
        assert_eq!(c.as_str(), "/");
    }

    #[test]
    fn one_trailing_slash_is_dropped() {
        for (input, want) in [
            ("/api/v1/crm/people/P1/", "/api/v1/crm/people/P1"),
            ("/api/v1/tokens/", "/api/v1/tokens"),
            ("/api/v1/crm/people/a%20b/", "/api/v1/crm/people/a%20b"),
            ("/", "/"),
        ] {
            assert_eq!(canonicalize(input).map(|c| c.path), Ok(want.to_string()));
        }
        assert_eq!(
            canonicalize("/api/v1/crm/people/P1/")
                .unwrap()
                .segments()
                .collect::<Vec<_>>(),
            ["api", "v1", "crm", "people", "P1"]
        );
        assert_eq!(canonicalize("/x/%2E/"), Err(PathError::DotSegment));
        assert_eq!(canonicalize("/x/../"), Err(PathError::DotSegment));
    }

    #[test]
    fn rejects_traversal_and_smuggling() {
        let cases = [
            ("/api/v1/crm/people/../people/x", PathError::DotSegment),
            ("/api/v1/./crm", PathError::DotSegment),
            ("/api/v1/%2e%2e/x", PathError::DotSegment),
            ("/api/v1/%2E/x", PathError::DotSegment),
            ("/api/v1/.%2E/x", PathError::DotSegment),
            ("/api/v1/crm/people/a%2Fb", PathError::EncodedSlash),
            ("/api/v1/crm/people/a%2fb", PathError::EncodedSlash),
            ("/api/v1/crm/people/a%5Cb", PathError::Backslash),
            ("/api/v1/crm/people/a\\b", PathError::Backslash),
            ("/api/v1/crm/people/a%00", PathError::Nul),
            ("/api/v1//crm", PathError::EmptySegment),
            ("/api/v1/crm//", PathError::EmptySegment),
            ("/api/v1/crm/people/a%252F", PathError::DoubleEncoding),
            ("/api/v1/%zz", PathError::BadEscape),
            ("/api/v1/%4", PathError::BadEscape),
            ("api/v1", PathError::NotAbsolute),
            ("/..", PathError::DotSegment),
            ("/x/.", PathError::DotSegment),
            ("//x", PathError::EmptySegment),
            ("//", PathError::EmptySegment),
        ];
        for (input, want) in cases {
            assert_eq!(canonicalize(input), Err(want), "{input}");
        }
    }

    fn segment() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                "[A-Za-z0-9._~-]",
                Just("%2F".to_string()),
                Just("%2f".to_string()),
                Just("%2E".to_string()),
                Just("%5C".to_string()),
                Just("%00".to_string()),
                Just("%25".to_string()),
                Just("%3F".to_string()),
                Just("%41".to_string()),
                Just("..".to_string()),
                Just(".".to_string()),
                Just("\\".to_string()),
                Just(":".to_string()),
                Just("%".to_string()),
            ],
            0..5,
        )
        .prop_map(|parts| parts.concat())
    }

    /// Arbitrary text shaped like a path often enough to get past the first check: valid
    /// and malformed escapes, dot and slash tricks, controls, non-ASCII, any char.
    fn arbitrary_path() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[A-Za-z0-9._~-]{1,4}",
            3 => Just("/".to_string()),
            2 => "%[0-9A-Fa-f]{2}",
            1 => "%[0-9A-Za-z%]{0,2}",
            2 => prop::sample::select(vec![
                "%2e", "%2E", "..", ".", "%2F", "%2f", "%5C", "%5c", "\\", "%00", "\0", "%25",
                "%", "//", "#", "?", " ", "\t", "\u{7f}", "é", "%C3%A9", "\u{1F600}", "<", "\"",
                "{", "|", "^", "`", "+", ":", "@", "!", "$", "&", "'", "(", ";", "=",
            ])
            .prop_map(str::to_string),
            1 => any::<char>().prop_map(String::from),
        ];
        let body = prop::collection::vec(piece, 0..16).prop_map(|p| p.concat());
        prop_oneof![
            6 => body.clone().prop_map(|b| format!("/{b}")),
            1 => body,
            1 => any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn canonical_form_is_safe_and_stable(segs in prop::collection::vec(segment(), 0..6)) {
            let raw = format!("/{}", segs.join("/"));
            if let Ok(c) = canonicalize(&raw) {
                let s = c.as_str();
                // idempotent: what we forward is what we would judge again
                let again = canonicalize(s);
                prop_assert_eq!(again.as_ref(), Ok(&c));
                prop_assert!(!s.contains("//"));
                prop_assert!(!s.contains('\\'));
                let lower = s.to_ascii_lowercase();
                prop_assert!(!lower.contains("%2f") && !lower.contains("%5c") && !lower.contains("%00") && !lower.contains("%25"));
                prop_assert!(!lower.contains("%2e"), "dots must be decoded: {}", s);
                for seg in c.segments() {
                    prop_assert!(!seg.is_empty() && seg != "." && seg != "..");
                }
                let judged = without_trailing_slash(&raw);
                let want = if judged == "/" { 0 } else { judged[1..].split('/').count() };
                prop_assert_eq!(c.segment_count(), want);
            }
        }

        #[test]
        fn any_dot_segment_is_refused(prefix in "[a-z]{1,5}", dots in prop_oneof![
            Just(".."), Just("."), Just("%2e%2e"), Just("%2E."), Just(".%2e"), Just("%2e")
        ]) {
            let raw = format!("/{prefix}/{dots}/x");
            prop_assert_eq!(canonicalize(&raw), Err(PathError::DotSegment));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any string at all (not only generated segments): `canonicalize` never panics, and
        /// what it accepts is absolute, stable, free of traversal and smuggling, plain ASCII
        /// with upper-case escapes, and means the same bytes as the input.
        #[test]
        fn any_string_is_refused_or_canonical(raw in arbitrary_path()) {
            let Ok(c) = canonicalize(&raw) else {
                return Ok(());
            };
            let s = c.as_str();
            prop_assert!(raw.starts_with('/') && s.starts_with('/'), "{raw:?} → {s:?}");
            prop_assert_eq!(canonicalize(s), Ok(c.clone()), "not idempotent: {:?}", raw);
            let segs: Vec<&str> = c.segments().collect();
            prop_assert_eq!(c.segment_count(), segs.len());
            let joined = if segs.is_empty() { "/".to_string() } else { format!("/{}", segs.join("/")) };
            prop_assert_eq!(&joined, s, "segments do not spell the path");
            for seg in &segs {
                prop_assert!(!seg.is_empty() && *seg != "." && *seg != "..", "{raw:?} → {s:?}");
            }
            let b = s.as_bytes();
            prop_assert!(b.iter().all(|&x| x.is_ascii_graphic() && x != b'\\'), "{raw:?} → {s:?}");
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    let hex = b.get(i + 1..i + 3).unwrap_or_default();
                    prop_assert!(
                        hex.len() == 2 && hex.iter().all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)),
                        "escape not upper-case hex in {s:?}"
                    );
                    let d = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16).unwrap_or(0);
                    prop_assert!(!is_unreserved(d), "unreserved byte left escaped in {s:?}");
                    prop_assert!(!matches!(d, b'/' | b'\\' | b'%' | 0), "%{:02X} survived in {s:?}", d);
                    i += 3;
                } else {
                    i += 1;
                }
            }
            // Only well-formed escapes pass, so decoding both gives the same bytes: the
            // canonical path names what the client named.
            let decode = |x: &str| percent_encoding::percent_decode_str(x).collect::<Vec<u8>>();
            let judged = without_trailing_slash(&raw);
            prop_assert!(s == "/" || !s.ends_with('/'), "{raw:?} → {s:?}");
            prop_assert_eq!(decode(s), decode(judged), "meaning changed: {:?} → {:?}", raw, s);
            if judged.bytes().all(|x| x.is_ascii_graphic() && x != b'%') {
                prop_assert_eq!(s, judged, "a plain path is its own canonical form");
            }
        }

        /// What serve canonicalises is the path of a request target the HTTP parser accepted;
        /// the canonical form of such a path is itself a valid target path, so it goes
        /// upstream byte for byte (nothing read as a query or a fragment, nothing re-escaped).
        #[test]
        fn a_canonical_request_path_is_forwarded_byte_for_byte(raw in arbitrary_path()) {
            let Ok(target) = http::uri::PathAndQuery::try_from(raw.as_str()) else {
                return Ok(());
            };
            let Ok(c) = canonicalize(target.path()) else {
                return Ok(());
            };
            let forwarded = http::uri::PathAndQuery::try_from(c.as_str());
            prop_assert!(forwarded.is_ok(), "{raw:?} → {:?} is not a valid target", c.as_str());
            if let Ok(f) = forwarded {
                prop_assert_eq!(f.path(), c.as_str());
                prop_assert_eq!(f.query(), None);
            }
        }
    }
}
