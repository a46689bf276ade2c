//! The typed rows each SELECT is read into, type-checked by the driver's
//! own `DeserializeRow::type_check` against column specs built from the
//! schema file: the names, order and CQL types must match, as they will be
//! checked on the first real answer.

use super::parse::{parse, tables};
use crate::codec::{EntryRow, MessageRow, MetaRow, OutcomeRow};
use crate::cql;
use crate::store::heads::HeadRow;
use scylla::deserialize::row::DeserializeRow;
use scylla::frame::response::result::{CollectionType, ColumnSpec, ColumnType, NativeType, TableSpec};

fn column_type(cql_type: &str) -> ColumnType<'static> {
    let native = |t: &str| {
        ColumnType::Native(match t.trim() {
            "text" => NativeType::Text,
            "bigint" => NativeType::BigInt,
            "int" => NativeType::Int,
            "uuid" => NativeType::Uuid,
            "boolean" => NativeType::Boolean,
            "blob" => NativeType::Blob,
            other => panic!("the checker does not know CQL type {other}"),
        })
    };
    let collection = |typ| ColumnType::Collection { frozen: false, typ };
    if let Some(inner) = cql_type.strip_prefix("list<").and_then(|s| s.strip_suffix('>')) {
        collection(CollectionType::List(Box::new(native(inner))))
    } else if let Some(inner) = cql_type.strip_prefix("map<").and_then(|s| s.strip_suffix('>')) {
        let (k, v) = inner.split_once(',').expect("map key and value types");
        collection(CollectionType::Map(Box::new(native(k)), Box::new(native(v))))
    } else {
        native(cql_type)
    }
}

/// Type-checks row type `R` against what `select` returns.
fn check<R: for<'f, 'm> DeserializeRow<'f, 'm>>(select: &str) {
    let (t, p) = (tables(), parse(select));
    let table = &t[&p.table];
    let selected = select["SELECT ".len()..select.find(" FROM ").expect("FROM")].split(", ");
    let specs: Vec<ColumnSpec<'_>> = selected
        .map(|col| {
            ColumnSpec::borrowed(
                col,
                column_type(&table.columns[col]),
                TableSpec::borrowed("ks", &p.table),
            )
        })
        .collect();
    if let Err(e) = R::type_check(&specs) {
        panic!("{select}: the row type does not fit: {e}");
    }
}

#[test]
fn typed_rows_fit_their_selects() {
    check::<HeadRow>(cql::CONV_HEAD_GET);
    check::<HeadRow>(cql::TL_HEAD_GET);
    check::<MetaRow>(cql::META_GET);
    check::<MessageRow>(cql::MESSAGES_ASC);
    check::<MessageRow>(cql::MESSAGES_DESC);
    check::<OutcomeRow>(cql::DEDUP_GET);
    check::<EntryRow>(cql::ENTRIES_ASC);
    check::<(i64,)>(cql::SETTING_GET);
    check::<(String,)>(cql::MEMBER_GET);
    check::<(String, String)>(cql::MEMBERS_ALL);
    check::<(String,)>(cql::USER_CONVS);
    check::<(String, String, uuid::Uuid)>(cql::DEVICE_LAST_ALL);
    check::<(String, i64)>(cql::APPLIED_ALL);
    check::<(Option<i64>,)>(cql::CURSOR_GET);
}

#[test]
fn a_misfit_is_caught() {
    let misfit = std::panic::catch_unwind(|| check::<(i64,)>(cql::MEMBER_GET));
    assert!(misfit.is_err(), "text read as bigint must fail the type check");
    let short = std::panic::catch_unwind(|| check::<(String,)>(cql::MEMBERS_ALL));
    assert!(short.is_err(), "two columns read as one must fail");
}
