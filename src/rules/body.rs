//! JSON body rewriting for `body_allow` / `body_set` (top-level keys, case-insensitive).
//!
//! Order, as for queries: forced keys are removed in any case, then the allow-list is checked
//! against what the client sent, then the forced values are inserted.

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
    allow: Option<&[String]>,
    set: &[(String, serde_json::Value)],
) -> Result<Bytes, BodyError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| BodyError::NotJsonObject)?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(BodyError::NotJsonObject);
    };
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
    use serde_json::json;

    fn allow(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allow_list_any_case() {
        let a = allow(&["FirstName", "LastName"]);
        let out = rewrite(br#"{"firstname":"A","LASTNAME":"B"}"#, Some(&a), &[]).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
            json!({"firstname":"A","LASTNAME":"B"})
        );
        assert_eq!(
            rewrite(br#"{"FirstName":"A","email":"x"}"#, Some(&a), &[]),
            Err(BodyError::KeyNotAllowed("email".into()))
        );
    }

    #[test]
    fn forced_keys_replace_client_values() {
        let set = vec![("FromPerson".to_string(), json!({"Uid": "me"}))];
        let a = allow(&["Subject", "Body"]);
        let out = rewrite(
            br#"{"Subject":"s","fromperson":{"Uid":"victim"},"FROMPERSON":1}"#,
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
            assert_eq!(rewrite(b, None, &[]), Err(BodyError::NotJsonObject));
        }
    }
}
