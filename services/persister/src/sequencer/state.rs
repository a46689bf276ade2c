//! The sequencer's pure state machine for one conversation: no I/O, so it is
//! unit- and property-tested directly and benchmarked (workload W6).

use rustc_hash::FxHashMap;
use seqline_core::algo::DedupWindow;
use seqline_core::ids::{ClientMsgId, ConvSeq, DeviceId, UserId};
use seqline_core::model::{ConversationKind, ConversationMeta, Message, MessageKind, Outcome, RefusalCode, Role};
use seqline_core::ports::{ConversationState, MemberChange};
use seqline_core::records::{Command, CreateCommand, MembersCommand, Origin, SendCommand};
use std::collections::BTreeMap;

/// Limits the sequencer enforces.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most members of a group.
    pub max_group_members: usize,
    /// Largest body, bytes.
    pub max_body_bytes: usize,
    /// Client ids remembered in memory per conversation.
    pub dedup_window: usize,
    /// A group with more members than this is in read-diffusion mode.
    pub read_diffusion_threshold: usize,
}

/// In-memory state of one conversation.
pub struct ConvState {
    /// Fixed settings.
    pub meta: ConversationMeta,
    /// Highest conv_seq assigned.
    pub head: ConvSeq,
    /// Current members.
    pub members: BTreeMap<UserId, Role>,
    /// Last processed command per user and device (sender order).
    pub device_last: FxHashMap<UserId, FxHashMap<DeviceId, ClientMsgId>>,
    /// Recent outcomes by client id.
    pub window: Window,
    /// Created by this sequencer: every id it ever saw went through the
    /// window, so while nothing was evicted a miss means a new id.
    pub created_here: bool,
    /// The mode after the head message: read diffusion (huge group).
    pub read_diffusion: bool,
    /// The head when this state was loaded from the store (0 when created
    /// here). Messages up to it were stored by an earlier owner, which may
    /// have died before their deliveries left; every later message was
    /// sequenced by this state's owner, whose deliveries are durable once
    /// its batch succeeded (a failed batch drops the cached state).
    pub loaded_head: ConvSeq,
}

impl ConvState {
    /// State reloaded from the store; `read_diffusion` is the flag of the
    /// stored head message.
    pub fn from_stored(s: ConversationState, dedup_window: usize, read_diffusion: bool) -> Self {
        let mut device_last: FxHashMap<UserId, FxHashMap<DeviceId, ClientMsgId>> = FxHashMap::default();
        for ((u, d), id) in s.device_last {
            device_last.entry(u).or_default().insert(d, id);
        }
        Self {
            meta: s.meta,
            head: s.head,
            members: s.members,
            device_last,
            window: Window::new(dedup_window),
            created_here: false,
            read_diffusion,
            loaded_head: s.head,
        }
    }

    /// Whether a window miss proves an id is new (no store lookup needed).
    pub fn window_is_complete(&self) -> bool {
        self.created_here && !self.window.has_evicted()
    }

    /// Whether the deliveries of stored message `seq` may not have left: it
    /// was stored before this state was loaded. A resend of a message this
    /// owner sequenced needs no replay (it would only repeat deliveries the
    /// timeline writer skips, which under a resend storm multiplies the
    /// deliveries topic's traffic).
    pub fn may_lack_deliveries(&self, seq: ConvSeq) -> bool {
        seq <= self.loaded_head
    }

    /// The last command processed from `device` of `user`.
    pub fn last_of(&self, user: &UserId, device: &DeviceId) -> Option<&ClientMsgId> {
        self.device_last.get(user).and_then(|m| m.get(device))
    }
}

/// A conversation's recent outcomes by client id (the in-memory half of
/// its dedup window).
pub struct Window(DedupWindow<ClientMsgId, Kept, rustc_hash::FxBuildHasher>);

/// An outcome as the window keeps it. The window's values sit in its index,
/// where every lookup lands on a random cache line; 16 bytes instead of an
/// [`Outcome`]'s 32 keep more slots per line and the index smaller. Nearly
/// every outcome is a conv_seq; refusals are rare and boxed.
#[derive(Debug)]
enum Kept {
    Sequenced(ConvSeq),
    Refused(Box<Outcome>),
}

