//! The layering in `src/lib.rs` is the rule: each top-level module imports
//! only the modules its line there names. This test reads that map, then
//! every file under `src/`, resolves each `crate::…` and `super::…` path
//! to the top-level module it reaches, and fails on any import the map
//! does not allow (and on a module the map does not list).
//!
//! Sessions that may use only the `store` interface (`"store" interface`
//! in the map) must not reach `store`'s implementation modules.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `store` modules behind the interface: files, keys, databases.
const STORE_INTERNALS: &[&str] = &[
    "control", "db", "keys", "local", "mailbox", "pgpkeys", "schema", "scripts", "spool",
];

#[derive(Debug, Default)]
struct Rule {
    imports: BTreeSet<String>,
    store_interface_only: bool,
}

/// Reads the map in `src/lib.rs`: `- \`name\` (imports \`a\`, \`b\`): …`.
fn read_map(lib: &str) -> BTreeMap<String, Rule> {
    let mut items: Vec<String> = Vec::new();
    for line in lib.lines() {
        let Some(text) = line.strip_prefix("//!") else {
            continue;
        };
        let text = text.trim();
        if let Some(item) = text.strip_prefix("- `") {
            items.push(item.to_string());
        } else if text.is_empty() {
            items.push(String::new());
        } else if let Some(last) = items.last_mut()
            && !last.is_empty()
        {
            last.push(' ');
            last.push_str(text);
        }
    }
    let mut map = BTreeMap::new();
    for item in items.iter().filter(|i| !i.is_empty()) {
        let (name, rest) = item.split_once('`').expect("a module name in backquotes");
        let rest = rest.trim_start();
        let Some(inner) = rest.strip_prefix("(imports ") else {
            continue;
        };
        let inner = &inner[..inner.find(')').expect("the imports end with ')'")];
        let mut rule = Rule::default();
        if inner.trim() != "nothing" {
            for part in inner.split(',') {
                let part = part.trim();
                let module = part.trim_start_matches('`');
                let module = &module[..module.find('`').expect("a quoted module")];
                if part.ends_with("interface") {
                    rule.store_interface_only = true;
                }
                rule.imports.insert(module.to_string());
            }
        }
        map.insert(name.to_string(), rule);
    }
    map
}

/// The module path of a file: `src/imap/ops/fetch.rs` → imap, ops, fetch.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// Every path a `use` tree or an expression names after `at` (which
/// points just past `crate::` or a chain of `super::`), as segments; a
/// `{a, b::c}` group gives one path per member.
fn paths_at(code: &str, at: usize) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut i = at;
    let mut prefix = Vec::new();
    loop {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if i > start {
            prefix.push(code[start..i].to_string());
        }
        let group = if code[i..].starts_with("::{") {
            Some(i + 3)
        } else if prefix.is_empty() && code[i..].starts_with('{') {
            Some(i + 1)
        } else {
            None
        };
        if let Some(open) = group {
            let mut depth = 1;
            let mut j = open;
            let mut member_start = open;
            let mut out = Vec::new();
            while j < bytes.len() && depth > 0 {
                match bytes[j] {
                    b'{' => depth += 1,
                    b'}' => depth -= 1,
                    b',' if depth == 1 => {
                        for p in paths_at(&code[..j], member_start) {
                            out.push([prefix.clone(), p].concat());
                        }
                        member_start = j + 1;
                    }
                    _ => {}
                }
                j += 1;
            }
            let end = j.saturating_sub(1);
            for p in paths_at(&code[..end], member_start) {
                out.push([prefix.clone(), p].concat());
            }
            return out;
        }
        if code[i..].starts_with("::") && i > start {
            i += 2;
            continue;
        }
        // Skip white space inside a group member (`{ a, b }`).
        if i == start && i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        return if prefix.is_empty() {
            Vec::new()
        } else {
            vec![prefix]
        };
    }
}

