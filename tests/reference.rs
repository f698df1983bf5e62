//! docs/reference.md names everything a user types or reads; this keeps it in step with the
//! code: every configuration key (the serde mirror in src/config/file.rs and the rule entry in
//! src/rules/entry.rs), every environment variable the code reads, every problem code and
//! every metric must appear there, each in its own table row.

use std::collections::BTreeSet;
use std::path::Path;

use outseta_gateway::error::ProblemCode;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(REPO).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `pub name: Option<…>` fields of `pub struct <name> {` in `src`.
fn fields(src: &str, strukt: &str) -> Vec<String> {
    let start = src
        .find(&format!("pub struct {strukt} {{"))
        .unwrap_or_else(|| panic!("struct {strukt}"));
    let body = &src[start..];
    let body = &body[..body.find("\n}").expect("end of struct")];
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
        .collect()
}

/// The part of the reference under the heading that starts with `heading`, up to the next
/// heading of the same or a higher level.
fn under<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/reference.md has no heading {heading:?}"));
    let level = heading.chars().take_while(|c| *c == '#').count();
    let rest = &doc[start + heading.len()..];
    let end = rest
        .match_indices("\n#")
        .find(|(i, _)| rest[i + 1..].chars().take_while(|c| *c == '#').count() <= level)
        .map_or(rest.len(), |(i, _)| i);
    &rest[..end]
}

fn has_row(section: &str, name: &str) -> bool {
    section.lines().any(|l| {
        l.starts_with('|')
            && l.split('|')
                .nth(1)
                .is_some_and(|cell| cell.contains(&format!("`{name}")))
    })
}

#[test]
fn every_configuration_key_is_documented() {
    let doc = read("docs/reference.md");
    let file = read("src/config/file.rs");
    let sections = [
        ("OutsetaSection", "outseta"),
        ("ServerSection", "server"),
        ("AuthSection", "auth"),
        ("CacheSection", "cache"),
        ("UpstreamLimitSection", "upstream_limit"),
        ("UserLimitSection", "user_limit"),
        ("CorsSection", "cors"),
    ];
    let mut missing = Vec::new();
    for (strukt, name) in sections {
        let part = under(&doc, &format!("### `[{name}]`"));
        for key in fields(&file, strukt) {
            if !has_row(part, &key) {
                missing.push(format!("[{name}] {key}"));
            }
        }
    }
    let rule = under(&doc, "### `[[rule]]`");
    for key in fields(&read("src/rules/entry.rs"), "RuleEntry") {
        if !has_row(rule, &key) {
            missing.push(format!("[[rule]] {key}"));
        }
    }
    assert!(missing.is_empty(), "not in docs/reference.md: {missing:?}");
}

#[test]
fn every_environment_variable_the_code_reads_is_documented() {
    let reference = read("docs/reference.md");
    let doc = under(&reference, "## Environment variables");
    let mut names = BTreeSet::new();
    let mut dirs = vec![Path::new(REPO).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                for (i, _) in text.match_indices("\"OUTSETA_") {
                    let rest = &text[i + 1..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                        .unwrap_or(rest.len());
                    names.insert(rest[..end].to_string());
                }
            }
        }
    }
    assert!(names.contains("OUTSETA_API_KEY"), "{names:?}");
    let missing: Vec<_> = names.iter().filter(|n| !has_row(doc, n)).collect();
    assert!(missing.is_empty(), "not in docs/reference.md: {missing:?}");
}

#[test]
fn every_problem_code_is_documented() {
    let reference = read("docs/reference.md");
    let doc = under(&reference, "## Problem codes");
    let missing: Vec<_> = ProblemCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !has_row(doc, c))
        .collect();
    assert!(missing.is_empty(), "not in docs/reference.md: {missing:?}");
}

#[test]
fn every_metric_is_documented() {
    let reference = read("docs/reference.md");
    let doc = under(&reference, "## Metrics");
    let src = read("src/telemetry/metrics.rs");
    let names: Vec<&str> = src
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| l.split_once("&str = \"").map(|(_, v)| v))
        .filter_map(|v| v.split_once('"').map(|(n, _)| n))
        .collect();
    assert!(names.len() > 20, "{names:?}");
    let missing: Vec<_> = names.iter().filter(|n| !has_row(doc, n)).collect();
    assert!(missing.is_empty(), "not in docs/reference.md: {missing:?}");
}