impl Window {
    /// An empty window of at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        Self(DedupWindow::new(capacity))
    }

    /// The outcome remembered for `id`.
    pub fn get(&self, id: &ClientMsgId) -> Option<Outcome> {
        self.0.get(id).map(|k| match k {
            Kept::Sequenced(conv_seq) => Outcome::Sequenced { conv_seq: *conv_seq },
            Kept::Refused(o) => (**o).clone(),
        })
    }

    /// Remembers `outcome` for `id` (the oldest id goes when full).
    pub fn insert(&mut self, id: ClientMsgId, outcome: Outcome) {
        let kept = match outcome {
            Outcome::Sequenced { conv_seq } => Kept::Sequenced(conv_seq),
            refused => Kept::Refused(Box::new(refused)),
        };
        self.0.insert(id, kept);
    }

    /// Whether any id was ever forgotten to make room.
    pub fn has_evicted(&self) -> bool {
        self.0.has_evicted()
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What applying one command did.
#[derive(Debug, PartialEq)]
pub enum Applied {
    /// A resend of a processed command: its original outcome, nothing new.
    Duplicate(Outcome),
    /// Refused. `remember` when the refusal is final and the conversation
    /// exists, so a resend gets the same answer and the device's sender
    /// order moves past it.
    Refused {
        /// The outcome to report.
        outcome: Outcome,
        /// Whether to store it.
        remember: bool,
    },
    /// New messages were sequenced.
    Sequenced {
        /// The outcome (the last message's conv_seq).
        outcome: Outcome,
        /// The conversation's mode before the first message (each message
        /// carries the mode after it).
        read_before: bool,
        /// New messages, in order.
        messages: Vec<Message>,
        /// Membership changes, in order.
        changes: Vec<MemberChange>,
        /// Users removed by this command (they get the `left` message too)
        /// or, in a batch, by a later command of it: recipients of this
        /// command's messages besides the members after the batch.
        removed: Vec<UserId>,
    },
    /// A batch: what each of its commands did, in order (see
    /// [`apply_batch`](super::batch::apply_batch)).
    Batch(Vec<Applied>),
}

pub(super) fn refuse(code: RefusalCode, reason: impl Into<String>, exists: bool) -> Applied {
    Applied::Refused {
        outcome: Outcome::Refused {
            code,
            reason: reason.into(),
        },
        remember: exists && code.is_final(),
    }
}

/// Applies `cmd` to the conversation `state` (`None` if it does not exist).
/// The caller has put any stored outcome of `cmd`'s client id into the
/// window first. Takes the command by value so its body moves into the
/// message instead of being copied.
pub fn apply(state: &mut Option<ConvState>, cmd: Command, now_ms: u64, limits: &Limits) -> Applied {
    let cmd = match cmd {
        Command::Batch(b) => return super::batch::apply_batch(state, b, now_ms, limits),
        other => other,
    };
    let id = cmd.client_msg_id();
    if let Some(s) = state.as_ref() {
        if let Some(o) = s.window.get(&id) {
            return Applied::Duplicate(o);
        }
    }
    let Some(s) = state.as_mut() else {
        return match cmd {
            Command::Create(c) => create(state, &c, now_ms, limits),
            _ => refuse(RefusalCode::NotMember, "not a member of this conversation", false),
        };
    };
    // Only chat sends form a device's sender-order chain: creating a group or
    // changing members (HTTP) from a device must not break its `prev` chain.
    let mut applied = match cmd {
        Command::Create(c) => {
            if s.meta.kind == ConversationKind::Direct && c.kind == ConversationKind::Direct {
                // Creating an existing direct conversation is idempotent.
                return Applied::Duplicate(Outcome::Sequenced { conv_seq: ConvSeq(1) });
            }
            refuse(RefusalCode::Conflict, "the conversation already exists", true)
        }
        Command::Send(c) => return apply_send(s, c, id, now_ms, limits),
        Command::ChangeMembers(c) => change_members(s, &c, now_ms, limits),
        Command::Batch(_) => refuse(RefusalCode::Invalid, "a batch inside a batch", true),
    };
    set_mode(s, &mut applied, limits);
    record(s, None, id, &applied);
    applied
}

/// [`apply`] for a send, the hot path; the same steps as [`send`],
/// [`set_mode`] and [`record`], fused so that each piece of the
/// conversation's state is looked up once (most lookups here miss the CPU
/// caches, which is what a send costs): the device's last id is found once
/// for the `prev` check and its update, and the sender's ids move from the
/// command into the message instead of being cloned (no shared reference
/// count is touched).
fn apply_send(s: &mut ConvState, c: SendCommand, id: ClientMsgId, now_ms: u64, limits: &Limits) -> Applied {
    let refused = check_member(s, &c, limits);
    let last = match refused {
        Some(_) => None,
        None => s
            .device_last
            .get_mut(&c.origin.user)
            .and_then(|devices| devices.get_mut(&c.origin.device)),
    };
    let refused = refused.or_else(|| match c.prev {
        Some(prev) if last.as_deref() != Some(&prev) => Some(out_of_order()),
        _ => None,
    });
    if let Some(refused) = refused {
        record(s, Some((&c.origin.user, &c.origin.device)), id, &refused);
        return refused;
    }
    // Sender order: the device's last id is now this one.
    let new_device = match last {
        Some(last) => {
            *last = id;
            false
        }
        None => true,
    };
    if new_device {
        s.device_last
            .entry(c.origin.user.clone())
            .or_default()
            .insert(c.origin.device.clone(), id);
    }
    let mut applied = sequence_send(s, c, now_ms);
    set_mode(s, &mut applied, limits);
    if let Applied::Sequenced { outcome, .. } = &applied {
        s.window.insert(id, outcome.clone());
    }
    applied
}

/// Whether a conversation of `kind` with `members` members is in read
/// diffusion: groups above the threshold.
pub fn reads_by_pull(kind: ConversationKind, members: usize, limits: &Limits) -> bool {
    kind == ConversationKind::Group && members > limits.read_diffusion_threshold
}

/// Re-evaluates the mode after a sequenced command and stamps its messages
/// with it; a message where it flips is the recorded boundary.
pub(super) fn set_mode(s: &mut ConvState, applied: &mut Applied, limits: &Limits) {
    if let Applied::Sequenced {
        messages, read_before, ..
    } = applied
    {
        *read_before = s.read_diffusion;
        let after = reads_by_pull(s.meta.kind, s.members.len(), limits);
        for m in messages.iter_mut() {
            m.read_diffusion = after;
        }
        s.read_diffusion = after;
    }
}

/// Remembers the outcome and, for a send, moves the device's sender order
/// forward.
pub(super) fn record(s: &mut ConvState, sender: Option<(&UserId, &DeviceId)>, id: ClientMsgId, applied: &Applied) {
    let outcome = match applied {
        Applied::Sequenced { outcome, .. } => outcome,
        Applied::Refused {
            outcome,
            remember: true,
        } => outcome,
        _ => return,
    };
    s.window.insert(id, outcome.clone());
    let Some((user, device)) = sender else { return };
    match s.device_last.get_mut(user) {
        Some(devices) => match devices.get_mut(device) {
            Some(last) => *last = id,
            None => {
                devices.insert(device.clone(), id);
            }
        },
        None => {
            s.device_last
                .entry(user.clone())
                .or_default()
                .insert(device.clone(), id);
        }
    }
}

/// The next message of `s`, with an empty body; the caller fills the rest.
fn next_message(s: &mut ConvState, o: &Origin, id: ClientMsgId, kind: MessageKind, now_ms: u64) -> Message {
    s.head = s.head.next();
    Message {
        read_diffusion: s.read_diffusion,
        conv: s.meta.conv.clone(),
        conv_seq: s.head,
        client_msg_id: id,
        sender: o.user.clone(),
        sender_device: o.device.clone(),
        kind,
        body: String::new(),
        members: Vec::new(),
        priority: kind != MessageKind::Text,
        server_ts_ms: now_ms,
        vclock: Default::default(),
        sender_name: o.name.clone(),
    }
}

pub(super) fn send(s: &mut ConvState, c: SendCommand, now_ms: u64, limits: &Limits) -> Applied {
    match check_send(s, &c, limits) {
        Some(refused) => refused,
        None => sequence_send(s, c, now_ms),
    }
}

/// Why `c` is refused, if it is.
fn check_send(s: &ConvState, c: &SendCommand, limits: &Limits) -> Option<Applied> {
    if let Some(refused) = check_member(s, c, limits) {
        return Some(refused);
    }
    match c.prev {
        Some(prev) if s.last_of(&c.origin.user, &c.origin.device) != Some(&prev) => Some(out_of_order()),
        _ => None,
    }
}

/// The checks of a send before its sender order: membership, size, priority.
fn check_member(s: &ConvState, c: &SendCommand, limits: &Limits) -> Option<Applied> {
    let Some(role) = s.members.get(&c.origin.user).copied() else {
        return Some(refuse(
            RefusalCode::NotMember,
            "not a member of this conversation",
            true,
        ));
    };
    if c.body.len() > limits.max_body_bytes {
        return Some(refuse(RefusalCode::Invalid, "the body is too large", true));
    }
    if c.priority && !(s.meta.kind == ConversationKind::Group && role == Role::Admin) {
        return Some(refuse(
            RefusalCode::Forbidden,
            "only group admins may send high-priority messages",
            true,
        ));
    }
    None
}

fn out_of_order() -> Applied {
    refuse(
        RefusalCode::OutOfOrder,
        "the previous message from this device is not sequenced yet; resend from the first unacknowledged one",
        true,
    )
}

/// Sequences the checked send `c`: its body, clock and sender's ids move
/// into the message.
fn sequence_send(s: &mut ConvState, c: SendCommand, now_ms: u64) -> Applied {
    let SendCommand {
        origin,
        client_msg_id,
        body,
        priority,
        vclock,
        ..
    } = c;
    s.head = s.head.next();
    let m = Message {
        read_diffusion: s.read_diffusion,
        conv: s.meta.conv.clone(),
        conv_seq: s.head,
        client_msg_id,
        sender: origin.user,
        sender_device: origin.device,
        kind: MessageKind::Text,
        body,
        members: Vec::new(),
        priority,
        server_ts_ms: now_ms,
        vclock,
        sender_name: origin.name,
    };
    Applied::Sequenced {
        outcome: Outcome::Sequenced { conv_seq: m.conv_seq },
        read_before: false,
        messages: vec![m],
        changes: Vec::new(),
        removed: Vec::new(),
    }
}

fn create(state: &mut Option<ConvState>, c: &CreateCommand, now_ms: u64, limits: &Limits) -> Applied {
    let creator = &c.origin.user;
    let mut members: BTreeMap<UserId, Role> = BTreeMap::new();
    for u in &c.members {
        members.insert(u.clone(), Role::Member);
    }
    match c.kind {
        ConversationKind::Direct => {
            members.insert(creator.clone(), Role::Member);
            let others: Vec<&UserId> = members.keys().filter(|u| *u != creator).collect();
            let [peer] = others.as_slice() else {
                return refuse(
                    RefusalCode::Invalid,
                    "a direct conversation has exactly one other member",
                    false,
                );
            };
            if c.conv != seqline_core::ConversationId::direct(creator, peer) {
                return refuse(
                    RefusalCode::Invalid,
                    "a direct conversation's id must be dm:<a>:<b>",
                    false,
                );
            }
        }
        ConversationKind::Group => {
            if c.conv.is_direct() {
                return refuse(RefusalCode::Invalid, "group ids may not start with dm:", false);
            }
            if c.title.len() > 256 {
                return refuse(RefusalCode::Invalid, "the title is longer than 256 bytes", false);
            }
            members.insert(creator.clone(), Role::Admin);
            if members.len() > limits.max_group_members {
                return refuse(RefusalCode::TooLarge, "too many members", false);
            }
        }
    }
    let meta = ConversationMeta {
        conv: c.conv.clone(),
        kind: c.kind,
        title: c.title.clone(),
        created_by: creator.clone(),
        created_ms: now_ms,
    };
    let mut s = ConvState {
        meta,
        head: ConvSeq::ZERO,
        members: BTreeMap::new(),
        device_last: FxHashMap::default(),
        window: Window::new(limits.dedup_window),
        created_here: true,
        read_diffusion: false,
        loaded_head: ConvSeq::ZERO,
    };
    let mut m = next_message(&mut s, &c.origin, c.client_msg_id, MessageKind::Created, now_ms);
    m.body = c.title.clone();
    m.members = members.keys().cloned().collect();
    let changes = members
        .iter()
        .map(|(u, r)| MemberChange {
            user: u.clone(),
            role: Some(*r),
            at: m.conv_seq,
        })
        .collect();
    s.members = members;
    let mut applied = Applied::Sequenced {
        outcome: Outcome::Sequenced { conv_seq: m.conv_seq },
        read_before: false,
        messages: vec![m],
        changes,
        removed: Vec::new(),
    };
    set_mode(&mut s, &mut applied, limits);
    record(&mut s, None, c.client_msg_id, &applied);
    *state = Some(s);
    applied
}

pub(super) fn change_members(s: &mut ConvState, c: &MembersCommand, now_ms: u64, limits: &Limits) -> Applied {
    let me = &c.origin.user;
    let Some(role) = s.members.get(me).copied() else {
        return refuse(RefusalCode::NotMember, "not a member of this conversation", true);
    };
    if s.meta.kind == ConversationKind::Direct {
        return refuse(
            RefusalCode::Invalid,
            "members of a direct conversation cannot change",
            true,
        );
    }
    if !c.add.is_empty() && !c.remove.is_empty() {
        return refuse(
            RefusalCode::Invalid,
            "add and remove members in separate requests",
            true,
        );
    }
    let only_self = c.add.is_empty() && c.remove.iter().all(|u| u == me);
    if role != Role::Admin && !only_self {
        return refuse(RefusalCode::Forbidden, "only admins may add or remove others", true);
    }
    let add: Vec<UserId> = dedup_users(c.add.iter().filter(|u| !s.members.contains_key(*u)));
    let remove: Vec<UserId> = dedup_users(c.remove.iter().filter(|u| s.members.contains_key(*u)));
    if add.is_empty() && remove.is_empty() {
        return refuse(RefusalCode::Invalid, "nothing to change", true);
    }
    if s.members.len() + add.len() > limits.max_group_members + remove.len() {
        return refuse(RefusalCode::TooLarge, "too many members", true);
    }
    let mut messages = Vec::with_capacity(1);
    let mut changes = Vec::new();
    if !add.is_empty() {
        let mut m = next_message(s, &c.origin, c.client_msg_id, MessageKind::Joined, now_ms);
        m.members = add.clone();
        let at = m.conv_seq;
        messages.push(m);
        for u in &add {
            s.members.insert(u.clone(), Role::Member);
            changes.push(MemberChange {
                user: u.clone(),
                role: Some(Role::Member),
                at,
            });
        }
    }
    if !remove.is_empty() {
        let mut m = next_message(s, &c.origin, c.client_msg_id, MessageKind::Left, now_ms);
        m.members = remove.clone();
        let at = m.conv_seq;
        messages.push(m);
        for u in &remove {
            s.members.remove(u);
            changes.push(MemberChange {
                user: u.clone(),
                role: None,
                at,
            });
        }
    }
    Applied::Sequenced {
        outcome: Outcome::Sequenced { conv_seq: s.head },
        read_before: false,
        messages,
        changes,
        removed: remove,
    }
}

fn dedup_users<'a>(users: impl Iterator<Item = &'a UserId>) -> Vec<UserId> {
    let mut seen = std::collections::HashSet::new();
    users.filter(|u| seen.insert(*u)).cloned().collect()
}