/// Absolute paths (from the crate root) that one file's code names.
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut search = 0;
    while let Some(found) = code[search..].find("crate::") {
        let at = search + found;
        search = at + 7;
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        out.extend(paths_at(&code, at + 7));
    }
    search = 0;
    while let Some(found) = code[search..].find("super::") {
        let at = search + found;
        let before = code[..at].chars().next_back();
        let mut end = at;
        let mut base = module.to_vec();
        while code[end..].starts_with("super::") {
            end += 7;
            base.pop();
        }
        search = end;
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        for p in paths_at(&code, end) {
            out.push([base.clone(), p].concat());
        }
    }
    out
}

/// What one file of module `module` imports that `map` forbids.
fn violations(map: &BTreeMap<String, Rule>, module: &[String], code: &str) -> Vec<String> {
    let Some(top) = module.first() else {
        return Vec::new();
    };
    let Some(rule) = map.get(top) else {
        return vec![format!("module `{top}` is not in src/lib.rs's map")];
    };
    let mut out = Vec::new();
    for path in references(module, code) {
        let Some(target) = path.first() else { continue };
        if target == top || !map.contains_key(target) {
            // Its own module, or a crate-root item such as a macro.
            continue;
        }
        if !rule.imports.contains(target) {
            out.push(format!("`{top}` imports `{}`", path.join("::")));
        } else if target == "store"
            && rule.store_interface_only
            && path
                .get(1)
                .is_some_and(|m| STORE_INTERNALS.contains(&m.as_str()))
        {
            out.push(format!(
                "`{top}` reaches behind the store interface: `{}`",
                path.join("::")
            ));
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_imports_only_what_the_map_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let map = read_map(&lib);
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_string())
        .collect();
    let mapped: BTreeSet<String> = map.keys().cloned().collect();
    assert_eq!(
        declared, mapped,
        "src/lib.rs: `pub mod` lines and the map differ"
    );
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    for file in files {
        let module = module_path(&src, &file);
        if module.is_empty() || module == ["main"] {
            continue;
        }
        let code = std::fs::read_to_string(&file).unwrap();
        for v in violations(&map, &module, &code) {
            problems.push(format!("{}: {v}", file.display()));
        }
    }
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "imports the map forbids:\n{}",
        problems.join("\n")
    );
}

fn sample_map() -> BTreeMap<String, Rule> {
    read_map(
        "//! - `util` (imports nothing): x.\n\
         //! - `store` (imports `util`): y.\n\
         //! - `config` (imports `store`,\n\
         //!   `util`): z.\n\
         //! - `smtp` (imports `config`, `store` interface): w.\n",
    )
}

#[test]
fn the_map_reads_continued_lines() {
    let map = sample_map();
    assert!(map["util"].imports.is_empty());
    assert_eq!(
        map["config"].imports,
        ["store", "util"].map(String::from).into()
    );
    assert!(map["smtp"].store_interface_only);
    assert!(!map["config"].store_interface_only);
}

#[test]
fn config_importing_smtp_is_refused() {
    let map = sample_map();
    let config = ["config".to_string()];
    assert_eq!(
        violations(&map, &config, "use crate::smtp::Smtp;\n"),
        ["`config` imports `smtp::Smtp`"]
    );
    assert_eq!(
        violations(&map, &config, "use crate::{store::keys, smtp};\n"),
        ["`config` imports `smtp`"]
    );
    assert!(violations(&map, &config, "use crate::store::keys::KdfParams;\n").is_empty());
    // A comment is not an import.
    assert!(violations(&map, &config, "// see crate::smtp\n").is_empty());
}

#[test]
fn super_paths_resolve_to_the_module_they_reach() {
    let map = sample_map();
    let nested = ["config".to_string(), "raw".to_string()];
    assert_eq!(
        violations(&map, &nested, "use super::super::smtp::Smtp;\n"),
        ["`config` imports `smtp::Smtp`"]
    );
    assert!(violations(&map, &nested, "use super::Config;\n").is_empty());
}

#[test]
fn sessions_stay_in_front_of_the_store_interface() {
    let map = sample_map();
    let smtp = ["smtp".to_string(), "session".to_string()];
    assert!(violations(&map, &smtp, "use crate::store::{Store, types::Flags};\n").is_empty());
    assert_eq!(
        violations(
            &map,
            &smtp,
            "let p = crate::store::mailbox::normalize(x);\n"
        ),
        ["`smtp` reaches behind the store interface: `store::mailbox::normalize`"]
    );
}
