//! The raw shape of one `[[rules]]` entry in `gateway.toml` (a serde mirror, no logic),
//! compiled by [`super::Rule::compile`]. The configuration file reader ([`crate::config::file`])
//! parses the file into these; every field is optional so that validation reports what is missing.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct RuleEntry {
    pub name: Option<String>,
    pub methods: Option<Vec<String>>,
    pub path: Option<String>,
    pub when: Option<String>,
    pub auth: Option<String>,
    pub credential: Option<String>,
    pub cache: Option<String>,
    pub query_allow: Option<Vec<String>>,
    pub query_set: Option<BTreeMap<String, String>>,
    pub fields_allow: Option<Vec<String>>,
    pub body_allow: Option<Vec<String>>,
    pub body_drop: Option<Vec<String>>,
    pub body_set: Option<BTreeMap<String, String>>,
    pub response_when: Option<String>,
    pub invalidates: Option<Vec<String>>,
    pub precheck: Option<PrecheckEntry>,
}

/// `precheck = { path = "…", fields = "…", when = "…" }`: a read made before a write is
/// forwarded, judged by `when`.
#[derive(Debug, Default, Deserialize)]
pub struct PrecheckEntry {
    pub path: Option<String>,
    pub fields: Option<String>,
    pub when: Option<String>,
}
