//! Query strings: parsed once, rewritten by the rule, serialised once.
//!
//! # Guarantees
//! - Keys are compared ASCII-case-insensitively everywhere (Outseta binds them so).
//! - `remove` drops every value of a key, in any case, duplicates included.
//! - `serialize` is the only encoder; the query forwarded upstream is `serialize()` of the
//!   pairs the rule judged, so what was checked is exactly what is sent.
//! - `parse(serialize(q)) == q` for any pairs.
//! - A raw `?` inside the query separates pairs as `&` does (`limit=10?offset=1` is `limit=10`
//!   and `offset=1`): the PyPI client `outsetapy` appends `?` + its parameters once per
//!   parameter. This widens nothing: `parse(raw)` is the old parse of `raw` with every `?`
//!   written `&`, so every pair a client can produce this way it could already produce with
//!   `&`, and each is judged by the rule's `query_allow`/`query_set` the same. A literal `?`
//!   in a value is `%3F`, which `serialize` always writes, so the forwarded query has no raw
//!   `?`. `serve`, `explain`, `test` and the cache key all read this one parse.
//! - An allow-list entry ending in `__*` (`Created__*`) allows the key itself and the key with
//!   each of Outseta's comparison suffixes ([`OPERATOR_SUFFIXES`]); [`Query::remove_forced`]
//!   removes a key together with those suffixed forms.

use std::collections::HashMap;

/// Outseta's filter comparison suffixes (`Created__gt=2024-01-01`).
pub const OPERATOR_SUFFIXES: &[&str] = &["__gt", "__gte", "__lt", "__lte", "__ne", "__isnull"];

/// `key` is `base` or `base` + an operator suffix (ASCII case-insensitive).
fn is_base_or_suffixed(key: &str, base: &str) -> bool {
    let (k, b) = (key.as_bytes(), base.as_bytes());
    if k.len() < b.len() || !k[..b.len()].eq_ignore_ascii_case(b) {
        return false;
    }
    let rest = &k[b.len()..];
    rest.is_empty()
        || OPERATOR_SUFFIXES
            .iter()
            .any(|s| rest.eq_ignore_ascii_case(s.as_bytes()))
}

/// Whether the allow-list entry `allowed` admits `key`.
fn admits(allowed: &str, key: &str) -> bool {
    match allowed.strip_suffix("__*") {
        Some(base) => is_base_or_suffixed(key, base),
        None => allowed.eq_ignore_ascii_case(key),
    }
}

