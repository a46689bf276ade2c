//! The consistency checks (C1-C14) over a recorded history.
//!
//! Every check is one or two hash-map passes over an index built once.
//! Where the checks need precise semantics, these are they:
//!
//! - **Observations** are `recv` events and the entries of every `final`
//!   event. Events are taken in `t` order (ties keep file order).
//! - **A device's final view** of a conversation is its last `final` of scope
//!   `conv` for it, else the entries of that conversation in its last `final`
//!   of scope `user`. A device with no `final` at all has no view.
//! - **Membership** (see `membership`): a member joined at `j` and left at `l`
//!   owes `j < s < l`; boundaries are free. Members come from `member`
//!   events, [`CheckOptions::initial_members`] (from seq 0) and, for a
//!   conversation with neither and [`CheckOptions::infer_static_membership`],
//!   from the users acked in it or holding a final view of it.
//! - **C1** counts positions (conv, conv_seq) seen with two different
//!   (client_msg_id, body_hash) pairs. The first observation is the reference
//!   the other checks compare against.
//! - **C2** counts client ids of known (or no) outcome seen at two positions,
//!   or acked with two positions. Unknown-outcome ids are C6's.
//! - **C3** counts the numbers missing from 1..max of each conversation over
//!   everything seen (recv, finals, member events), plus any seq 0 seen.
//! - **C4** applies when any final was recorded: for every acked message and
//!   every device of every member covering its seq, the device's view holds
//!   the client id. A device with no final at all counts once.
//! - **C5** counts client ids seen (system entries excepted) with no
//!   `send_invoke`, with a `send_fail`, in another conversation than invoked,
//!   or with a body hash other than the first invoke's; also ids both acked
//!   and refused.
//! - **C6** counts unknown-outcome ids (a `send_info`, no ack, no refusal)
//!   seen at two positions; those seen at one are "recovered".
//! - **C7** counts final views (device, conversation) that are not the
//!   reference sequence cut by membership: seqs not strictly increasing, a
//!   covered position missing, or an entry after the member left. Entries
//!   before the first join are history and allowed. Positions known only from
//!   `member` events are not required (finals may leave system events out).
//! - **C8** counts pulls whose `returned` is not `from+1, from+2, ...`, and
//!   pulls whose `from` is below the previous pull's `from` on the same
//!   (device, scope, conv) stream, unless `from` is 0 (a re-read from the
//!   start) or the device got a `reset` since.
//! - **C9** counts live views (device, conversation: every `recv`, deduped by
//!   seq, order ignored; known members only) with a hole: a covered position below the largest
//!   seq received that was never received. Recv events must therefore include
//!   entries a device pulled, not only pushes.
//! - **C10** counts, per user over all their devices: user_seq 0, a user_seq
//!   naming two positions, a position with two user_seqs, each number missing
//!   from 1..max, each adjacent inversion of user_seq against conv_seq within
//!   a conversation; and each device whose last user-scope final is not
//!   exactly user_seq 1..max in order (entries without user_seq, from
//!   read-diffusion conversations, aside).
//! - **C11** counts adjacent inversions of conv_seq among a device's acked
//!   sends to one conversation, in first-`send_invoke` order, and client ids
//!   whose ack names a position where nobody saw them (when seen at all).
//! - **C12** applies to read-diffusion conversations: those where any
//!   message seen live says `read_diffusion`, or any device received a
//!   message of it by conversation pull (`via: pull` without `user_seq`).
//!   For each device of each known member, its live stream of the
//!   conversation (every `recv` of push or pull, in `t` order: timeline
//!   entries and pulled messages together, so across a write→read→write
//!   switch) must hold each position once (a repeat counts), in strictly
//!   increasing conv_seq (an inversion counts), and every covered position
//!   of the reference (a missing one counts; one hit per stream names how
//!   many). The SDK deduplicates by (conv, conv_seq), so unlike the timeline
//!   streams a repeat here is an anomaly even after a reconnect.
//! - **C13** applies to messages seen with a vector clock (`recv` events
//!   carry it; the clock of a client id is the first one seen). Per
//!   conversation, in conv_seq order over the reference positions: for each
//!   user `u` a clock names with count `n`, `n` must not exceed the text
//!   messages of `u` (senders from `send_invoke`) at lower positions, plus 1
//!   when `u` sent this one, plus `u`'s sends into the conversation that no
//!   one saw and no ack named (never sequenced, as far as the history
//!   knows). Each (message, user) over the bound counts once. This is the
//!   causality the server guarantees: whatever a clock says its author had
//!   seen is sequenced below it.
//! - **C14** counts a device's sends to a conversation, in first
//!   `send_invoke` order, whose clock is not after (entry-wise at least,
//!   one entry more) the clock of the device's previous send there that
//!   was seen with a clock; and client ids seen with two different clocks
//!   (the server returns the clock it stored).
//! - **L1** applies when a `heal` was recorded: every device that recorded
//!   anything must record `converged` within the bound after the last heal.
//!
//! Finals must be taken after the last send completed: a message sequenced
//! after a device took its final looks lost (C4, C7).

