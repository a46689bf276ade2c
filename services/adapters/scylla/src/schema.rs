//! The schema of `schemas/seqline.cql`, split into statements, with the
//! keyspace statement rebuilt from the options.

use crate::error;
use crate::options::ScyllaOptions;
use scylla::client::session::Session;
use seqline_core::Result;

/// The schema file, compiled in.
pub(crate) const SCHEMA: &str = include_str!("../../../../schemas/seqline.cql");

/// Settings recorded when the keyspace is created; a store configured
/// otherwise refuses to start.
pub(crate) const FORMAT_VERSION: i64 = 1;

/// Partitions of `dedup` per conversation.
pub(crate) const DEDUP_SHARDS: i32 = 16;

/// Columns added to tables of the schema file after they were first
/// released: `(table, column, CQL type)`. `CREATE TABLE IF NOT EXISTS`
/// leaves an existing table as it is, so `connect` adds these when the
/// keyspace's table lacks them; older rows read them as null.
pub(crate) const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("messages", "sender_name", "text"),
    ("messages", "read_diffusion", "boolean"),
    ("timelines", "sender_name", "text"),
    ("timelines", "read_diffusion", "boolean"),
];

/// The columns of a table, from the schema tables: bind keyspace and table.
pub(crate) const TABLE_COLUMNS: &str =
    "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?";

/// The column names of `keyspace.table`.
pub(crate) async fn table_columns(session: &Session, keyspace: &str, table: &str) -> Result<Vec<String>> {
    let what = format!("columns of {table}");
    let rows = session
        .query_unpaged(TABLE_COLUMNS, (keyspace, table))
        .await
        .map_err(|e| error::execution(&what, e))?
        .into_rows_result()
        .map_err(|e| error::rows(&what, e))?;
    rows.rows::<(String,)>()
        .map_err(|e| error::rows(&what, e))?
        .map(|r| r.map(|(c,)| c))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| error::rows(&what, e))
}

/// `ALTER TABLE` adding each of [`ADDED_COLUMNS`] of `table` that is not
/// among `existing`.
pub(crate) fn missing_columns(table: &str, existing: &[String]) -> Vec<String> {
    ADDED_COLUMNS
        .iter()
        .filter(|(t, column, _)| *t == table && !existing.iter().any(|e| e == column))
        .map(|(t, column, cql_type)| format!("ALTER TABLE {t} ADD {column} {cql_type}"))
        .collect()
}

/// The tables named in [`ADDED_COLUMNS`], each once.
pub(crate) fn altered_tables() -> Vec<&'static str> {
    let mut tables: Vec<&str> = ADDED_COLUMNS.iter().map(|(t, _, _)| *t).collect();
    tables.dedup();
    tables
}

/// The statements of `text`, `--` comments and blank ones dropped.
pub(crate) fn statements(text: &str) -> Vec<String> {
    let without_comments: String = text
        .lines()
        .map(|line| line.split_once("--").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

/// The columns of ScyllaDB's `system_schema.scylla_keyspaces`; no rows on
/// Cassandra, which has no such table.
pub(crate) const SCYLLA_KEYSPACE_COLUMNS: &str = "SELECT column_name FROM system_schema.columns \
     WHERE keyspace_name = 'system_schema' AND table_name = 'scylla_keyspaces'";

/// Whether the server knows tablets (ScyllaDB 6 and later: its keyspaces
/// have `initial_tablets`), so `CREATE KEYSPACE` may say `tablets = …`.
pub(crate) async fn server_knows_tablets(session: &Session) -> Result<bool> {
    let what = "scylla keyspace columns";
    let rows = session
        .query_unpaged(SCYLLA_KEYSPACE_COLUMNS, ())
        .await
        .map_err(|e| error::execution(what, e))?
        .into_rows_result()
        .map_err(|e| error::rows(what, e))?;
    let columns = rows
        .rows::<(String,)>()
        .map_err(|e| error::rows(what, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| error::rows(what, e))?;
    Ok(columns.iter().any(|(c,)| c == "initial_tablets"))
}

/// `CREATE KEYSPACE` for `options`; `tablets`: with `tablets = {'enabled':
/// false}` (only a server that knows tablets accepts it).
pub(crate) fn create_keyspace(options: &ScyllaOptions, tablets: bool) -> String {
    let tablets = if tablets {
        " AND tablets = {'enabled': false}"
    } else {
        ""
    };
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = \
         {{'class': 'NetworkTopologyStrategy', 'replication_factor': {}}}{tablets}",
        options.keyspace, options.replication_factor
    )
}

/// The `CREATE TABLE` statements of the schema file, run inside the
/// session's keyspace.
pub(crate) fn create_tables() -> Vec<String> {
    statements(SCHEMA)
        .into_iter()
        .filter(|s| s.to_ascii_uppercase().starts_with("CREATE TABLE"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_file() {
        let all = statements(SCHEMA);
        assert!(all[0].starts_with("CREATE KEYSPACE IF NOT EXISTS seqline"));
        assert_eq!(all[1], "USE seqline");
        assert_eq!(create_tables().len(), all.len() - 2);
        assert!(create_tables()
            .iter()
            .all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS ")));
    }

    #[test]
    fn keyspace_follows_the_options() {
        let options = ScyllaOptions {
            keyspace: "chat".into(),
            replication_factor: 1,
            ..Default::default()
        };
        let ks = create_keyspace(&options, true);
        assert!(ks.starts_with("CREATE KEYSPACE IF NOT EXISTS chat WITH replication"));
        assert!(ks.contains("'replication_factor': 1}"));
        assert!(ks.ends_with("AND tablets = {'enabled': false}"));
        let cassandra = create_keyspace(&options, false);
        assert!(!cassandra.contains("tablets"));
        assert!(cassandra.ends_with("'replication_factor': 1}"));
    }

    #[test]
    fn missing_columns_are_added_once() {
        let all = missing_columns("messages", &[]);
        assert_eq!(
            all,
            [
                "ALTER TABLE messages ADD sender_name text",
                "ALTER TABLE messages ADD read_diffusion boolean"
            ]
        );
        let have = vec!["conv".to_string(), "sender_name".to_string()];
        assert_eq!(
            missing_columns("timelines", &have),
            ["ALTER TABLE timelines ADD read_diffusion boolean"]
        );
        let done: Vec<String> = ["sender_name", "read_diffusion"].map(String::from).to_vec();
        assert!(missing_columns("messages", &done).is_empty());
        assert!(missing_columns("members", &[]).is_empty());
        assert_eq!(altered_tables(), ["messages", "timelines"]);
    }

    #[test]
    fn the_file_uses_the_default_options() {
        let file = &statements(SCHEMA)[0];
        assert_eq!(file, &create_keyspace(&ScyllaOptions::default(), true));
    }
}
