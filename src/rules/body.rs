//! JSON body rewriting for `body_drop` / `body_allow` / `body_set` (top-level keys,
//! case-insensitive).
//!
//! Order: dropped keys (read-only fields a client sends back with a whole object it read) are
//! removed, forced keys are removed in any case, then the allow-list is checked against what
//! is left of what the client sent, then the forced values are inserted.

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body is not a JSON object (→ 400).
    NotJsonObject,
    /// A top-level key outside `body_allow` (→ 403). Holds the key as sent.
    KeyNotAllowed(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotJsonObject => f.write_str("request body must be a JSON object"),
            Self::KeyNotAllowed(k) => write!(f, "body field {k:?} is not allowed by this rule"),
        }
    }
}

/// Applies the rule to `body`; returns the re-serialised JSON object.
pub fn rewrite(
    body: &[u8],
    drop: &[String],
    allow: Option<&[String]>,
    set: &[(String, serde_json::Value)],
) -> Result<Bytes, BodyError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| BodyError::NotJsonObject)?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(BodyError::NotJsonObject);
    };
    if !drop.is_empty() {
        map.retain(|k, _| !drop.iter().any(|d| d.eq_ignore_ascii_case(k)));
    }
    for (key, _) in set {
        map.retain(|k, _| !k.eq_ignore_ascii_case(key));
    }
    if let Some(allow) = allow
        && let Some(bad) = map
            .keys()
            .find(|k| !allow.iter().any(|a| a.eq_ignore_ascii_case(k)))
    {
        return Err(BodyError::KeyNotAllowed(bad.clone()));
    }
    for (key, value) in set {
        map.insert(key.clone(), value.clone());
    }
    serde_json::to_vec(&serde_json::Value::Object(map))
        .map(Bytes::from)
        .map_err(|_| BodyError::NotJsonObject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    fn allow(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allow_list_any_case() {
        let a = allow(&["FirstName", "LastName"]);
        let out = rewrite(br#"{"firstname":"A","LASTNAME":"B"}"#, &[], Some(&a), &[]).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
            json!({"firstname":"A","LASTNAME":"B"})
        );
        assert_eq!(
            rewrite(br#"{"FirstName":"A","email":"x"}"#, &[], Some(&a), &[]),
            Err(BodyError::KeyNotAllowed("email".into()))
        );
    }

    #[test]
    fn dropped_keys_go_before_the_allow_list_and_the_rest_is_still_judged() {
        let a = allow(&["FirstName"]);
        let drop = allow(&["Uid", "Account", "Created"]);
        let out = rewrite(
            br#"{"uid":"P1","FirstName":"Zed","ACCOUNT":{"Uid":"A1"},"Created":"x"}"#,
            &drop,
            Some(&a),
            &[],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, json!({"FirstName":"Zed"}));
        // A key neither dropped nor allowed is still refused.
        assert_eq!(
            rewrite(br#"{"Uid":"P1","Email":"x@y.z"}"#, &drop, Some(&a), &[]),
            Err(BodyError::KeyNotAllowed("Email".into()))
        );
    }

    #[test]
    fn forced_keys_replace_client_values() {
        let set = vec![("FromPerson".to_string(), json!({"Uid": "me"}))];
        let a = allow(&["Subject", "Body"]);
        let out = rewrite(
            br#"{"Subject":"s","fromperson":{"Uid":"victim"},"FROMPERSON":1}"#,
            &[],
            Some(&a),
            &set,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, json!({"Subject":"s","FromPerson":{"Uid":"me"}}));
    }

    #[test]
    fn non_objects_are_refused() {
        for b in [&b"not json"[..], b"[1,2]", b"\"s\"", b""] {
            assert_eq!(rewrite(b, &[], None, &[]), Err(BodyError::NotJsonObject));
        }
    }

    /// Top-level keys: the ones the rules name, in several cases, and arbitrary ones.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(vec![
                "Subject", "subject", "SUBJECT", "Body", "Source", "FromPerson", "fromperson",
                "FROMPERSON", "Email", "Uid", "", "é",
            ])
            .prop_map(str::to_string),
            1 => "\\PC{0,5}",
        ]
    }

    /// Any JSON value (no floats: their text form need not round-trip exactly).
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            "\\PC{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn json_object() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::vec((key(), json_value()), 0..6).prop_map(|kv| kv.into_iter().collect())
    }

    fn allow_list() -> impl Strategy<Value = Option<Vec<String>>> {
        prop::option::of(prop::sample::subsequence(
            vec![
                "Subject".to_string(),
                "body".to_string(),
                "SOURCE".to_string(),
                "Uid".to_string(),
            ],
            0..=4,
        ))
    }

    fn forced() -> impl Strategy<Value = Vec<(String, Value)>> {
        let key = prop::sample::select(vec!["FromPerson", "fromPerson", "Uid", "Subject"]);
        prop::collection::vec((key.prop_map(str::to_string), json_value()), 0..3)
    }

    /// Arbitrary bytes, often JSON-shaped: fragments, invalid UTF-8, objects with repeated
    /// keys, deep nesting.
    fn arbitrary_body() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            3 => prop::sample::select(vec![
                "{", "}", "[", "]", ":", ",", "\"Subject\"", "\"FromPerson\"", "\"fromperson\"",
                "\"x\"", "1", "-0", "1e999", "null", "true", "\"\\u0000\"", "\"\\ud800\"", " ",
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 1..4),
        ];
        prop_oneof![
            4 => prop::collection::vec(piece, 0..24).prop_map(|p| p.concat()),
            1 => prop::collection::vec(any::<u8>(), 0..64),
            // an object written out by hand, so a key may repeat in any case
            2 => prop::collection::vec((key(), json_value()), 0..6).prop_map(|kv| {
                let members: Vec<String> = kv
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                    .collect();
                format!("{{{}}}", members.join(",")).into_bytes()
            }),
            1 => (1usize..4000).prop_map(|n| {
                let mut b = b"{\"Subject\":".repeat(n);
                b.extend(std::iter::repeat_n(b'}', n));
                b
            }),
        ]
    }

    /// The rewritten body is a JSON object whose keys are all admitted by `allow` (any case)
    /// or forced by `set` (as written), whose forced keys hold their forced values (the last
    /// one when a key is forced twice), and whose other keys hold what the client sent.
    fn check_output(
        out: &[u8],
        client: &Map<String, Value>,
        allow: Option<&[String]>,
        set: &[(String, Value)],
    ) -> Result<(), TestCaseError> {
        let parsed: Value = serde_json::from_slice(out)
            .map_err(|e| TestCaseError::fail(format!("output is not JSON: {e}")))?;
        let Value::Object(map) = parsed else {
            return Err(TestCaseError::fail("output is not an object"));
        };
        for (k, v) in &map {
            match set.iter().rev().find(|(f, _)| f == k) {
                Some((_, forced)) => prop_assert_eq!(v, forced, "forced {:?} lost", k),
                None => {
                    prop_assert!(
                        allow.is_none_or(|a| a.iter().any(|x| x.eq_ignore_ascii_case(k))),
                        "{k:?} forwarded, not in {allow:?}"
                    );
                    prop_assert!(
                        !set.iter().any(|(f, _)| f.eq_ignore_ascii_case(k)),
                        "client {k:?} beside a forced key"
                    );
                    prop_assert_eq!(Some(v), client.get(k));
                }
            }
        }
        for (f, _) in set {
            prop_assert!(map.contains_key(f), "forced {f:?} missing");
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Any JSON object: refused only for a client key outside the allow-list that is not
        /// forced; otherwise rewritten as [`check_output`] requires.
        #[test]
        fn any_object_is_refused_or_rewritten_safely(
            client in json_object(), allow in allow_list(), set in forced(),
        ) {
            let body = serde_json::to_vec(&Value::Object(client.clone())).unwrap();
            let unforced: Vec<&String> = client
                .keys()
                .filter(|k| !set.iter().any(|(f, _)| f.eq_ignore_ascii_case(k)))
                .collect();
            let admitted = |k: &str| allow.as_ref().is_none_or(|a| a.iter().any(|x| x.eq_ignore_ascii_case(k)));
            match rewrite(&body, &[], allow.as_deref(), &set) {
                Ok(out) => {
                    prop_assert!(unforced.iter().all(|k| admitted(k)));
                    check_output(&out, &client, allow.as_deref(), &set)?;
                }
                Err(BodyError::KeyNotAllowed(k)) => {
                    prop_assert!(unforced.contains(&&k) && !admitted(&k), "{k:?} refused");
                }
                Err(BodyError::NotJsonObject) => prop_assert!(false, "an object was called not one"),
            }
        }

        /// Any bytes: never panics (deep nesting included); accepted only when they are a
        /// JSON object, and then rewritten as [`check_output`] requires.
        #[test]
        fn any_bytes_are_refused_or_rewritten_safely(
            body in arbitrary_body(), allow in allow_list(), set in forced(),
        ) {
            let client = serde_json::from_slice::<Value>(&body).ok();
            match rewrite(&body, &[], allow.as_deref(), &set) {
                Ok(out) => {
                    let Some(Value::Object(client)) = client else {
                        return Err(TestCaseError::fail(format!("accepted a non-object: {body:?}")));
                    };
                    check_output(&out, &client, allow.as_deref(), &set)?;
                }
                Err(BodyError::NotJsonObject) => {
                    prop_assert!(!matches!(client, Some(Value::Object(_))));
                }
                Err(BodyError::KeyNotAllowed(k)) => {
                    let Some(Value::Object(client)) = client else {
                        return Err(TestCaseError::fail("a key refused in a non-object"));
                    };
                    prop_assert!(client.contains_key(&k));
                }
            }
        }
    }
}
