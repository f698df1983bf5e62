//! Module dependencies point one way.
//!
//! Reads every file under `src/`, collects each reference to another module of the crate
//! (`crate::a::b`, `super::x`, `self::x`, and a parent module's bare `child::x` paths; in `use`
//! lines, grouped `use crate::{a, b::c}` forms and inline paths alike) and builds two graphs:
//! one between the crate's top-level modules, one between the submodules of `proxy`. Neither
//! may contain a cycle. Test-only modules (`#[cfg(test)] mod x { … }` and `#[cfg(test)] mod x;`)
//! are not part of the architecture and are skipped; so are `src/lib.rs` (the crate root only
//! declares and re-exports) and `src/main.rs` (a separate crate that sees the library from outside).
//!
//! The simulator crate (`crates/outseta-sim/src`) is read the same way: its top-level modules
//! have no cycle either, it never names the gateway's crate, and in the gateway only `demo`
//! and `simulate` use it (the workspace points one way: gateway → outseta-sim).
//!
//! The layers and the direction are described in `docs/architecture.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Cycles that still exist, each as printed by this test (`a → b → a`, rotated to start at its
/// smallest module). This list may only shrink; the goal is an empty list.
const KNOWN_TOP_LEVEL_CYCLES: &[&str] = &[];
const KNOWN_PROXY_CYCLES: &[&str] = &[];

/// The simulator crate's sources, relative to the workspace root.
const SIMULATOR_SRC: &str = "crates/outseta-sim/src";

/// One module's source, with comments, string literals and test-only modules blanked out
/// (line breaks kept, so offsets still give line numbers).
struct SourceFile {
    module: Vec<String>,
    rel_path: String,
    code: String,
}

/// `a` depends on `b` because of `file:line`.
#[derive(Clone, Debug)]
struct Edge {
    from: String,
    to: String,
    at: String,
}

#[test]
fn top_level_modules_have_no_cycles() {
    let crate_ = Crate::read();
    let edges = crate_.edges_between(|m| m.first().cloned());
    check(
        "top-level module",
        &edges,
        KNOWN_TOP_LEVEL_CYCLES,
        "KNOWN_TOP_LEVEL_CYCLES",
    );
}

#[test]
fn proxy_submodules_have_no_cycles() {
    let crate_ = Crate::read();
    let edges = crate_.edges_between(|m| match m {
        [first, rest @ ..] if first == "proxy" => Some(
            rest.first()
                .map_or_else(|| "proxy".to_string(), |s| format!("proxy::{s}")),
        ),
        _ => None,
    });
    check(
        "proxy submodule",
        &edges,
        KNOWN_PROXY_CYCLES,
        "KNOWN_PROXY_CYCLES",
    );
}

/// The simulator crate (`crates/outseta-sim`) follows the same rule between its own modules.
#[test]
fn simulator_modules_have_no_cycles() {
    let crate_ = Crate::read_at(SIMULATOR_SRC);
    assert!(
        crate_.files.len() > 10,
        "expected the simulator's sources under {SIMULATOR_SRC}"
    );
    let edges = crate_.edges_between(|m| m.first().cloned());
    check("simulator module", &edges, &[], "(none allowed)");
}

