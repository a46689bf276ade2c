//! The prepared statements, prepared once at connect.

use crate::cql;
use crate::error;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;
use seqline_core::Result;

/// Rows fetched per page by multi-row reads.
const PAGE_SIZE: i32 = 500;

async fn prepare_one(session: &Session, cql: &str, idempotent: bool) -> Result<PreparedStatement> {
    let mut st = session.prepare(cql).await.map_err(|e| error::prepare(cql, e))?;
    st.set_is_idempotent(idempotent);
    st.set_page_size(PAGE_SIZE);
    Ok(st)
}

macro_rules! statements {
    ($($field:ident = $cql:ident, $idempotent:expr;)*) => {
        /// One prepared statement per entry of [`crate::cql`].
        pub(crate) struct Statements {
            $(pub(crate) $field: PreparedStatement,)*
            /// `CONV_HEAD_GET` at the serial level: sees (and finishes) LWTs in flight.
            pub(crate) conv_head_serial: PreparedStatement,
            /// `TL_HEAD_GET` at the serial level.
            pub(crate) tl_head_serial: PreparedStatement,
        }

        impl Statements {
            pub(crate) async fn prepare(session: &Session, serial: Consistency) -> Result<Self> {
                $(let $field = prepare_one(session, cql::$cql, $idempotent).await?;)*
                let mut conv_head_serial = prepare_one(session, cql::CONV_HEAD_GET, true).await?;
                conv_head_serial.set_consistency(serial);
                let mut tl_head_serial = prepare_one(session, cql::TL_HEAD_GET, true).await?;
                tl_head_serial.set_consistency(serial);
                Ok(Self { $($field,)* conv_head_serial, tl_head_serial })
            }
        }
    };
}

// Every write but the LWTs is idempotent: same key, same value, same
// explicit timestamp on a retry.
statements! {
    setting_init = SETTING_INIT, false;
    setting_get = SETTING_GET, true;
    conv_head_get = CONV_HEAD_GET, true;
    conv_head_create = CONV_HEAD_CREATE, false;
    conv_head_advance = CONV_HEAD_ADVANCE, false;
    conv_applied = CONV_APPLIED, true;
    meta_put = META_PUT, true;
    meta_get = META_GET, true;
    message_put = MESSAGE_PUT, true;
    messages_asc = MESSAGES_ASC, true;
    messages_desc = MESSAGES_DESC, true;
    dedup_put = DEDUP_PUT, true;
    dedup_get = DEDUP_GET, true;
    member_put = MEMBER_PUT, true;
    member_del = MEMBER_DEL, true;
    member_get = MEMBER_GET, true;
    members_all = MEMBERS_ALL, true;
    membership_put = MEMBERSHIP_PUT, true;
    membership_get = MEMBERSHIP_GET, true;
    user_conv_put = USER_CONV_PUT, true;
    user_conv_del = USER_CONV_DEL, true;
    user_convs = USER_CONVS, true;
    device_last_put = DEVICE_LAST_PUT, true;
    device_last_all = DEVICE_LAST_ALL, true;
    tl_head_get = TL_HEAD_GET, true;
    tl_head_create = TL_HEAD_CREATE, false;
    tl_head_advance = TL_HEAD_ADVANCE, false;
    tl_applied = TL_APPLIED, true;
    entry_put = ENTRY_PUT, true;
    entries_asc = ENTRIES_ASC, true;
    applied_put = APPLIED_PUT, true;
    applied_all = APPLIED_ALL, true;
    cursor_put = CURSOR_PUT, true;
    cursor_get = CURSOR_GET, true;
    read_put = READ_PUT, true;
    read_get = READ_GET, true;
    read_all = READ_ALL, true;
}
