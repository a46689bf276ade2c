//! [`ScyllaStore`]: the `Store` port on ScyllaDB.
//!
//! # How a batch commits
//! A head row (`conversation_heads`, `timeline_heads`) holds the committed
//! `head`, the `prev_head` before the last batch, that batch itself
//! (`pending`, versioned JSON) and its write timestamp `ts`. A commit:
//!
//! 1. reads the head row at the serial level; if the last batch is not
//!    marked applied, applies it first (roll forward: it is final). Skipped
//!    when this store remembers committing `expected` itself (the head
//!    cache, below);
//! 2. claims the range with one LWT, `UPDATE … SET head = new, pending =
//!    batch, ts = t IF head = expected AND ts = last_ts` (`INSERT … IF NOT
//!    EXISTS` to create). A lost LWT is `Error::Fenced` and the loser has
//!    written nothing at all;
//! 3. writes the batch's rows (messages, dedup, members, …) with `USING
//!    TIMESTAMP t`, `t` strictly increasing per head, so a paused old
//!    writer's late rows always lose to newer ones, and a retry rewrites the
//!    same cells with the same values;
//! 4. marks the head row `applied = t`.
//!
//! Readers clamp every range to the visible head: `head` once applied, else
//! `prev_head`, so they never see a head whose rows are not all written.
//! Point reads (dedup, members, settings) may see a claimed batch's rows
//! while it is being applied: a claimed batch is final (whoever loads or
//! commits next rolls it forward), so that is an early view, never one that
//! is taken back.
//! Writing the rows before the LWT instead would let a losing writer's rows
//! overwrite the winner's at the same keys, and a loser's dedup and
//! membership rows would be visible; keeping the batch in the head row
//! makes the claim atomic with what it claims.
//!
//! # The head cache
//! On Cassandra the serial read of step 1 is a Paxos round of its own, as
//! costly as the claim. A persister owns a key at a time and commits one
//! batch after another, so the store remembers, per key, the head it last
//! committed or loaded with every row applied, and its `ts`
//! ([`heads::HeadCache`]). A commit from that very head goes straight to
//! the claim: `IF head = expected AND ts = remembered` can only apply while
//! the row still holds that claim (`ts` only grows), whose rows are all
//! written, so there is nothing to roll forward. A claim that does not
//! apply changed nothing; the entry is dropped and the commit runs the full
//! path above (serial read, then fenced, our own claim, not found, …), so
//! every answer is the one the full path gives. Any error or fence drops the
//! entry; loads refresh it. A stale entry costs one failed LWT, never a
//! wrong answer.

mod conversation;
pub(crate) mod heads;
mod reads;
mod statements;
mod timeline;

use crate::error;
use crate::options::{ConsistencyLevel, ScyllaOptions};
use crate::schema::{self, DEDUP_SHARDS, FORMAT_VERSION};
use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use heads::{HeadCache, PaxosCounters, HEAD_CACHE_CAPACITY};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow;
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, UserId, UserSeq};
use seqline_core::model::{ConversationMeta, Message, Outcome, Role, TimelineEntry};
use seqline_core::ports::{ConversationBatch, ConversationState, MemberWindow, Store, TimelineBatch, TimelineState};
use seqline_core::{Epoch, Error, Result};
use statements::Statements;
use std::sync::Arc;

pub use heads::PaxosCounts;

/// Least client-side timeout of a schema statement: creating a table
/// writes and flushes the schema tables, which takes seconds on a busy
/// Cassandra node (one `CREATE TABLE` took over 2 s on a 2-core test
/// machine while other tests ran).
const DDL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The column of an LWT's answer telling whether it was applied.
const APPLIED: &str = "[applied]";

/// Whether an LWT answered with `columns` and `row` was applied: the
/// `[applied]` column, wherever it is among the others.
fn applied_of(columns: &[&str], row: Option<scylla::value::Row>) -> std::result::Result<bool, String> {
    let Some(index) = columns.iter().position(|c| *c == APPLIED) else {
        return Err(format!("LWT answered columns {columns:?}, without {APPLIED}"));
    };
    match row.and_then(|r| r.columns.into_iter().nth(index).flatten()) {
        Some(scylla::value::CqlValue::Boolean(applied)) => Ok(applied),
        other => Err(format!("LWT answered {APPLIED} = {other:?}")),
    }
}

/// The ScyllaDB [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct ScyllaStore {
    inner: Arc<Inner>,
    epoch: Epoch,
}

pub(crate) struct Inner {
    session: Session,
    st: Statements,
    bucket_size: u64,
    max_in_flight: usize,
    /// Conversation heads this store committed (see the head cache above).
    conv_heads: HeadCache,
    /// Timeline heads this store committed.
    tl_heads: HeadCache,
    paxos: PaxosCounters,
}

