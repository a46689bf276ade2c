//! A small checker of the CQL: parses the tables of `schemas/seqline.cql`
//! and checks their partitions are bounded, then checks every statement of
//! [`crate::cql`] against them (tables and columns exist, whole partition
//! keys restricted, LWTs only where heads move, explicit write timestamps).
//! No ScyllaDB server runs here; this is what can be checked without one.

mod parse;
mod rows;

use crate::cql::ALL;
use crate::schema::{statements, SCHEMA};
use parse::{parse, tables};
use std::collections::BTreeSet;

/// Tables whose partitions are not bucketed, and what bounds them.
const BOUNDED_BY: &[(&str, &str)] = &[
    ("members", "the members of one conversation"),
    ("user_conversations", "the conversations of one user"),
    ("device_last", "the sending devices of one conversation's members"),
    ("timeline_applied", "the conversations of one user"),
    ("device_cursors", "the devices of one user"),
    ("read_positions", "the conversations of one user"),
];

/// Columns whose values grow with traffic: a partition clustered by one of
/// them must be bucketed.
const GROWING: &[&str] = &["conv_seq", "user_seq", "client_msg_id"];

/// Reserved CQL keywords (not usable as bare column names).
const RESERVED: &[&str] = &[
    "add",
    "allow",
    "alter",
    "and",
    "apply",
    "asc",
    "authorize",
    "batch",
    "begin",
    "by",
    "columnfamily",
    "create",
    "delete",
    "desc",
    "describe",
    "drop",
    "entries",
    "execute",
    "from",
    "full",
    "grant",
    "if",
    "in",
    "index",
    "infinity",
    "insert",
    "into",
    "keyspace",
    "limit",
    "modify",
    "nan",
    "norecursive",
    "not",
    "null",
    "of",
    "on",
    "or",
    "order",
    "primary",
    "rename",
    "replace",
    "revoke",
    "schema",
    "select",
    "set",
    "table",
    "to",
    "token",
    "truncate",
    "unlogged",
    "update",
    "use",
    "using",
    "view",
    "where",
    "with",
];

#[test]
fn schema_has_keyspace_use_and_tables() {
    let all = statements(SCHEMA);
    assert!(all[0].starts_with("CREATE KEYSPACE IF NOT EXISTS seqline WITH replication"));
    assert_eq!(all[1], "USE seqline");
    let t = tables();
    for want in [
        "settings",
        "conversation_heads",
        "timeline_heads",
        "messages",
        "timelines",
        "dedup",
        "members",
    ] {
        assert!(t.contains_key(want), "table {want} is missing");
    }
    assert_eq!(t.len(), all.len() - 2, "every other statement is a CREATE TABLE");
}

#[test]
fn every_partition_is_bounded() {
    let t = tables();
    for (name, table) in &t {
        assert!(!table.partition.is_empty(), "{name} has no partition key");
        for col in table.partition.iter().chain(&table.clustering) {
            assert!(
                table.columns.contains_key(col),
                "{name}: key column {col} is not a column"
            );
        }
        let bucketed = table.partition.iter().any(|c| c == "bucket" || c == "shard");
        let grows = table.clustering.iter().any(|c| GROWING.contains(&c.as_str()));
        let allowed = BOUNDED_BY.iter().any(|(n, _)| n == name);
        if grows {
            assert!(
                bucketed,
                "{name} is clustered by a growing column, its partition key needs a bucket"
            );
        }
        assert!(
            table.clustering.is_empty() || bucketed || allowed,
            "{name} has multi-row partitions without a bucket or a stated bound"
        );
        for col in table.columns.keys() {
            assert!(!RESERVED.contains(&col.as_str()), "{name}.{col} is a reserved word");
        }
    }
    for (name, _) in BOUNDED_BY {
        assert!(t.contains_key(*name), "BOUNDED_BY names unknown table {name}");
    }
    assert_eq!(t["messages"].partition, ["conv", "bucket"]);
    assert_eq!(t["timelines"].partition, ["user_id", "bucket"]);
    assert_eq!(t["dedup"].partition, ["conv", "shard"]);
}

#[test]
fn every_statement_fits_the_schema() {
    let t = tables();
    let heads: BTreeSet<&str> = ["conversation_heads", "timeline_heads", "settings"].into();
    for (cql, lwt) in ALL {
        let p = parse(cql);
        let table = t.get(&p.table).unwrap_or_else(|| panic!("{cql}: no table {}", p.table));
        for col in &p.columns {
            assert!(
                table.columns.contains_key(col),
                "{cql}: {}.{col} does not exist",
                p.table
            );
        }
        let key: Vec<&String> = table.partition.iter().chain(&table.clustering).collect();
        for part in &table.partition {
            let eq = p.restricted.iter().any(|(c, op)| c == part && op == "=");
            let inserted = p.written.contains(part) && cql.starts_with("INSERT");
            assert!(eq || inserted, "{cql}: partition key column {part} is not fixed");
        }
        for (col, op) in &p.restricted {
            assert!(key.contains(&col), "{cql}: WHERE on non-key column {col}");
            assert!(
                op == "=" || table.clustering.contains(col),
                "{cql}: range on partition column {col}"
            );
        }
        if p.write && !cql.starts_with("INSERT") {
            for col in &key {
                assert!(
                    p.restricted.iter().any(|(c, op)| c == *col && op == "="),
                    "{cql}: {col} not fixed"
                );
            }
        }
        if cql.starts_with("INSERT") {
            for col in &key {
                assert!(p.written.contains(col), "{cql}: INSERT without key column {col}");
            }
        } else {
            for col in &p.written {
                assert!(!key.contains(&col), "{cql}: SET of key column {col}");
            }
        }
        assert_eq!(p.lwt, *lwt, "{cql}: LWT flag");
        if p.lwt {
            assert!(heads.contains(p.table.as_str()), "{cql}: LWT outside the head tables");
        } else if p.write {
            assert!(
                p.timestamp,
                "{cql}: a plain write needs USING TIMESTAMP ? (batch order)"
            );
        }
        for moved in ["head", "prev_head", "ts", "pending"] {
            if p.written.iter().any(|c| c == moved) {
                assert!(p.lwt, "{cql}: {moved} may only be written by an LWT");
            }
        }
    }
}

#[test]
fn every_table_is_used() {
    let used: BTreeSet<String> = ALL.iter().map(|(cql, _)| parse(cql).table).collect();
    for name in tables().keys() {
        assert!(used.contains(name), "table {name} is never read or written");
    }
}

#[test]
fn the_checker_catches_mistakes() {
    let p = parse("SELECT a, b FROM t WHERE x = ? AND y >= ? ORDER BY y DESC LIMIT ?");
    assert_eq!(p.table, "t");
    assert_eq!(p.restricted, [("x".into(), "=".into()), ("y".into(), ">=".into())]);
    assert!(p.columns.contains(&"y".to_string()));
    let p = parse("UPDATE h SET head = ?, ts = ? WHERE k = ? IF head = ? AND ts = ?");
    assert!(p.lwt && p.written == ["head", "ts"] && p.conditions == ["head", "ts"]);
    let p = parse("DELETE FROM m USING TIMESTAMP ? WHERE conv = ? AND user_id = ?");
    assert!(p.timestamp && p.write && p.table == "m");
    let unbalanced = std::panic::catch_unwind(|| parse("INSERT INTO t (a, b) VALUES (?)"));
    assert!(unbalanced.is_err());
}
