//! Just enough parsing of CQL for the checks: the tables of the schema
//! file, and what each statement of the store touches.

use crate::schema::{statements, SCHEMA};
use std::collections::BTreeMap;

#[derive(Debug)]
pub(super) struct Table {
    pub(super) columns: BTreeMap<String, String>,
    pub(super) partition: Vec<String>,
    pub(super) clustering: Vec<String>,
}

/// Splits `s` at commas outside brackets.
pub(super) fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut depth, mut cur) = (Vec::new(), 0i32, String::new());
    for c in s.chars() {
        match c {
            '(' | '<' => depth += 1,
            ')' | '>' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Where the parenthesis opened before `s` closes.
fn closing(s: &str) -> Option<usize> {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn names(list: &str) -> Vec<String> {
    list.trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(|s| s.trim().to_string())
        .collect()
}

pub(super) fn tables() -> BTreeMap<String, Table> {
    let mut out = BTreeMap::new();
    for stmt in statements(SCHEMA) {
        let Some(rest) = stmt.strip_prefix("CREATE TABLE IF NOT EXISTS ") else {
            continue;
        };
        let (name, rest) = rest.split_once(" (").expect("table name");
        let body = &rest[..closing(rest).expect("closing parenthesis")];
        let options = &rest[body.len() + 1..];
        if let Some(order) = options.split("CLUSTERING ORDER BY (").nth(1) {
            let col = order.split_whitespace().next().unwrap_or("");
            assert!(
                rest.contains(&format!("), {col})")),
                "{name}: clustering order on {col}, not its key"
            );
        }
        let (mut columns, mut partition, mut clustering) = (BTreeMap::new(), Vec::new(), Vec::new());
        for item in split_top(body) {
            if let Some(key) = item.strip_prefix("PRIMARY KEY (") {
                let key = &key[..key.len() - 1];
                let mut parts = split_top(key).into_iter();
                partition = names(&parts.next().expect("partition key"));
                clustering = parts.collect();
            } else {
                let (col, ty) = item.split_once(' ').expect("column and type");
                assert!(
                    columns.insert(col.to_string(), ty.to_string()).is_none(),
                    "{name}.{col} twice"
                );
            }
        }
        out.insert(
            name.to_string(),
            Table {
                columns,
                partition,
                clustering,
            },
        );
    }
    out
}

/// What one statement touches.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub(super) table: String,
    /// Columns read or written.
    pub(super) columns: Vec<String>,
    /// WHERE restrictions: (column, operator).
    pub(super) restricted: Vec<(String, String)>,
    /// Columns assigned (INSERT list or SET).
    pub(super) written: Vec<String>,
    /// Columns named in an IF condition.
    pub(super) conditions: Vec<String>,
    pub(super) lwt: bool,
    pub(super) timestamp: bool,
    pub(super) write: bool,
}

fn conditions(s: &str) -> Vec<(String, String)> {
    s.split(" AND ")
        .map(|c| {
            let mut words = c.split_whitespace();
            (
                words.next().unwrap_or("").to_string(),
                words.next().unwrap_or("").to_string(),
            )
        })
        .collect()
}

pub(super) fn parse(cql: &str) -> Parsed {
    let mut p = Parsed {
        timestamp: cql.contains(" USING TIMESTAMP ?"),
        ..Parsed::default()
    };
    let cql = cql.replace(" USING TIMESTAMP ?", "");
    let (body, cond) = match cql.split_once(" IF ") {
        Some((b, c)) => (b.to_string(), Some(c.to_string())),
        None => (cql.clone(), None),
    };
    p.lwt = cond.is_some();
    if let Some(c) = cond.filter(|c| c != "NOT EXISTS") {
        p.conditions = conditions(&c).into_iter().map(|(col, _)| col).collect();
    }
    let (head, filter) = body.split_once(" WHERE ").unwrap_or((&body, ""));
    let filter = filter
        .split(" ORDER BY ")
        .next()
        .unwrap_or("")
        .split(" LIMIT ")
        .next()
        .unwrap_or("");
    p.restricted = if filter.is_empty() {
        Vec::new()
    } else {
        conditions(filter)
    };
    if let Some(rest) = head.strip_prefix("SELECT ") {
        let (cols, table) = rest.split_once(" FROM ").expect("FROM");
        p.table = table.trim().to_string();
        p.columns = names(cols);
        if let Some(order) = body.split(" ORDER BY ").nth(1) {
            p.columns
                .push(order.split_whitespace().next().unwrap_or("").to_string());
        }
    } else if let Some(rest) = head.strip_prefix("INSERT INTO ") {
        let (table, rest) = rest.split_once(" (").expect("column list");
        let (cols, values) = rest.split_once(") VALUES (").expect("VALUES");
        p.table = table.to_string();
        p.written = names(cols);
        let values = split_top(values.trim_end_matches(')'));
        assert_eq!(
            values.len(),
            p.written.len(),
            "{cql}: columns and values differ in number"
        );
        p.write = true;
    } else if let Some(rest) = head.strip_prefix("UPDATE ") {
        let (table, sets) = rest.split_once(" SET ").expect("SET");
        p.table = table.to_string();
        p.written = split_top(sets)
            .iter()
            .map(|a| a.split(" = ").next().unwrap_or("").to_string())
            .collect();
        p.write = true;
    } else if let Some(rest) = head.strip_prefix("DELETE FROM ") {
        p.table = rest.trim().to_string();
        p.write = true;
    } else {
        panic!("unknown statement {cql}");
    }
    p.columns.extend(p.written.iter().cloned());
    p.columns.extend(p.restricted.iter().map(|(c, _)| c.clone()));
    p.columns.extend(p.conditions.iter().cloned());
    p
}