/// The workspace points one way: gateway → outseta-sim. The simulator neither names the
/// gateway's crate in its code nor depends on its package; in the gateway only `demo` and
/// `simulate` (and the binary, which calls them) use the simulator.
#[test]
fn the_simulator_is_used_only_by_demo_and_simulate_and_uses_nothing_of_the_gateway() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = fs::read_to_string(root.join("crates/outseta-sim/Cargo.toml"))
        .expect("the simulator's Cargo.toml");
    assert!(
        !manifest.contains("outseta-gateway"),
        "crates/outseta-sim/Cargo.toml must not depend on the gateway"
    );
    let mut offenders = Vec::new();
    for file in &Crate::read_at(SIMULATOR_SRC).files {
        if file.code.contains("outseta_gateway") {
            offenders.push(format!("{} names outseta_gateway", file.rel_path));
        }
    }
    for file in &Crate::read().files {
        let allowed = matches!(
            file.module.first().map(String::as_str),
            Some("demo" | "simulate")
        );
        if !allowed && file.code.contains("outseta_sim") {
            offenders.push(format!(
                "{} uses outseta_sim (only demo and simulate may)",
                file.rel_path
            ));
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// The scanner itself: the forms the graphs are built from are all recognised.
#[test]
fn scanner_sees_every_reference_form() {
    let code = strip(
        "use crate::{a::x, b::{c, d::y}};\n\
         // crate::nope::x\n\
         let s = \"crate::nope::y\";\n\
         let v = crate::e::f(super::g::h);\n\
         #[cfg(test)]\nmod tests {\n    use crate::nope::z;\n}\n\
         use self::k::l;\n\
         let w = m::n();\n",
    );
    let module: Vec<String> = vec!["p".into(), "q".into()];
    let children: BTreeSet<String> = ["k".to_string(), "m".to_string()].into();
    let found: Vec<(Vec<String>, usize)> = references(&code, &module, &children);
    let paths: BTreeSet<String> = found.iter().map(|(p, _)| p.join("::")).collect();
    let expected: BTreeSet<String> = [
        "a::x",
        "b::c",
        "b::d::y",
        "e::f",
        "p::g::h",
        "p::q::k::l",
        "p::q::m::n",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(paths, expected);
}

struct Crate {
    files: Vec<SourceFile>,
    /// Every module that has a file, as a path.
    modules: BTreeSet<Vec<String>>,
    /// Names the crate root re-exports (`pub use app::bind;`) → the module they come from.
    root_reexports: BTreeMap<String, String>,
}

impl Crate {
    /// The gateway: `src/`.
    fn read() -> Crate {
        Crate::read_at("src")
    }

    /// The crate whose sources are under `dir` (relative to the workspace root).
    fn read_at(dir: &str) -> Crate {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut paths = Vec::new();
        walk(&src, &mut paths);
        paths.sort();

        let mut files = Vec::new();
        let mut test_only: BTreeSet<Vec<String>> = BTreeSet::new();
        let mut root_reexports = BTreeMap::new();
        for path in &paths {
            let rel = path.strip_prefix(&src).expect("under src");
            let rel_str = rel.to_string_lossy().replace('\\', "/");
            let rel_path = format!("{dir}/{rel_str}");
            let text = fs::read_to_string(path).expect("readable source");
            let module = module_of(rel);
            if rel_str == "main.rs" {
                continue;
            }
            let code = strip(&text);
            for child in test_only_children(&text) {
                let mut m = module.clone();
                m.push(child);
                test_only.insert(m);
            }
            if rel_str == "lib.rs" {
                for (name, from) in lib_reexports(&code) {
                    root_reexports.insert(name, from);
                }
                continue;
            }
            files.push(SourceFile {
                module,
                rel_path,
                code,
            });
        }
        files.retain(|f| !test_only.iter().any(|t| f.module.starts_with(t)));
        let modules = files.iter().map(|f| f.module.clone()).collect();
        Crate {
            files,
            modules,
            root_reexports,
        }
    }

    /// The longest prefix of `path` that is a module with a file.
    fn module_of_path(&self, path: &[String]) -> Vec<String> {
        let mut path = path.to_vec();
        if let Some(first) = path.first()
            && !self.modules.iter().any(|m| m.first() == Some(first))
            && let Some(from) = self.root_reexports.get(first)
        {
            path = vec![from.clone()];
        }
        for len in (1..=path.len()).rev() {
            if self.modules.contains(&path[..len]) {
                return path[..len].to_vec();
            }
        }
        Vec::new()
    }

    /// Edges between the nodes `node` maps modules to (`None`: not part of this graph).
    fn edges_between(&self, node: impl Fn(&[String]) -> Option<String>) -> Vec<Edge> {
        let mut edges = Vec::new();
        for file in &self.files {
            let Some(from) = node(&file.module) else {
                continue;
            };
            let children: BTreeSet<String> = self
                .modules
                .iter()
                .filter(|m| m.len() == file.module.len() + 1 && m.starts_with(&file.module))
                .filter_map(|m| m.last().cloned())
                .collect();
            for (path, offset) in references(&file.code, &file.module, &children) {
                let target = self.module_of_path(&path);
                let Some(to) = node(&target) else { continue };
                if to == from {
                    continue;
                }
                let line = file.code[..offset].matches('\n').count() + 1;
                edges.push(Edge {
                    from: from.clone(),
                    to,
                    at: format!("{}:{line} ({})", file.rel_path, path.join("::")),
                });
            }
        }
        edges
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `proxy/context.rs` → `proxy::context`; `cache/mod.rs` → `cache`; `lib.rs` → the root.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
        parts.push(stem.to_string());
    }
    parts
}

/// Blanks comments, string and char literals and inline `#[cfg(test)] mod x { … }` bodies.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    blank(&mut out, b' ');
                    blank(&mut out, b' ');
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    blank(&mut out, b' ');
                    blank(&mut out, b' ');
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if (rest.starts_with(b"r\"") || rest.starts_with(b"r#") || rest.starts_with(b"br"))
            && !prev_is_ident(b, i)
            && raw_string_len(rest).is_some()
        {
            let len = raw_string_len(rest).unwrap_or(1);
            for &c in &b[i..i + len] {
                blank(&mut out, c);
            }
            i += len;
        } else if b[i] == b'"' {
            blank(&mut out, b[i]);
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                blank(&mut out, b[i]);
                i += 1;
            }
            if i < b.len() {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{..}') — not a lifetime.
            let end = if rest.len() >= 3 && rest[1] != b'\\' && rest[2] == b'\'' {
                Some(3)
            } else if rest.len() >= 2 && rest[1] == b'\\' {
                rest[2..].iter().position(|&c| c == b'\'').map(|p| p + 3)
            } else {
                None
            };
            let len = end.unwrap_or(1);
            for &c in &b[i..i + len] {
                blank(&mut out, c);
            }
            i += len;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let mut code = String::from_utf8_lossy(&out).into_owned();
    blank_test_modules(&mut code);
    code
}

fn prev_is_ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// Length of a raw string literal (`r"…"`, `r#"…"#`, `br"…"`) at the start of `s`.
fn raw_string_len(s: &[u8]) -> Option<usize> {
    let mut i = if s.starts_with(b"br") { 2 } else { 1 };
    let mut hashes = 0;
    while s.get(i) == Some(&b'#') {
        hashes += 1;
        i += 1;
    }
    if s.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    let end = s[i..]
        .windows(close.len())
        .position(|w| w == close.as_slice())?;
    Some(i + end + close.len())
}

/// Blanks the bodies of `#[cfg(test)] mod x { … }` (braces balanced; comments and strings
/// are already blank).
fn blank_test_modules(code: &mut String) {
    let mut bytes = std::mem::take(code).into_bytes();
    let mut from = 0;
    while let Some(pos) = find(&bytes[from..], b"#[cfg(test)]") {
        let attr = from + pos;
        from = attr + 1;
        let mut j = attr + b"#[cfg(test)]".len();
        // Further attributes between `#[cfg(test)]` and the item.
        loop {
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            if bytes[j..].starts_with(b"#[") {
                while j < bytes.len() && bytes[j] != b']' {
                    j += 1;
                }
                j += 1;
            } else {
                break;
            }
        }
        let item = &bytes[j..];
        let is_mod = item.starts_with(b"mod ") || item.starts_with(b"pub mod ");
        if !is_mod {
            continue;
        }
        let Some(brace) = bytes[j..].iter().position(|&c| c == b'{' || c == b';') else {
            continue;
        };
        let open = j + brace;
        if bytes[open] == b';' {
            continue;
        }
        let mut depth = 0;
        let mut k = open;
        while k < bytes.len() {
            match bytes[k] {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            k += 1;
        }
        let end = k.min(bytes.len());
        for c in &mut bytes[open + 1..end] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = k.min(bytes.len());
    }
    *code = String::from_utf8_lossy(&bytes).into_owned();
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Names of `#[cfg(test)] mod x;` declarations (their files are test-only).
fn test_only_children(text: &str) -> Vec<String> {
    let code = strip(text);
    let mut out = Vec::new();
    let mut lines = code.lines().map(str::trim).filter(|l| !l.is_empty());
    while let Some(line) = lines.next() {
        if line == "#[cfg(test)]"
            && let Some(next) = lines.next()
        {
            let decl = next
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ");
            if let Some(name) = decl.strip_prefix("mod ").and_then(|d| d.strip_suffix(';')) {
                out.push(name.trim().to_string());
            }
        }
    }
    out
}

/// `pub use app::{Bound, bind};` in the crate root → `Bound` → `app`, `bind` → `app`.
fn lib_reexports(code: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stmt in code.split(';') {
        let stmt = stmt.trim();
        let Some(rest) = stmt.strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_start_matches("crate::");
        let b = rest.as_bytes();
        let mut paths = Vec::new();
        parse_tree(b, 0, Vec::new(), &mut paths);
        for p in paths {
            if let (Some(first), Some(last)) = (p.first(), p.last()) {
                out.push((last.clone(), first.clone()));
            }
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every module path `code` refers to, absolute from the crate root, with the byte offset of
/// the reference. `module` is the file's own module; `children` its submodules' names.
fn references(
    code: &str,
    module: &[String],
    children: &BTreeSet<String>,
) -> Vec<(Vec<String>, usize)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !is_ident(b[i]) || prev_is_ident(b, i) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        let word = &code[start..i];
        let after_colons = start >= 2 && &b[start - 2..start] == b"::";
        if after_colons || !b[i..].starts_with(b"::") {
            continue;
        }
        let (base, from) = match word {
            "crate" => (Vec::new(), i + 2),
            "super" | "self" => {
                // `super::super::x` and `self::x`, relative to this file's module.
                let mut base = module.to_vec();
                let mut j = start;
                loop {
                    if code[j..].starts_with("super::") {
                        base.pop();
                        j += "super::".len();
                    } else if code[j..].starts_with("self::") {
                        j += "self::".len();
                    } else {
                        break;
                    }
                }
                (base, j)
            }
            w if children.contains(w) => (module.to_vec(), start),
            _ => continue,
        };
        let mut paths = Vec::new();
        let end = parse_tree(b, from, base, &mut paths);
        for p in paths {
            out.push((p, start));
        }
        i = end.max(i);
    }
    out
}

/// Parses a path tree (`a::b`, `a::{b, c::{d, e}}`) at `i`; pushes each full path onto `out`
/// and returns where the tree ends.
fn parse_tree(b: &[u8], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'{' {
            i += 1;
            loop {
                while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    return i + 1;
                }
                let before = i;
                i = parse_tree(b, i, path.clone(), out);
                if i == before {
                    i += 1;
                }
            }
        }
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        if i == start {
            break;
        }
        let seg = String::from_utf8_lossy(&b[start..i]).into_owned();
        if seg != "self" {
            path.push(seg);
        }
        if b[i..].starts_with(b"::") {
            i += 2;
        } else {
            break;
        }
    }
    // `x as y` inside a group: skip the alias.
    let mut j = i;
    while j < b.len() && b[j].is_ascii_whitespace() {
        j += 1;
    }
    if b[j..].starts_with(b"as ") {
        j += 3;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        while j < b.len() && is_ident(b[j]) {
            j += 1;
        }
        i = j;
    }
    if !path.is_empty() {
        out.push(path);
    }
    i
}

/// Fails on any cycle not in `known`, and on any `known` cycle that no longer exists.
fn check(what: &str, edges: &[Edge], known: &[&str], list: &str) {
    let mut graph: BTreeMap<&str, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for e in edges {
        graph
            .entry(&e.from)
            .or_default()
            .entry(&e.to)
            .or_default()
            .push(&e.at);
        graph.entry(&e.to).or_default();
    }
    let cycles = elementary_cycles(&graph);
    let mut report = String::new();
    let mut found = BTreeSet::new();
    for cycle in &cycles {
        let name = cycle
            .iter()
            .chain(cycle.first())
            .copied()
            .collect::<Vec<_>>()
            .join(" → ");
        if !known.contains(&name.as_str()) {
            report.push_str(&format!("new {what} cycle: {name}\n"));
            for w in cycle
                .windows(2)
                .chain(std::iter::once(&[cycle[cycle.len() - 1], cycle[0]][..]))
            {
                let sites = &graph[w[0]][w[1]];
                report.push_str(&format!("  {} → {}: {}\n", w[0], w[1], sites[0]));
                for s in &sites[1..] {
                    report.push_str(&format!(
                        "  {:w$}   {s}\n",
                        "",
                        w = w[0].len() + w[1].len() + 3
                    ));
                }
            }
        }
        found.insert(name);
    }
    for k in known {
        if !found.contains(*k) {
            report.push_str(&format!(
                "{what} cycle {k} is gone: remove it from {list}\n"
            ));
        }
    }
    assert!(report.is_empty(), "\n{report}");
}

/// All elementary cycles (each once, rotated to start at its smallest node), by depth-first
/// search from each node over the nodes greater than it.
fn elementary_cycles<'a>(
    graph: &BTreeMap<&'a str, BTreeMap<&'a str, Vec<&'a str>>>,
) -> Vec<Vec<&'a str>> {
    fn dfs<'a>(
        graph: &BTreeMap<&'a str, BTreeMap<&'a str, Vec<&'a str>>>,
        start: &'a str,
        node: &'a str,
        path: &mut Vec<&'a str>,
        out: &mut Vec<Vec<&'a str>>,
    ) {
        for &next in graph[node].keys() {
            if next == start {
                out.push(path.clone());
            } else if next > start && !path.contains(&next) && out.len() < 1000 {
                path.push(next);
                dfs(graph, start, next, path, out);
                path.pop();
            }
        }
    }
    let mut out = Vec::new();
    for &start in graph.keys() {
        let mut path = vec![start];
        dfs(graph, start, start, &mut path, &mut out);
    }
    out
}