mod clocks;
mod positions;
mod sends;
mod streams;
#[cfg(test)]
mod tests;
mod views;

use crate::history::Event;
use crate::index::Index;
use crate::membership::Membership;
use crate::report::{Findings, Report, Totals};
use std::collections::{HashMap, HashSet};

/// How to check a history.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Members of conversations created before recording started: members
    /// from conv_seq 0, conversation id to user ids.
    pub initial_members: HashMap<String, Vec<String>>,
    /// For a conversation with no recorded membership, take the users acked
    /// in it or holding a final view of it as members from the start.
    pub infer_static_membership: bool,
    /// L1: how long after the last heal every device must have converged.
    pub convergence_bound_micros: u64,
    /// Witnesses kept per check.
    pub max_witnesses: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            initial_members: HashMap::new(),
            infer_static_membership: true,
            convergence_bound_micros: 60_000_000,
            max_witnesses: 5,
        }
    }
}

/// Runs every check over `events` (in any order; they are sorted by `t`).
pub fn check(events: &[Event], opts: &CheckOptions) -> Report {
    let ix = Index::build(events);
    let members = Membership::build(&ix, &opts.initial_members, opts.infer_static_membership);
    let positions = ix.positions_of();
    let mut f = Findings::new(opts.max_witnesses);
    let mut notes = Vec::new();

    positions::one_message_per_position(&ix, &mut f);
    let recovered = positions::one_position_per_id(&ix, &positions, &mut f);
    positions::contiguous(&ix, &mut f);
    sends::nothing_unsent(&ix, &mut f);
    sends::sender_order(&ix, &positions, &mut f);
    if ix.finalized.is_empty() {
        notes.push("no final views recorded: C4 and C7 not checked".to_string());
    } else {
        views::no_loss(&ix, &members, &mut f);
        views::same_sequence(&ix, &members, &mut f);
    }
    views::live_prefix(&ix, &members, &mut f);
    views::conv_streams(&ix, &members, &mut f);
    clocks::causality(&ix, &positions, &mut f);
    streams::pulls(&ix, &mut f);
    streams::user_seqs(&ix, &mut f);
    if !streams::convergence(&ix, opts.convergence_bound_micros, &mut f) {
        notes.push("no heal recorded: L1 not checked".to_string());
    }
    if members.inferred > 0 {
        notes.push(format!(
            "membership inferred (static) for {} conversation(s)",
            members.inferred
        ));
    }
    f.into_report(totals(events, &ix, recovered), notes)
}

fn totals(events: &[Event], ix: &Index<'_>, recovered: u64) -> Totals {
    let mut convs: HashSet<&str> = ix.conv_seqs.keys().copied().collect();
    convs.extend(ix.sends.values().filter_map(|s| s.invoke.as_ref().map(|i| i.conv)));
    let count = |p: &dyn Fn(&crate::index::Send<'_>) -> bool| ix.sends.values().filter(|s| p(s)).count() as u64;
    Totals {
        events: events.len() as u64,
        sends_invoked: count(&|s| s.invoke.is_some()),
        sends_ok: ix.send_ok_events,
        sends_failed: count(&|s| s.fail.is_some()),
        sends_unknown: count(&|s| s.unknown()),
        messages_acked: count(&|s| !s.acks.is_empty()),
        unknown_recovered: recovered,
        devices: ix.devices_of.values().map(|d| d.len() as u64).sum(),
        conversations: convs.len() as u64,
    }
}
