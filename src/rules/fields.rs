//! The `fields` policy: which field paths a client may select.
//!
//! Outseta's `fields` parameter follows references (`PersonAccount.Account.PersonAccount.
//! Person.Email`), so a rule that pins the path to the caller's own record would still hand
//! out other people's records through it. A rule's `fields_allow` lists the paths a client
//! may ask for; without one, only one-segment paths (root fields and `*`) are allowed.
//!
//! # Guarantees
//! - A `fields` value is split on `,`; every path in it is checked. A path is dotted
//!   segments, each a name of `[A-Za-z0-9_]` or exactly `*`. Anything else — an empty path or
//!   segment, a space, a partial wildcard such as `Per*` — is [`FieldsError::Malformed`].
//! - A path is allowed only when some pattern has the same number of segments and every
//!   segment matches: equal names (ASCII case-insensitive), or a pattern `*`, which matches
//!   one name or `*`. Otherwise [`FieldsError::NotAllowed`] names the first refused path.
//! - Patterns are checked at load with the same grammar.

/// Compiled `fields_allow` patterns (lower-case segments); `None`: one segment only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldsPolicy {
    patterns: Option<Vec<Vec<String>>>,
    /// The patterns as written, for reports.
    source: Vec<String>,
}

/// Why a `fields` value was refused. Display never repeats more than the offending path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldsError {
    #[error("`fields` is malformed: {0}")]
    Malformed(String),
    #[error("field path {0:?} is not allowed")]
    NotAllowed(String),
}

/// Longest path reported back in an error (client input is echoed only this far).
const MAX_ECHO: usize = 120;