/// Decoded `(key, value)` pairs in client order (forced pairs appended by the rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `application/x-www-form-urlencoded` pairs (`+` is a space), with a raw `?`
    /// separating pairs as `&` does (see the module docs). Empty pairs are skipped; a key
    /// without `=` has an empty value. Invalid UTF-8 is replaced (U+FFFD).
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = match raw {
            None | Some("") => Vec::new(),
            Some(raw) => {
                // `?` is one byte and never part of an escape (`%3F` is), so rewriting it
                // to `&` splits exactly there and nowhere else.
                let raw: std::borrow::Cow<'_, str> = if raw.contains('?') {
                    raw.replace('?', "&").into()
                } else {
                    raw.into()
                };
                form_urlencoded::parse(raw.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            }
        };
        Self { pairs }
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// First value of `key`, any case.
    pub fn first(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Removes every value of `key`, in any case.
    pub fn remove(&mut self, key: &str) {
        self.pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
    }

    /// Removes every value of a forced `key` and of its operator-suffixed forms
    /// (`Account.Uid__ne`), in any case.
    pub fn remove_forced(&mut self, key: &str) {
        self.pairs.retain(|(k, _)| !is_base_or_suffixed(k, key));
    }

    /// Every value of `key`, any case, in order.
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.pairs.push((key.into(), value.into()));
    }

    /// First key that is not in `allowed` (compared case-insensitively; entries ending in
    /// `__*` admit the operator-suffixed forms too).
    pub fn first_disallowed<'a>(&'a self, allowed: &[String]) -> Option<&'a str> {
        self.pairs
            .iter()
            .map(|(k, _)| k.as_str())
            .find(|k| !allowed.iter().any(|a| admits(a, k)))
    }

    /// First value of each key, keys lower-cased: the `query` variable of rule conditions.
    pub fn first_values_lowercase(&self) -> HashMap<String, String> {
        let mut map = HashMap::with_capacity(self.pairs.len());
        for (k, v) in &self.pairs {
            map.entry(k.to_ascii_lowercase())
                .or_insert_with(|| v.clone());
        }
        map
    }

    /// The encoded query, or `None` when there are no pairs.
    pub fn serialize(&self) -> Option<String> {
        if self.pairs.is_empty() {
            return None;
        }
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            ser.append_pair(k, v);
        }
        Some(ser.finish())
    }

    /// The encoded query with pairs sorted (by key, then value): the cache-key form.
    pub fn serialize_sorted(&self) -> Option<String> {
        let mut sorted = self.clone();
        sorted.pairs.sort();
        sorted.serialize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_serialises() {
        let q = Query::parse(Some("fields=*,Account.Uid&orderBy=Name+DESC&flag"));
        assert_eq!(q.first("FIELDS"), Some("*,Account.Uid"));
        assert_eq!(q.first("orderby"), Some("Name DESC"));
        assert_eq!(q.first("flag"), Some(""));
        assert_eq!(
            q.serialize().as_deref(),
            Some("fields=*%2CAccount.Uid&orderBy=Name+DESC&flag=")
        );
    }

    fn pairs(q: &Query) -> Vec<(&str, &str)> {
        q.pairs()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn a_question_mark_separates_pairs_like_an_ampersand() {
        // outsetapy 0.1.5 builds `…/billing/plans?limit=10?offset=1`.
        let q = Query::parse(Some("limit=10?offset=1"));
        assert_eq!(pairs(&q), [("limit", "10"), ("offset", "1")]);
        assert_eq!(q.serialize().as_deref(), Some("limit=10&offset=1"));
        let q = Query::parse(Some("fields=*?FromPerson.Uid=P1?limit=1&offset=2"));
        assert_eq!(
            pairs(&q),
            [
                ("fields", "*"),
                ("FromPerson.Uid", "P1"),
                ("limit", "1"),
                ("offset", "2")
            ]
        );
        // Leading, doubled and trailing `?` leave empty pairs, which are skipped.
        let q = Query::parse(Some("?limit=1??offset=2?"));
        assert_eq!(pairs(&q), [("limit", "1"), ("offset", "2")]);
        // `?` inside a key or after the first `=` splits too: there is no other reading.
        let q = Query::parse(Some("a?b=c=d?e"));
        assert_eq!(pairs(&q), [("a", ""), ("b", "c=d"), ("e", "")]);
    }

    #[test]
    fn an_encoded_question_mark_stays_in_its_value_and_is_forwarded_encoded() {
        let q = Query::parse(Some("q=why%3Foffset%3D1&limit=1"));
        assert_eq!(pairs(&q), [("q", "why?offset=1"), ("limit", "1")]);
        let ser = q.serialize().unwrap();
        assert_eq!(ser, "q=why%3Foffset%3D1&limit=1");
        assert!(!ser.contains('?'));
        assert_eq!(Query::parse(Some(&ser)), q);
    }

    #[test]
    fn every_pair_split_at_a_question_mark_is_judged() {
        // A key smuggled after `?` is an ordinary key: refused by the allow-list, removed by
        // a forced key in any spelling or comparison form.
        let allowed = vec!["fields".to_string(), "limit".to_string()];
        let q = Query::parse(Some("fields=*?Email=someone@example.com"));
        assert_eq!(q.first_disallowed(&allowed), Some("Email"));
        let mut q = Query::parse(Some(
            "limit=1?Account.Uid=theirs?account.uid__ne=mine&fields=*?ACCOUNT.UID=x",
        ));
        q.remove_forced("Account.Uid");
        assert_eq!(q.first_disallowed(&allowed), None);
        q.push("Account.Uid", "mine");
        assert_eq!(
            q.serialize().as_deref(),
            Some("limit=1&fields=*&Account.Uid=mine")
        );
    }

    #[test]
    fn remove_is_case_insensitive_and_total() {
        let mut q = Query::parse(Some(
            "Account.Uid=x&account.uid=y&ACCOUNT.UID=z&Account.Uid=w&limit=5&Account%2EUid=v",
        ));
        q.remove("Account.Uid");
        q.push("Account.Uid", "mine");
        assert_eq!(
            q.pairs(),
            &[
                ("limit".to_string(), "5".to_string()),
                ("Account.Uid".to_string(), "mine".to_string())
            ]
        );
    }

    #[test]
    fn disallowed_keys_any_case() {
        let q = Query::parse(Some("Limit=1&EMAIL=x"));
        let allowed = vec!["limit".to_string(), "fields".to_string()];
        assert_eq!(q.first_disallowed(&allowed), Some("EMAIL"));
    }

    #[test]
    fn operator_suffixes_are_allowed_by_a_star_entry_only() {
        let allowed = vec!["Created__*".to_string(), "limit".to_string()];
        let q = Query::parse(Some(
            "created=1&Created__GT=2&Created__gte=3&created__lt=4&Created__lte=5&Created__ne=6&Created__isnull=true&limit=1",
        ));
        assert_eq!(q.first_disallowed(&allowed), None);
        for bad in [
            "Created__like=x",
            "Created__gtx=1",
            "CreatedX=1",
            "limit__gt=1",
        ] {
            assert_eq!(
                Query::parse(Some(bad)).first_disallowed(&allowed),
                bad.split('=').next(),
                "{bad}"
            );
        }
    }

    #[test]
    fn forced_keys_remove_their_suffixed_forms() {
        let mut q = Query::parse(Some(
            "Account.Uid__ne=mine&ACCOUNT.UID__ISNULL=true&account.uid=x&Account.UidX=keep&limit=1",
        ));
        q.remove_forced("Account.Uid");
        assert_eq!(q.serialize().as_deref(), Some("Account.UidX=keep&limit=1"));
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("Account.Uid".to_string()),
            Just("account.uid".to_string()),
            Just("ACCOUNT.UID".to_string()),
            Just("aCcOuNt.UiD".to_string()),
            "[ -~]{0,8}",
            "\\PC{0,4}",
        ]
    }

    fn encode_component(s: &str) -> String {
        // A client may encode any byte; encode every byte to exercise the decoder.
        s.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    proptest! {
        #[test]
        fn roundtrip(pairs in prop::collection::vec((key(), "\\PC{0,8}"), 0..8)) {
            let mut q = Query::default();
            for (k, v) in &pairs {
                q.push(k.clone(), v.clone());
            }
            let s = q.serialize();
            let back = Query::parse(s.as_deref());
            prop_assert_eq!(back.pairs(), &pairs[..]);
        }

        #[test]
        fn forced_key_wins_over_any_client_spelling(
            pairs in prop::collection::vec((key(), "[a-z0-9]{0,6}"), 0..10),
            raw_encode in any::<bool>(),
        ) {
            let raw: Vec<String> = pairs.iter().map(|(k, v)| {
                if raw_encode { format!("{}={}", encode_component(k), v) }
                else { form_urlencoded::Serializer::new(String::new()).append_pair(k, v).finish() }
            }).collect();
            let mut q = Query::parse(Some(&raw.join("&")));
            q.remove("Account.Uid");
            q.push("Account.Uid", "mine");
            let forwarded = Query::parse(q.serialize().as_deref());
            let values: Vec<&str> = forwarded.pairs().iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("account.uid"))
                .map(|(_, v)| v.as_str()).collect();
            prop_assert_eq!(values, vec!["mine"]);
        }
    }

    /// Arbitrary query text: separators, `+`, valid and malformed escapes, escapes of
    /// invalid UTF-8, forced-key spellings and operator suffixes, any char.
    fn arbitrary_query() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[A-Za-z0-9._~-]{1,4}",
            3 => prop::sample::select(vec!["&", "=", "+", "&&", "=="]).prop_map(str::to_string),
            2 => "%[0-9A-Fa-f]{2}",
            1 => "%[0-9A-Za-z%]{0,2}",
            2 => prop::sample::select(vec![
                "Account.Uid", "account.UID", "__ne", "__GT", "__isnull", "fields", "*", ",",
                "?", "#", "%FF", "%C3", "%C3%A9", "%00", "\0", " ", "é", "%26", "%3D", "%2B",
                ";", "%E2%82", "\u{1F600}",
            ])
            .prop_map(str::to_string),
            1 => any::<char>().prop_map(String::from),
        ];
        prop_oneof![
            6 => prop::collection::vec(piece, 0..16).prop_map(|p| p.concat()),
            1 => any::<String>(),
        ]
    }

    /// `application/x-www-form-urlencoded` decoding written out independently of
    /// `form_urlencoded`: pairs split on `&` and on `?` (empty ones skipped), key and value on
    /// the first `=`, `+` is a space, escapes decoded, invalid UTF-8 replaced.
    fn reference_pairs(raw: &str) -> Vec<(String, String)> {
        let decode = |s: &str| {
            let bytes: Vec<u8> =
                percent_encoding::percent_decode_str(&s.replace('+', " ")).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        raw.split(['&', '?'])
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any raw query: parsing never panics and decodes as the reference does; the
        /// serialised form is a valid URI query that parses back to the same pairs and
        /// serialises to itself, so what the rule judged is what is forwarded and cached.
        #[test]
        fn any_raw_query_parses_and_roundtrips(raw in arbitrary_query()) {
            let q = Query::parse(Some(&raw));
            prop_assert_eq!(q.pairs(), &reference_pairs(&raw)[..], "raw {:?}", raw);
            let ser = q.serialize();
            prop_assert_eq!(ser.is_none(), q.is_empty());
            prop_assert!(!ser.as_deref().unwrap_or("").contains('?'), "{:?}", ser);
            let back = Query::parse(ser.as_deref());
            prop_assert_eq!(&back, &q, "raw {:?} serialised {:?}", raw, ser);
            prop_assert_eq!(back.serialize(), ser.clone());
            if let Some(s) = &ser {
                let target = http::uri::PathAndQuery::try_from(format!("/?{s}"));
                prop_assert!(target.is_ok(), "{s:?} is not a valid query");
                if let Ok(t) = target {
                    prop_assert_eq!(t.query(), Some(s.as_str()));
                }
            }
            let sorted = Query::parse(q.serialize_sorted().as_deref());
            let mut want = q.pairs().to_vec();
            want.sort();
            prop_assert_eq!(sorted.pairs(), &want[..]);
        }

        /// Whatever the client spelled, a forced key leaves no value of itself or of its
        /// operator-suffixed forms behind, and the allow-list check names a key the client
        /// sent that no entry admits.
        #[test]
        fn forced_removal_and_allow_list_hold_for_any_raw_query(raw in arbitrary_query()) {
            let mut q = Query::parse(Some(&raw));
            let allowed = vec!["fields".to_string(), "limit".to_string(), "Created__*".to_string()];
            let admitted = |k: &str| {
                let k = k.to_ascii_lowercase();
                k == "fields"
                    || k == "limit"
                    || k.strip_prefix("created").is_some_and(|r| r.is_empty() || OPERATOR_SUFFIXES.contains(&r))
            };
            match q.first_disallowed(&allowed) {
                Some(bad) => {
                    prop_assert!(!admitted(bad), "{bad:?} refused");
                    prop_assert!(q.pairs().iter().any(|(k, _)| k == bad));
                }
                None => prop_assert!(q.pairs().iter().all(|(k, _)| admitted(k)), "raw {:?}", raw),
            }
            for (k, v) in q.first_values_lowercase() {
                prop_assert_eq!(q.first(&k), Some(v.as_str()));
            }
            q.remove_forced("Account.Uid");
            for (k, _) in q.pairs() {
                let k = k.to_ascii_lowercase();
                let rest = k.strip_prefix("account.uid");
                prop_assert!(
                    rest.is_none_or(|r| !r.is_empty() && !OPERATOR_SUFFIXES.contains(&r)),
                    "{k:?} survived the forced key"
                );
            }
        }
    }
}
