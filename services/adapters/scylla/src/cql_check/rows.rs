//! The typed rows each SELECT is read into, type-checked by the driver's
//! own `DeserializeRow::type_check` against column specs built from the
//! schema file: the names, order and CQL types must match, as they will be
//! checked on the first real answer.

use super::parse::{parse, tables};
use crate::codec::{message_columns, EntryPut, EntryRow, MessagePut, MessageRow, MetaRow, OutcomeRow};
use crate::cql;
use crate::store::heads::HeadRow;
use scylla::deserialize::row::DeserializeRow;
use scylla::frame::response::result::{CollectionType, ColumnSpec, ColumnType, NativeType, TableSpec};
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::writers::RowWriter;
use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, UserId};
use seqline_core::model::{Message, MessageKind};

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
    check::<(Option<i64>,)>(cql::READ_GET);
    check::<(String, Option<i64>)>(cql::READ_ALL);
}

/// The bind markers of an `INSERT ... USING TIMESTAMP ?`: its columns, then
/// the timestamp.
fn insert_specs(insert: &str) -> Vec<ColumnSpec<'static>> {
    let (t, p) = (tables(), parse(insert));
    assert!(p.timestamp && insert.ends_with("USING TIMESTAMP ?"), "{insert}");
    let table = &t[&p.table];
    let mut specs: Vec<ColumnSpec<'static>> = p
        .written
        .iter()
        .map(|col| {
            ColumnSpec::owned(
                col.clone(),
                column_type(&table.columns[col]),
                TableSpec::owned("ks".into(), p.table.clone()),
            )
        })
        .collect();
    specs.push(ColumnSpec::owned(
        "[timestamp]".into(),
        ColumnType::Native(NativeType::BigInt),
        TableSpec::owned("ks".into(), p.table.clone()),
    ));
    specs
}

/// Serializes `row` for `insert` (type-checking each value against its
/// column) and returns each bound value with its column name.
fn bound(insert: &str, row: &impl SerializeRow) -> Vec<(String, Vec<u8>)> {
    let specs = insert_specs(insert);
    let ctx = RowSerializationContext::from_specs(&specs);
    let mut buf = Vec::new();
    let mut writer = RowWriter::new(&mut buf);
    if let Err(e) = row.serialize(&ctx, &mut writer) {
        panic!("{insert}: the values do not fit: {e}");
    }
    assert_eq!(writer.value_count(), specs.len(), "{insert}: number of values");
    let mut rest = buf.as_slice();
    specs
        .iter()
        .map(|spec| {
            let (len, tail) = rest.split_at(4);
            let len = i32::from_be_bytes(len.try_into().unwrap());
            let len = usize::try_from(len).unwrap_or_else(|_| panic!("{insert}: {} bound as null", spec.name()));
            let (value, tail) = tail.split_at(len);
            rest = tail;
            (spec.name().to_string(), value.to_vec())
        })
        .collect()
}

/// A message whose every text column holds its own column name, and whose
/// numbers and flags differ, so a value bound to the wrong marker shows.
fn distinct_message(conv: &ConversationId) -> Message {
    Message {
        conv: conv.clone(),
        conv_seq: ConvSeq(2),
        client_msg_id: ClientMsgId::random(),
        sender: UserId::parse("sender").unwrap(),
        sender_device: DeviceId::parse("sender_device").unwrap(),
        kind: MessageKind::Text,
        body: "body".into(),
        members: vec![UserId::parse("members").unwrap()],
        priority: true,
        server_ts_ms: 3,
        vclock: [(UserId::parse("vclock").unwrap(), 5)].into_iter().collect(),
        sender_name: "sender_name".into(),
        read_diffusion: false,
    }
}

fn assert_bound_in_order(insert: &str, values: &[(String, Vec<u8>)], numbers: &[(&str, i64)]) {
    for (column, value) in values {
        let text = ["conv", "user_id", "sender", "sender_device", "body", "sender_name"];
        if text.contains(&column.as_str()) {
            assert_eq!(value, column.as_bytes(), "{insert}: {column} bound to another value");
        } else if column == "kind" {
            assert_eq!(value, b"text", "{insert}: kind");
        } else if let Some((_, n)) = numbers.iter().find(|(c, _)| c == column) {
            assert_eq!(value, &n.to_be_bytes(), "{insert}: {column} bound to another value");
        } else if column == "priority" {
            assert_eq!(value, &[1], "{insert}: priority");
        } else if column == "read_diffusion" {
            assert_eq!(value, &[0], "{insert}: read_diffusion");
        } else {
            // uuid, list and map: the type check told them apart already.
            assert!(
                ["client_msg_id", "members", "vclock"].contains(&column.as_str()),
                "{insert}: unchecked column {column}"
            );
        }
    }
}

#[test]
fn bound_values_fit_their_inserts_in_order() {
    let conv = ConversationId::parse("conv").unwrap();
    let m = distinct_message(&conv);
    let put = MessagePut::new("conv", 1, 2, message_columns(&m).unwrap(), 4);
    let values = bound(cql::MESSAGE_PUT, &put);
    let numbers = [("bucket", 1), ("conv_seq", 2), ("server_ts_ms", 3), ("[timestamp]", 4)];
    assert_bound_in_order(cql::MESSAGE_PUT, &values, &numbers);
    assert!(values.iter().any(|(c, v)| c == "sender_name" && v == b"sender_name"));

    let entry = EntryPut::new("user_id", (1, 6), ("conv", 2), message_columns(&m).unwrap(), 4);
    let values = bound(cql::ENTRY_PUT, &entry);
    let numbers = [
        ("bucket", 1),
        ("user_seq", 6),
        ("conv_seq", 2),
        ("server_ts_ms", 3),
        ("[timestamp]", 4),
    ];
    assert_bound_in_order(cql::ENTRY_PUT, &values, &numbers);
    assert!(values.iter().any(|(c, v)| c == "read_diffusion" && v == &[0]));
}

#[test]
fn a_value_bound_out_of_order_is_caught() {
    let conv = ConversationId::parse("conv").unwrap();
    let m = distinct_message(&conv);
    let mut put = MessagePut::new("conv", 1, 2, message_columns(&m).unwrap(), 4);
    std::mem::swap(&mut put.sender, &mut put.sender_name);
    let values = bound(cql::MESSAGE_PUT, &put);
    let numbers = [("bucket", 1), ("conv_seq", 2), ("server_ts_ms", 3), ("[timestamp]", 4)];
    let caught = std::panic::catch_unwind(|| assert_bound_in_order(cql::MESSAGE_PUT, &values, &numbers));
    assert!(caught.is_err(), "swapped sender and sender_name must be caught");
}

#[test]
fn a_misfit_is_caught() {
    let misfit = std::panic::catch_unwind(|| check::<(i64,)>(cql::MEMBER_GET));
    assert!(misfit.is_err(), "text read as bigint must fail the type check");
    let short = std::panic::catch_unwind(|| check::<(String,)>(cql::MEMBERS_ALL));
    assert!(short.is_err(), "two columns read as one must fail");
}