fn echo(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn valid_segment(seg: &str) -> bool {
    seg == "*" || (!seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

/// Splits one path into segments, or says why it is malformed.
fn segments(path: &str) -> Result<Vec<&str>, String> {
    if path.is_empty() {
        return Err("empty field path".into());
    }
    let segs: Vec<&str> = path.split('.').collect();
    match segs.iter().find(|s| !valid_segment(s)) {
        None => Ok(segs),
        Some(&"") => Err(format!("empty segment in {:?}", echo(path))),
        Some(_) => Err(format!(
            "{:?}: a segment is a name of letters, digits and `_`, or `*`",
            echo(path)
        )),
    }
}

impl FieldsPolicy {
    /// The policy of a rule: `fields_allow` compiled, or the one-segment default. Every
    /// malformed pattern is reported.
    pub fn compile(allow: Option<&[String]>) -> Result<Self, Vec<String>> {
        let Some(allow) = allow else {
            return Ok(Self::default());
        };
        let mut problems = Vec::new();
        let mut patterns = Vec::with_capacity(allow.len());
        for pattern in allow {
            match segments(pattern.trim()) {
                Ok(segs) => patterns.push(segs.iter().map(|s| s.to_ascii_lowercase()).collect()),
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() {
            Ok(Self {
                patterns: Some(patterns),
                source: allow.iter().map(|p| p.trim().to_string()).collect(),
            })
        } else {
            Err(problems)
        }
    }

    /// Whether the rule lists explicit patterns.
    pub fn is_explicit(&self) -> bool {
        self.patterns.is_some()
    }

    /// The patterns as written (for `explain`); `None` for the default.
    pub fn patterns(&self) -> Option<Vec<String>> {
        self.patterns.as_ref().map(|_| self.source.clone())
    }

    /// Checks one client `fields` value.
    pub fn check(&self, value: &str) -> Result<(), FieldsError> {
        // Every path is checked for form first, so a malformed value is 400 wherever the
        // malformed path sits.
        let mut paths = Vec::new();
        for path in value.split(',') {
            paths.push((path, segments(path).map_err(FieldsError::Malformed)?));
        }
        for (path, segs) in paths {
            if !self.allows(&segs) {
                return Err(FieldsError::NotAllowed(echo(path)));
            }
        }
        Ok(())
    }

    fn allows(&self, segs: &[&str]) -> bool {
        match &self.patterns {
            None => segs.len() == 1,
            Some(patterns) => patterns.iter().any(|p| {
                p.len() == segs.len()
                    && p.iter()
                        .zip(segs)
                        .all(|(p, s)| p == "*" || p.eq_ignore_ascii_case(s))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(p: &[&str]) -> FieldsPolicy {
        let owned: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        FieldsPolicy::compile(Some(&owned)).unwrap()
    }

    #[test]
    fn default_allows_one_segment_only() {
        let d = FieldsPolicy::default();
        assert_eq!(d.check("Uid,Email,*"), Ok(()));
        assert_eq!(
            d.check("Uid,PersonAccount.Account.PersonAccount.Person.*"),
            Err(FieldsError::NotAllowed(
                "PersonAccount.Account.PersonAccount.Person.*".into()
            ))
        );
    }

    #[test]
    fn patterns_match_segment_by_segment_any_case() {
        let p = policy(&["*", "PersonAccount.*", "PersonAccount.Person.Uid"]);
        assert_eq!(
            p.check("*,PersonAccount.*,PersonAccount.Person.Uid"),
            Ok(())
        );
        assert_eq!(p.check("personaccount.PERSON.uid"), Ok(()));
        assert_eq!(p.check("PersonAccount.IsPrimary"), Ok(()));
        assert_eq!(
            p.check("*,PersonAccount.Person.Email"),
            Err(FieldsError::NotAllowed("PersonAccount.Person.Email".into()))
        );
        assert_eq!(
            p.check("PersonAccount.Person.*"),
            Err(FieldsError::NotAllowed("PersonAccount.Person.*".into())),
            "a client `*` is matched only by a pattern `*`"
        );
        assert!(matches!(
            p.check("PersonAccount.Account.PersonAccount.Person.Email"),
            Err(FieldsError::NotAllowed(_))
        ));
    }

    #[test]
    fn malformed_values_are_400_wherever_they_sit() {
        let d = FieldsPolicy::default();
        for bad in [
            "",
            ",",
            "Uid,",
            "Uid,,Email",
            "A..B",
            ".Uid",
            "Uid.",
            "Per*",
            "U id",
            "Uid;",
            "Ü",
        ] {
            assert!(
                matches!(d.check(bad), Err(FieldsError::Malformed(_))),
                "{bad:?}: {:?}",
                d.check(bad)
            );
        }
        // malformed beats not-allowed even when the refused path comes first
        assert!(matches!(
            d.check("A.B,C..D"),
            Err(FieldsError::Malformed(_))
        ));
    }

    #[test]
    fn bad_patterns_are_load_errors() {
        let bad: Vec<String> = vec!["Uid".into(), "A..B".into(), "Per*".into()];
        assert_eq!(FieldsPolicy::compile(Some(&bad)).unwrap_err().len(), 2);
    }

    #[test]
    fn echoes_are_bounded() {
        let long = "A".repeat(5000);
        let Err(FieldsError::NotAllowed(p)) = FieldsPolicy::default().check(&format!("{long}.B"))
        else {
            panic!("expected a refusal");
        };
        assert!(p.chars().count() <= MAX_ECHO + 1);
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            Just("Uid".to_string()),
            Just("PersonAccount".to_string()),
            Just("Person".to_string()),
            Just("Account".to_string()),
            Just("personaccount".to_string()),
            Just("".to_string()),
            "[A-Za-z0-9_*.,% -]{0,4}",
            "\\PC{0,2}",
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop::collection::vec(
            (
                prop::collection::vec(segment(), 1..5),
                prop_oneof![Just(","), Just("."), Just("")],
            ),
            1..5,
        )
        .prop_map(|parts| {
            parts
                .into_iter()
                .map(|(segs, sep)| format!("{}{sep}", segs.join(".")))
                .collect()
        })
    }

    /// A reference check written independently of `allows`: path → is it literally covered?
    fn covered(patterns: &[&str], path: &str) -> bool {
        let segs: Vec<&str> = path.split('.').collect();
        patterns.iter().any(|p| {
            let ps: Vec<&str> = p.split('.').collect();
            ps.len() == segs.len()
                && ps
                    .iter()
                    .zip(&segs)
                    .all(|(p, s)| *p == "*" || p.eq_ignore_ascii_case(s))
        })
    }

    proptest! {
        /// Every `fields` value is refused as malformed, refused as not allowed, or every
        /// path it requests is covered by a pattern.
        #[test]
        fn decision_is_400_403_or_every_path_allowed(v in value()) {
            let patterns = ["*", "PersonAccount.*", "PersonAccount.Person.Uid", "Account.Uid"];
            let p = policy(&patterns);
            match p.check(&v) {
                Err(FieldsError::Malformed(_)) => {}
                Err(FieldsError::NotAllowed(path)) => {
                    prop_assert!(!covered(&patterns, &path), "{path} refused but covered");
                }
                Ok(()) => {
                    for path in v.split(',') {
                        prop_assert!(covered(&patterns, path), "{path} allowed in {v:?}");
                        prop_assert!(path.split('.').all(|s| s == "*" || (!s.is_empty()
                            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))));
                    }
                }
            }
            // the default policy: never more than one segment
            if FieldsPolicy::default().check(&v).is_ok() {
                prop_assert!(v.split(',').all(|path| !path.contains('.')));
            }
        }
    }

    /// A piece of arbitrary `fields` text: names, separators, wildcards, empties, spaces,
    /// escapes, non-ASCII, any char.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[A-Za-z0-9_]{1,6}",
            3 => prop::sample::select(vec![".", ",", "*", "..", ",,", ".*"]).prop_map(str::to_string),
            1 => prop::sample::select(vec![
                "PersonAccount", "Person", "Email", "Account", "Per*", " ", "%2E", "\0", "é",
                "\u{1F600}", "\t", "_",
            ])
            .prop_map(str::to_string),
            1 => any::<char>().prop_map(String::from),
        ]
    }

    fn short_fields() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => prop::collection::vec(piece(), 0..12).prop_map(|p| p.concat()),
            1 => any::<String>(),
        ]
    }

    /// Arbitrary `fields` text, sometimes long enough to test the echo bound.
    fn arbitrary_fields() -> impl Strategy<Value = String> {
        prop_oneof![
            9 => short_fields(),
            1 => prop::collection::vec(piece(), 100..400).prop_map(|p| p.concat()),
        ]
    }

    fn well_formed(path: &str) -> bool {
        !path.is_empty()
            && path.split('.').all(|s| {
                s == "*"
                    || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            })
    }

    /// The verdict on `value` written out from the module's guarantees: malformed anywhere
    /// is 400, else the first path no pattern covers is 403, else allowed.
    fn expected(patterns: Option<&[String]>, value: &str) -> Result<(), FieldsError> {
        let paths: Vec<&str> = value.split(',').collect();
        if !paths.iter().all(|p| well_formed(p)) {
            return Err(FieldsError::Malformed(String::new()));
        }
        let ok = |path: &str| match patterns {
            None => !path.contains('.'),
            Some(ps) => {
                let ps: Vec<&str> = ps.iter().map(|p| p.trim()).collect();
                covered(&ps, path)
            }
        };
        match paths.into_iter().find(|p| !ok(p)) {
            Some(p) => Err(FieldsError::NotAllowed(echo(p))),
            None => Ok(()),
        }
    }

    fn same_verdict(got: &Result<(), FieldsError>, want: &Result<(), FieldsError>) -> bool {
        match (got, want) {
            (Err(FieldsError::Malformed(_)), Err(FieldsError::Malformed(_))) => true,
            _ => got == want,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Any `fields` text, under the default policy and an explicit one: `check` never
        /// panics, gives the verdict the guarantees describe, and echoes a bounded amount.
        #[test]
        fn any_value_gets_the_specified_verdict(value in arbitrary_fields()) {
            let patterns: Vec<String> = ["*", "PersonAccount.*", "PersonAccount.Person.Uid", "Account.Uid"]
                .iter().map(|s| s.to_string()).collect();
            for (policy, source) in [
                (FieldsPolicy::default(), None),
                (FieldsPolicy::compile(Some(&patterns)).unwrap(), Some(&patterns[..])),
            ] {
                let got = policy.check(&value);
                let want = expected(source, &value);
                prop_assert!(same_verdict(&got, &want), "{value:?}: got {got:?}, want {want:?}");
                if let Err(e) = got {
                    // Debug-escaping may spell one char in up to 10; the rest is fixed text.
                    prop_assert!(e.to_string().chars().count() <= 10 * (MAX_ECHO + 1) + 100);
                }
            }
        }

        /// Arbitrary patterns: compiling never panics, reports each malformed pattern once,
        /// and a compiled policy judges any value as the guarantees describe.
        #[test]
        fn any_patterns_compile_or_are_reported(
            patterns in prop::collection::vec(
                prop_oneof![3 => short_fields(), 1 => Just(" PersonAccount.* ".to_string())],
                0..4,
            ),
            value in short_fields(),
        ) {
            let bad = patterns.iter().filter(|p| !well_formed(p.trim())).count();
            match FieldsPolicy::compile(Some(&patterns)) {
                Err(problems) => prop_assert_eq!(problems.len(), bad),
                Ok(policy) => {
                    prop_assert_eq!(bad, 0);
                    prop_assert!(policy.is_explicit());
                    let got = policy.check(&value);
                    let want = expected(Some(&patterns), &value);
                    prop_assert!(same_verdict(&got, &want), "{patterns:?} {value:?}: got {got:?}, want {want:?}");
                }
            }
        }
    }
}