impl std::fmt::Debug for ScyllaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaStore")
            .field("bucket_size", &self.inner.bucket_size)
            .finish()
    }
}

impl ScyllaStore {
    /// Connects, creates the keyspace and tables if missing, prepares every
    /// statement and checks the layout settings against the stored ones.
    pub async fn connect(options: ScyllaOptions) -> Result<Self> {
        options.validate()?;
        let (consistency, serial) = match options.consistency {
            ConsistencyLevel::LocalQuorum => (Consistency::LocalQuorum, SerialConsistency::LocalSerial),
            ConsistencyLevel::Quorum => (Consistency::Quorum, SerialConsistency::Serial),
            ConsistencyLevel::All => (Consistency::All, SerialConsistency::Serial),
        };
        let profile = ExecutionProfile::builder()
            .consistency(consistency)
            .serial_consistency(Some(serial))
            .request_timeout(Some(options.request_timeout))
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(&options.nodes)
            .connection_timeout(options.connect_timeout)
            .default_execution_profile_handle(profile.into_handle());
        if let Some(user) = &options.user {
            builder = builder.user(user, options.password.clone().unwrap_or_default());
        }
        if options.uses_tls() {
            builder = builder.tls_context(Some(crate::tls::context(&options)?));
        }
        let session = builder.build().await.map_err(error::session)?;
        let ddl_timeout = options.request_timeout.max(DDL_TIMEOUT);
        let ddl = |cql: String| {
            let session = &session;
            async move {
                let mut statement = scylla::statement::unprepared::Statement::new(cql.as_str());
                statement.set_request_timeout(Some(ddl_timeout));
                session
                    .query_unpaged(statement, ())
                    .await
                    .map_err(|e| error::execution(&cql, e))
            }
        };
        // `tablets = {'enabled': false}` only where the server knows tablets
        // (ScyllaDB 6 and later): Cassandra and older ScyllaDB reject it.
        let scylla = session
            .get_cluster_state()
            .get_nodes_info()
            .iter()
            .any(|node| node.sharder().is_some());
        let tablets = options.disable_tablets && schema::server_knows_tablets(&session).await?;
        tracing::info!(
            server = if scylla { "ScyllaDB" } else { "Cassandra or another CQL server" },
            tablets_clause = tablets,
            keyspace = %options.keyspace,
            "connected"
        );
        ddl(schema::create_keyspace(&options, tablets)).await?;
        session
            .use_keyspace(options.keyspace.as_str(), false)
            .await
            .map_err(error::keyspace)?;
        for table in schema::create_tables() {
            ddl(table).await?;
        }
        for table in schema::altered_tables() {
            let existing = schema::table_columns(&session, &options.keyspace, table).await?;
            for alter in schema::missing_columns(table, &existing) {
                tracing::info!(%alter, "adding a column to an existing table");
                match ddl(alter.clone()).await {
                    Ok(_) => {}
                    // Stores connecting at once race to add the column; the
                    // losers are told it exists (an invalid query), which is
                    // what they wanted. CQL has no `ADD IF NOT EXISTS` that
                    // both ScyllaDB and Cassandra know.
                    Err(Error::Config(why)) => {
                        let now = schema::table_columns(&session, &options.keyspace, table).await?;
                        if schema::missing_columns(table, &now).contains(&alter) {
                            return Err(Error::Config(why));
                        }
                        tracing::info!(%alter, "another store added the column first");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let serial_read = match serial {
            SerialConsistency::LocalSerial => Consistency::LocalSerial,
            SerialConsistency::Serial => Consistency::Serial,
        };
        let st = prepare_after_schema_changes(&session, serial_read).await?;
        let inner = Inner {
            session,
            st,
            bucket_size: options.bucket_size,
            max_in_flight: options.max_in_flight,
            conv_heads: HeadCache::new(HEAD_CACHE_CAPACITY),
            tl_heads: HeadCache::new(HEAD_CACHE_CAPACITY),
            paxos: PaxosCounters::default(),
        };
        for (name, value) in [
            ("bucket_size", options.bucket_size as i64),
            ("dedup_shards", i64::from(DEDUP_SHARDS)),
            ("format", FORMAT_VERSION),
        ] {
            inner.check_setting(name, value).await?;
        }
        let epoch = inner.epoch().await?;
        tracing::info!(%epoch, keyspace = %options.keyspace, "store epoch");
        Ok(Self {
            inner: Arc::new(inner),
            epoch,
        })
    }

    /// Paxos operations this store has started since `connect` (including
    /// the settings checks of `connect` itself): for tests and measurements.
    pub fn paxos_counts(&self) -> PaxosCounts {
        self.inner.paxos.get()
    }
}

impl Inner {
    /// The keyspace's epoch, the `epoch` row of `settings`: written once
    /// (`IF NOT EXISTS`) by the first store to connect to a new keyspace;
    /// every store after it, and every racing one, reads the winner's.
    async fn epoch(&self) -> Result<Epoch> {
        let mine = Epoch::random().as_u64() as i64;
        self.lwt(&self.st.setting_init, ("epoch", mine), "init epoch").await?;
        let stored: Option<(i64,)> = self.first(&self.st.setting_get, ("epoch",), "read epoch").await?;
        match stored {
            Some((v,)) => Ok(Epoch::from_u64(v as u64)),
            None => Err(Error::Unavailable(
                "the epoch is not readable after it was written".into(),
            )),
        }
    }

    /// Records `name = value` if unset, then refuses to run on another value.
    async fn check_setting(&self, name: &str, value: i64) -> Result<()> {
        self.lwt(&self.st.setting_init, (name, value), "init setting").await?;
        let stored: Option<(i64,)> = self.first(&self.st.setting_get, (name,), "read setting").await?;
        match stored {
            Some((v,)) if v == value => Ok(()),
            Some((v,)) => Err(Error::Config(format!(
                "keyspace was created with {name} = {v}, this store is configured with {value}"
            ))),
            None => Err(Error::Unavailable(format!(
                "setting {name} not readable after it was written"
            ))),
        }
    }

    pub(crate) async fn exec(
        &self,
        st: &PreparedStatement,
        values: impl SerializeRow,
        what: &str,
    ) -> Result<QueryResult> {
        self.session
            .execute_unpaged(st, values)
            .await
            .map_err(|e| error::execution(what, e))
    }

    /// The first row, if any.
    pub(crate) async fn first<R>(
        &self,
        st: &PreparedStatement,
        values: impl SerializeRow,
        what: &str,
    ) -> Result<Option<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let rows = self
            .exec(st, values, what)
            .await?
            .into_rows_result()
            .map_err(|e| error::rows(what, e))?;
        rows.maybe_first_row::<R>().map_err(|e| error::rows(what, e))
    }

    /// Every row, paged (`PAGE_SIZE` per round trip).
    pub(crate) async fn all<R>(&self, st: &PreparedStatement, values: impl SerializeRow, what: &str) -> Result<Vec<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        let pager = self
            .session
            .execute_iter(st.clone(), values)
            .await
            .map_err(|e| error::pager(what, e))?;
        let mut rows = pager.rows_stream::<R>().map_err(|e| error::rows(what, e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().await {
            out.push(row.map_err(|e| error::next_row(what, e))?);
        }
        Ok(out)
    }

    /// Runs an LWT; whether it was applied.
    ///
    /// The answer's columns differ by server and outcome: Cassandra answers
    /// an applied LWT with `[applied]` alone, ScyllaDB with `[applied]` and
    /// the row as it was; a lost one is `[applied] = false` and the current
    /// row on both. So the row is read untyped and `[applied]` found by
    /// name, whatever else comes with it.
    pub(crate) async fn lwt(&self, st: &PreparedStatement, values: impl SerializeRow, what: &str) -> Result<bool> {
        self.paxos.conditional_write();
        let rows = self
            .exec(st, values, what)
            .await?
            .into_rows_result()
            .map_err(|e| error::rows(what, e))?;
        let columns: Vec<&str> = rows.column_specs().iter().map(|c| c.name()).collect();
        let row: Option<scylla::value::Row> = rows.maybe_first_row().map_err(|e| error::rows(what, e))?;
        applied_of(&columns, row).map_err(|why| Error::Corrupt(format!("scylla {what}: {why}")))
    }

    /// Runs `writes`, at most `max_in_flight` at a time; the first error wins.
    pub(crate) async fn run_all(&self, writes: Vec<BoxFuture<'_, Result<()>>>) -> Result<()> {
        let mut results = stream::iter(writes).buffer_unordered(self.max_in_flight);
        while let Some(result) = results.next().await {
            result?;
        }
        Ok(())
    }

    /// A write of the batch being applied, boxed for [`Inner::run_all`].
    pub(crate) fn write<'a, V: SerializeRow + Send + 'a>(
        &'a self,
        st: &'a PreparedStatement,
        values: V,
        what: &'static str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.exec(st, values, what).await.map(drop) })
    }
}

#[async_trait]
impl Store for ScyllaStore {
    async fn epoch(&self) -> Result<Epoch> {
        Ok(self.epoch)
    }
    async fn load_conversation(&self, conv: &ConversationId) -> Result<Option<ConversationState>> {
        self.inner.load_conversation(conv).await
    }
    async fn commit_conversation(&self, batch: ConversationBatch) -> Result<()> {
        self.inner.commit_conversation(batch).await
    }
    async fn dedup(&self, conv: &ConversationId, id: ClientMsgId) -> Result<Option<Outcome>> {
        self.inner.dedup(conv, id).await
    }
    async fn conversation_head(&self, conv: &ConversationId) -> Result<Option<ConvSeq>> {
        Ok(self.inner.visible_conv_head(conv).await?.map(ConvSeq))
    }
    async fn conversation_meta(&self, conv: &ConversationId) -> Result<Option<ConversationMeta>> {
        self.inner.conversation_meta(conv).await
    }
    async fn member_role(&self, conv: &ConversationId, user: &UserId) -> Result<Option<Role>> {
        self.inner.member_role(conv, user).await
    }
    async fn members(&self, conv: &ConversationId) -> Result<Vec<(UserId, Role)>> {
        self.inner.members(conv).await
    }
    async fn membership(&self, conv: &ConversationId, user: &UserId) -> Result<Vec<MemberWindow>> {
        self.inner.membership(conv, user).await
    }
    async fn conversations_of(&self, user: &UserId) -> Result<Vec<ConversationId>> {
        self.inner.conversations_of(user).await
    }
    async fn messages_after(&self, conv: &ConversationId, after: ConvSeq, limit: usize) -> Result<Vec<Message>> {
        self.inner.messages(conv, reads::Range::After(after.0), limit).await
    }
    async fn messages_before(&self, conv: &ConversationId, before: ConvSeq, limit: usize) -> Result<Vec<Message>> {
        self.inner.messages(conv, reads::Range::Before(before.0), limit).await
    }
    async fn load_timeline(&self, user: &UserId) -> Result<TimelineState> {
        self.inner.load_timeline(user).await
    }
    async fn commit_timeline(&self, batch: TimelineBatch) -> Result<()> {
        self.inner.commit_timeline(batch).await
    }
    async fn timeline_head(&self, user: &UserId) -> Result<UserSeq> {
        Ok(UserSeq(self.inner.visible_timeline_head(user).await?))
    }
    async fn timeline_after(&self, user: &UserId, after: UserSeq, limit: usize) -> Result<Vec<TimelineEntry>> {
        self.inner.timeline_after(user, after, limit).await
    }
    async fn set_device_cursor(&self, user: &UserId, device: &DeviceId, cursor: UserSeq) -> Result<()> {
        self.inner.set_cursor(user, device, cursor).await
    }
    async fn device_cursor(&self, user: &UserId, device: &DeviceId) -> Result<Option<UserSeq>> {
        self.inner.device_cursor(user, device).await
    }
    async fn set_read_position(&self, user: &UserId, conv: &ConversationId, seq: ConvSeq) -> Result<ConvSeq> {
        self.inner.set_read_position(user, conv, seq).await
    }
    async fn read_positions(&self, user: &UserId) -> Result<Vec<(ConversationId, ConvSeq)>> {
        self.inner.read_positions(user).await
    }
}

/// Prepares every statement. A store that raced others to add a column may
/// see the column in the schema tables a moment before the node's own view
/// of the table has it (Cassandra answers "Undefined column name" then):
/// such a refusal is retried for a few seconds, any other is returned.
async fn prepare_after_schema_changes(session: &Session, serial_read: Consistency) -> Result<Statements> {
    let mut attempt = 0;
    loop {
        match Statements::prepare(session, serial_read).await {
            Err(Error::Config(why)) if why.contains("Undefined column") && attempt < 20 => {
                attempt += 1;
                tracing::info!(attempt, "the node's view of a table lags its schema; preparing again");
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scylla::value::{CqlValue, Row};

    fn row(columns: Vec<Option<CqlValue>>) -> Option<Row> {
        Some(Row { columns })
    }

    #[test]
    fn lwt_answers_of_either_server_are_read_by_name() {
        let applied = |b| Some(CqlValue::Boolean(b));
        // Cassandra, applied: `[applied]` alone.
        assert_eq!(applied_of(&["[applied]"], row(vec![applied(true)])), Ok(true));
        // ScyllaDB, applied: `[applied]` and the row as it was (null when new).
        let old_row = vec![applied(true), None, Some(CqlValue::BigInt(4))];
        assert_eq!(applied_of(&["[applied]", "conv", "head"], row(old_row)), Ok(true));
        // Both, lost: `[applied] = false` and the current row.
        let current = vec![applied(false), Some(CqlValue::BigInt(7)), Some(CqlValue::BigInt(99))];
        assert_eq!(applied_of(&["[applied]", "head", "ts"], row(current)), Ok(false));
        // Found by name, not position.
        let later = vec![Some(CqlValue::BigInt(7)), applied(false)];
        assert_eq!(applied_of(&["head", "[applied]"], row(later)), Ok(false));
        assert!(applied_of(&["head"], row(vec![Some(CqlValue::BigInt(7))])).is_err());
        assert!(applied_of(&["[applied]"], None).is_err());
        assert!(applied_of(&["[applied]"], row(vec![None])).is_err());
    }
}
