//! Every default the documentation states equals the code's (what
//! `seqline config` prints with no file, variables or flags):
//!
//! - the TOML example under "## Configuration" in the README, key by key;
//! - every row of a Markdown table headed `| … | default | … |` whose first
//!   cell names configuration keys in backticks (the default cell must
//!   state a value for each);
//! - prose of the form `` `key` (10 s) `` or `` `key` … (default 500) ``.
//!
//! A key is `section.key`, or a bare key of the gateway section (else of
//! the one section that has it). Values are numbers (`10 000`, `100,000`),
//! sizes (`64 KiB`), durations (`500 ms`, `25s`), `empty` or `0`.

use super::{load, Overrides};
use std::path::Path;
use std::time::Duration;

const SECTIONS: &[&str] = &["gateway", "persister", "fanout", "telemetry", "ports", "log", "health"];

/// The documents that state defaults, from the repository root.
const DOCS: &[&str] = &[
    "README.md",
    "docs/protocol.md",
    "docs/operations.md",
    "docs/security.md",
    "docs/huge-groups.md",
];

fn defaults() -> toml::Table {
    let config = load(None, std::iter::empty(), &Overrides::default()).expect("defaults load");
    match toml::Value::try_from(config).expect("defaults serialize") {
        toml::Value::Table(t) => t,
        other => panic!("not a table: {other}"),
    }
}

/// The default of `name` (`section.key` or a bare key).
fn lookup<'a>(defaults: &'a toml::Table, name: &str) -> Option<(String, &'a toml::Value)> {
    let section = |s: &str| defaults.get(s).and_then(toml::Value::as_table);
    if let Some((s, k)) = name.split_once('.') {
        return section(s).and_then(|t| t.get(k)).map(|v| (name.to_owned(), v));
    }
    if let Some(v) = section("gateway").and_then(|t| t.get(name)) {
        return Some((format!("gateway.{name}"), v));
    }
    let found: Vec<(String, &toml::Value)> = SECTIONS
        .iter()
        .filter_map(|s| section(s).and_then(|t| t.get(name)).map(|v| (format!("{s}.{name}"), v)))
        .collect();
    match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// A value as the documents write it.
#[derive(Debug, Clone, PartialEq)]
enum Stated {
    Number(f64),
    Duration(Duration),
    Empty,
    /// A name in backticks, e.g. a consumer group.
    Text(String),
}

/// The quantity `text` starts with, and what follows it.
fn quantity(text: &str) -> Option<Stated> {
    let t = text.trim_start().trim_start_matches(['*', '`', '"']);
    if t.starts_with("empty") {
        return Some(Stated::Empty);
    }
    if let Some(name) = text.trim_start().strip_prefix('`').and_then(|r| r.split('`').next()) {
        if name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Some(Stated::Text(name.to_owned()));
        }
    }
    let bytes = t.as_bytes();
    let mut digits = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_digit() || (b == b'.' && !digits.is_empty()) {
            digits.push(b as char);
            i += 1;
            continue;
        }
        // A thousands separator: one space or comma, then exactly 3 digits.
        let group = bytes
            .get(i + 1..i + 4)
            .is_some_and(|g| g.iter().all(u8::is_ascii_digit))
            && !bytes.get(i + 4).is_some_and(u8::is_ascii_digit);
        if (b == b' ' || b == b',') && !digits.is_empty() && group {
            i += 1;
            continue;
        }
        break;
    }
    if digits.is_empty() {
        return None;
    }
    let n: f64 = digits.parse().ok()?;
    let rest = t[i..].trim_start();
    let unit: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
    Some(match unit.as_str() {
        "ms" => Stated::Duration(Duration::from_millis(n as u64)),
        "s" => Stated::Duration(Duration::from_secs_f64(n)),
        "m" | "min" => Stated::Duration(Duration::from_secs_f64(n * 60.0)),
        "h" => Stated::Duration(Duration::from_secs_f64(n * 3600.0)),
        "KiB" => Stated::Number(n * 1024.0),
        "MiB" => Stated::Number(n * 1024.0 * 1024.0),
        "GiB" => Stated::Number(n * 1024.0 * 1024.0 * 1024.0),
        _ => Stated::Number(n),
    })
}

/// Whether `stated` is the default `value`.
fn agrees(stated: &Stated, value: &toml::Value) -> bool {
    match (stated, value) {
        (Stated::Number(n), toml::Value::Integer(i)) => *n == *i as f64,
        (Stated::Number(n), toml::Value::Float(f)) => n == f,
        (Stated::Duration(d), toml::Value::String(s)) => seqline_core::duration::parse(s).is_ok_and(|v| v == *d),
        // A bare number for a duration means seconds, as in the files.
        (Stated::Number(n), toml::Value::String(s)) => {
            seqline_core::duration::parse(s).is_ok_and(|v| v == Duration::from_secs_f64(*n))
        }
        (Stated::Empty, toml::Value::Array(a)) => a.is_empty(),
        (Stated::Empty, toml::Value::String(s)) => s.is_empty(),
        (Stated::Text(t), toml::Value::String(s)) => t == s,
        _ => false,
    }
}

/// Names in backticks in `text`.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn cells(line: &str) -> Vec<&str> {
    line.trim().trim_matches('|').split('|').map(str::trim).collect()
}

