//! Batches: several commands of one conversation applied as one. Their
//! messages take consecutive `conv_seq`s, or, when any command is refused,
//! nothing is sequenced and every command gets the refusal of the first one
//! that failed, naming it.

use super::state::{change_members, record, refuse, send, set_mode, Applied, ConvState, Limits};
use seqline_core::ids::{ClientMsgId, DeviceId, UserId};
use seqline_core::model::{Outcome, RefusalCode};
use seqline_core::records::{BatchCommand, BatchItem, MAX_BATCH_BYTES, MAX_BATCH_COMMANDS};
use std::collections::HashSet;

/// Why a batch is refused: the index of the failing command, its code and
/// the reason.
struct Failure {
    index: usize,
    code: RefusalCode,
    reason: String,
}

impl Failure {
    fn new(index: usize, code: RefusalCode, reason: impl Into<String>) -> Self {
        Self {
            index,
            code,
            reason: reason.into(),
        }
    }
}

/// Applies batch `b` to the conversation `state`: one [`Applied`] per
/// command, in order. A resent batch (every id known) gets the original
/// outcomes; a batch reusing some known ids is refused (those ids keep
/// their outcomes).
pub(crate) fn apply_batch(state: &mut Option<ConvState>, b: BatchCommand, now_ms: u64, limits: &Limits) -> Applied {
    let ids: Vec<ClientMsgId> = b.commands.iter().map(BatchItem::client_msg_id).collect();
    let Some(s) = state.as_mut() else {
        let not_member = || refuse(RefusalCode::NotMember, "not a member of this conversation", false);
        return Applied::Batch(ids.iter().map(|_| not_member()).collect());
    };
    let known: Vec<Option<Outcome>> = ids.iter().map(|id| s.window.get(id)).collect();
    if known.iter().all(Option::is_some) {
        return Applied::Batch(known.into_iter().flatten().map(Applied::Duplicate).collect());
    }
    let sends: Vec<bool> = b.commands.iter().map(|c| matches!(c, BatchItem::Send(_))).collect();
    let failure = match known.iter().position(Option::is_some) {
        Some(i) => Some(Failure::new(
            i,
            RefusalCode::Invalid,
            "its id was used by another command before; a batch is sequenced whole or not at all",
        )),
        None => check(&b),
    };
    if let Some(f) = failure {
        return refuse_whole(s, (&b.origin.user, &b.origin.device), &ids, &sends, known, &f);
    }
    let (head, read_diffusion) = (s.head, s.read_diffusion);
    let members = b
        .commands
        .iter()
        .any(|c| matches!(c, BatchItem::ChangeMembers(_)))
        .then(|| s.members.clone());
    let mut applied = Vec::with_capacity(ids.len());
    let mut last_send: Option<ClientMsgId> = None;
    let mut failure = None;
    for (i, item) in b.commands.into_iter().enumerate() {
        let mut a = match item {
            BatchItem::Send(mut c) => {
                if let Some(last) = last_send {
                    if c.prev != Some(last) {
                        failure = Some(Failure::new(
                            i,
                            RefusalCode::Invalid,
                            "prev must name the send before it in the batch",
                        ));
                        break;
                    }
                    // Checked here: the device's chain moves once the
                    // whole batch is in.
                    c.prev = None;
                }
                last_send = Some(c.client_msg_id);
                send(s, c, now_ms, limits)
            }
            BatchItem::ChangeMembers(c) => change_members(s, &c, now_ms, limits),
        };
        if let Applied::Refused {
            outcome: Outcome::Refused { code, reason },
            ..
        } = &a
        {
            failure = Some(Failure::new(i, *code, reason.clone()));
            break;
        }
        set_mode(s, &mut a, limits);
        applied.push(a);
    }
    if let Some(f) = failure {
        s.head = head;
        s.read_diffusion = read_diffusion;
        if let Some(m) = members {
            s.members = m;
        }
        let unknown = ids.iter().map(|_| None).collect();
        return refuse_whole(s, (&b.origin.user, &b.origin.device), &ids, &sends, unknown, &f);
    }
    // A message of the batch reaches whoever a later command removed.
    let mut later: Vec<UserId> = Vec::new();
    for a in applied.iter_mut().rev() {
        if let Applied::Sequenced { removed, .. } = a {
            let own = removed.clone();
            for u in &later {
                if !removed.contains(u) {
                    removed.push(u.clone());
                }
            }
            later.extend(own);
        }
    }
    let sender = (&b.origin.user, &b.origin.device);
    for ((id, is_send), a) in ids.iter().zip(&sends).zip(&applied) {
        record(s, is_send.then_some(sender), *id, a);
    }
    Applied::Batch(applied)
}

/// What the state cannot tell: the batch's shape and limits (its record may
/// come from anything that writes to the log).
fn check(b: &BatchCommand) -> Option<Failure> {
    if b.commands.len() > MAX_BATCH_COMMANDS {
        return Some(Failure::new(
            MAX_BATCH_COMMANDS,
            RefusalCode::Invalid,
            format!("a batch holds at most {MAX_BATCH_COMMANDS} commands"),
        ));
    }
    let mut seen = HashSet::new();
    let mut bytes = 0usize;
    for (i, item) in b.commands.iter().enumerate() {
        let (origin, conv) = match item {
            BatchItem::Send(c) => (&c.origin, &c.conv),
            BatchItem::ChangeMembers(c) => (&c.origin, &c.conv),
        };
        if *origin != b.origin || *conv != b.conv {
            return Some(Failure::new(
                i,
                RefusalCode::Invalid,
                "another sender or conversation than its batch's",
            ));
        }
        let id = item.client_msg_id();
        if id.0.is_nil() || !seen.insert(id) {
            return Some(Failure::new(
                i,
                RefusalCode::Invalid,
                "its id is nil or used twice in the batch",
            ));
        }
        match item {
            BatchItem::Send(c) => {
                bytes += c.body.len();
                if bytes > MAX_BATCH_BYTES {
                    return Some(Failure::new(
                        i,
                        RefusalCode::Invalid,
                        format!("the batch's bodies are over {MAX_BATCH_BYTES} bytes"),
                    ));
                }
            }
            BatchItem::ChangeMembers(c) if !c.add.is_empty() => {
                return Some(Failure::new(i, RefusalCode::Invalid, "a batch may not add members"));
            }
            BatchItem::ChangeMembers(_) => {}
        }
    }
    None
}

/// Every command of the batch refused with `f` (an id known before keeps
/// its outcome). A final refusal is remembered, as for one command.
fn refuse_whole(
    s: &mut ConvState,
    sender: (&UserId, &DeviceId),
    ids: &[ClientMsgId],
    sends: &[bool],
    known: Vec<Option<Outcome>>,
    f: &Failure,
) -> Applied {
    let failed = ids.get(f.index).map_or_else(String::new, |id| format!(" ({id})"));
    let reason = format!(
        "command {}{failed} of the batch: {}; nothing in the batch was sequenced",
        f.index, f.reason
    );
    let applied: Vec<Applied> = known
        .into_iter()
        .map(|k| match k {
            Some(o) => Applied::Duplicate(o),
            None => refuse(f.code, reason.clone(), true),
        })
        .collect();
    // A remembered refusal moves the device's sender order past the refused
    // sends, as past one refused send.
    for ((id, is_send), a) in ids.iter().zip(sends).zip(&applied) {
        record(s, is_send.then_some(sender), *id, a);
    }
    Applied::Batch(applied)
}