/// Checks one document; returns the mismatches and how many claims it checked.
fn check(name: &str, text: &str, defaults: &toml::Table) -> (Vec<String>, usize) {
    let mut wrong = Vec::new();
    let mut checked = 0;
    let mut claim = |key: &str, stated: Option<Stated>, at: &str, wrong: &mut Vec<String>| {
        let Some((full, value)) = lookup(defaults, key) else {
            return;
        };
        checked += 1;
        match stated {
            Some(s) if agrees(&s, value) => {}
            Some(s) => wrong.push(format!(
                "{name}: {full} is documented as {s:?} ({at}), the code says {value}"
            )),
            None => wrong.push(format!(
                "{name}: {full} has no readable default ({at}); the code says {value}"
            )),
        }
    };
    // Tables with a `default` column.
    let mut default_col: Option<usize> = None;
    for line in text.lines() {
        if !line.trim_start().starts_with('|') {
            default_col = None;
            continue;
        }
        let row = cells(line);
        if let Some(col) = row.iter().position(|c| *c == "default") {
            default_col = Some(col);
            continue;
        }
        let Some(col) = default_col else { continue };
        if row.iter().all(|c| c.chars().all(|ch| matches!(ch, '-' | ':' | ' '))) {
            continue;
        }
        let keys: Vec<&str> = backticked(row[0])
            .into_iter()
            .filter(|k| lookup(defaults, k).is_some())
            .collect();
        if keys.is_empty() {
            continue;
        }
        let cell = row.get(col).copied().unwrap_or_default();
        let parts: Vec<&str> = if keys.len() == 1 {
            vec![cell]
        } else if cell.contains(" / ") {
            cell.split(" / ").collect()
        } else {
            cell.split(", ").collect()
        };
        for (i, key) in keys.iter().enumerate() {
            claim(key, parts.get(i).and_then(|p| quantity(p)), line.trim(), &mut wrong);
        }
    }
    // Prose (outside tables), with lines joined: `key` (value), or `key`
    // followed closely by "default value".
    let prose: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('|'))
        .collect::<Vec<_>>()
        .join(" ");
    let pieces: Vec<&str> = prose.split('`').collect();
    for i in (1..pieces.len()).step_by(2) {
        let key = pieces[i];
        let after = pieces.get(i + 1).copied().unwrap_or_default();
        let at = format!("`{key}`{}", after.chars().take(40).collect::<String>());
        if let Some(inner) = after.strip_prefix(" (") {
            if let Some(q) = quantity(inner.trim_start_matches("default ")) {
                claim(key, Some(q), &at, &mut wrong);
                continue;
            }
        }
        let near: String = after.chars().take(30).collect();
        if let Some(pos) = near.find("default ") {
            if let Some(q) = quantity(&after[pos + "default ".len()..]) {
                claim(key, Some(q), &at, &mut wrong);
            }
        }
    }
    (wrong, checked)
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn the_readme_configuration_example_holds_the_defaults() {
    let defaults = defaults();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme.find("## Configuration").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let block = &section[start..start + section[start..].find("```").unwrap()];
    let example: toml::Table = toml::from_str(block).unwrap();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (s, table) in &example {
        let toml::Value::Table(table) = table else {
            panic!("{s} is not a section")
        };
        for (k, v) in table {
            if k == "token_secret" {
                continue;
            }
            let full = format!("{s}.{k}");
            let Some((_, want)) = lookup(&defaults, &full) else {
                wrong.push(format!("README: {full} is not a setting"));
                continue;
            };
            checked += 1;
            let same = match (v, want) {
                (toml::Value::String(a), toml::Value::String(b)) => {
                    a == b
                        || seqline_core::duration::parse(a)
                            .is_ok_and(|d| seqline_core::duration::parse(b).is_ok_and(|e| d == e))
                }
                (a, b) => a == b,
            };
            if !same {
                wrong.push(format!("README: {full} = {v}, the code says {want}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(checked >= 15, "only {checked} settings in the README example");
}

#[test]
fn every_documented_default_is_the_codes() {
    let defaults = defaults();
    let mut wrong = Vec::new();
    let mut total = 0;
    for doc in DOCS {
        let text = std::fs::read_to_string(root().join(doc)).unwrap();
        let (w, n) = check(doc, &text, &defaults);
        wrong.extend(w);
        total += n;
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    eprintln!("{total} documented defaults agree with the code");
    assert!(
        total >= 40,
        "only {total} documented defaults found: is the parser still reading the docs?"
    );
}

#[test]
fn the_checker_reads_what_the_docs_write() {
    assert_eq!(quantity("10 000 per gateway"), Some(Stated::Number(10_000.0)));
    assert_eq!(quantity("100,000"), Some(Stated::Number(100_000.0)));
    assert_eq!(quantity("64 KiB"), Some(Stated::Number(65_536.0)));
    assert_eq!(quantity("10 s / 60 s"), Some(Stated::Duration(Duration::from_secs(10))));
    assert_eq!(quantity("500 ms"), Some(Stated::Duration(Duration::from_millis(500))));
    assert_eq!(quantity("25s"), Some(Stated::Duration(Duration::from_secs(25))));
    assert_eq!(quantity("0 (no cap)"), Some(Stated::Number(0.0)));
    assert_eq!(quantity("empty (any)"), Some(Stated::Empty));
    assert_eq!(quantity("per connection"), None);
    let defaults = defaults();
    let doc = "| key | default |\n|---|---|\n| `max_page` / `max_page_bytes` | 500 / 64 KiB |\n\
               | `max_connections`, `max_connections_per_user` | 10000, 16 |\n| `send_queue` | |\n\n\
               Within `hello_timeout` (10 s) and `fanout.notice_interval` (default 100 ms).";
    let (wrong, checked) = check("doc", doc, &defaults);
    assert_eq!(checked, 7, "{wrong:?}");
    assert_eq!(wrong.len(), 3, "{wrong:?}");
    assert!(wrong[0].contains("gateway.max_page_bytes"), "{wrong:?}");
    assert!(
        wrong[1].contains("gateway.send_queue has no readable default"),
        "{wrong:?}"
    );
    assert!(wrong[2].contains("fanout.notice_interval"), "{wrong:?}");
}
