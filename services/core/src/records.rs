//! Records that travel on the log between the roles, and the topics they
//! travel on. Adapters choose the wire encoding; services see these types.

use crate::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, GatewayId, UserId};
use crate::model::{ConversationKind, Message, Outcome, TimelineEntry, VectorClock};
use serde::{Deserialize, Serialize};

/// Where a command came from, so its receipt can find its way back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The gateway holding the connection or HTTP request.
    pub gateway: GatewayId,
    /// The authenticated user.
    pub user: UserId,
    /// The authenticated device.
    pub device: DeviceId,
    /// Gateway-local id of an HTTP request waiting for the receipt (0 for a
    /// WebSocket send, whose receipt is matched by client message id).
    pub request: u64,
    /// The user's display name from the token (empty when none); the
    /// sequencer copies it into the message as `sender_name`.
    #[serde(default)]
    pub name: String,
}

/// A command for the sequencer; key = conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Send a chat message.
    Send(SendCommand),
    /// Create a conversation.
    Create(CreateCommand),
    /// Add or remove members.
    ChangeMembers(MembersCommand),
    /// Several commands of one conversation from one device, sequenced
    /// consecutively or refused whole.
    Batch(BatchCommand),
}

/// Send a chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendCommand {
    /// Who sends.
    pub origin: Origin,
    /// To which conversation.
    pub conv: ConversationId,
    /// The client's id for this message.
    pub client_msg_id: ClientMsgId,
    /// The previous message this device sent to this conversation (G5).
    pub prev: Option<ClientMsgId>,
    /// The text.
    pub body: String,
    /// Asked for high priority (admins of groups only).
    pub priority: bool,
    /// The author's vector clock, if the client keeps one.
    pub vclock: VectorClock,
    /// Client's clock when sent, milliseconds (informational only).
    pub sent_ms: u64,
}

/// Create a conversation with its first members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCommand {
    /// The creator.
    pub origin: Origin,
    /// The new conversation's id.
    pub conv: ConversationId,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Title for groups.
    pub title: String,
    /// First members (the creator is added if missing).
    pub members: Vec<UserId>,
    /// Dedup id of the command.
    pub client_msg_id: ClientMsgId,
}

/// Add and remove members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersCommand {
    /// Who asks.
    pub origin: Origin,
    /// Which conversation.
    pub conv: ConversationId,
    /// Dedup id of the command.
    pub client_msg_id: ClientMsgId,
    /// Users to add.
    pub add: Vec<UserId>,
    /// Users to remove (a member may always remove themself).
    pub remove: Vec<UserId>,
}

/// Most commands in one batch.
pub const MAX_BATCH_COMMANDS: usize = 16;
/// Most body bytes of all the sends of one batch together.
pub const MAX_BATCH_BYTES: usize = 32 * 1024;

/// Commands of one conversation from one device, applied as one: their
/// messages get consecutive `conv_seq`s with nothing in between, or none of
/// them is sequenced. Each command keeps its own client id (the unit of
/// deduplication) and gets its own receipt. A send after the first follows
/// the batch's previous send (`prev`); only sends and member removals may
/// be batched, each with the batch's origin and conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCommand {
    /// Who sends every command.
    pub origin: Origin,
    /// The conversation of every command.
    pub conv: ConversationId,
    /// The commands, in the order they are sequenced.
    pub commands: Vec<BatchItem>,
}

/// One command of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchItem {
    /// Send a chat message.
    Send(SendCommand),
    /// Remove members (the sender themself: leave).
    ChangeMembers(MembersCommand),
}

impl BatchItem {
    /// The item's client id.
    pub fn client_msg_id(&self) -> ClientMsgId {
        match self {
            BatchItem::Send(c) => c.client_msg_id,
            BatchItem::ChangeMembers(c) => c.client_msg_id,
        }
    }

    /// The item as a command of its own.
    pub fn to_command(&self) -> Command {
        match self {
            BatchItem::Send(c) => Command::Send(c.clone()),
            BatchItem::ChangeMembers(c) => Command::ChangeMembers(c.clone()),
        }
    }
}

impl Command {
    /// The conversation, which is also the partition key.
    pub fn conv(&self) -> &ConversationId {
        match self {
            Command::Send(c) => &c.conv,
            Command::Create(c) => &c.conv,
            Command::ChangeMembers(c) => &c.conv,
            Command::Batch(c) => &c.conv,
        }
    }
    /// Who sent the command.
    pub fn origin(&self) -> &Origin {
        match self {
            Command::Send(c) => &c.origin,
            Command::Create(c) => &c.origin,
            Command::ChangeMembers(c) => &c.origin,
            Command::Batch(c) => &c.origin,
        }
    }
    /// The dedup id (of a batch: its first command's, nil when empty).
    pub fn client_msg_id(&self) -> ClientMsgId {
        match self {
            Command::Send(c) => c.client_msg_id,
            Command::Create(c) => c.client_msg_id,
            Command::ChangeMembers(c) => c.client_msg_id,
            Command::Batch(c) => c
                .commands
                .first()
                .map_or(ClientMsgId(uuid::Uuid::nil()), BatchItem::client_msg_id),
        }
    }
    /// Every dedup id the command carries (one, or each of a batch's).
    pub fn client_msg_ids(&self) -> Vec<ClientMsgId> {
        match self {
            Command::Batch(c) => c.commands.iter().map(BatchItem::client_msg_id).collect(),
            other => vec![other.client_msg_id()],
        }
    }
}

/// One message for one member's timeline; key = user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Whose timeline.
    pub user: UserId,
    /// The sequenced message.
    pub message: Message,
}

/// A timeline entry was appended; key = user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEvent {
    /// Whose timeline.
    pub user: UserId,
    /// The new entry.
    pub entry: TimelineEntry,
}

/// The answer to a command, for the gateway that sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Where the command came from.
    pub origin: Origin,
    /// The conversation.
    pub conv: ConversationId,
    /// The command's client id.
    pub client_msg_id: ClientMsgId,
    /// What became of it.
    pub outcome: Outcome,
}

/// Entries for one device, pushed by fanout. A package may be cut into
/// `count` fragments; the gateway's rectifier releases it only whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// The user.
    pub user: UserId,
    /// The device.
    pub device: DeviceId,
    /// Unique per fanout instance and user.
    pub package_id: u64,
    /// This fragment's index, from 0.
    pub index: u32,
    /// How many fragments the package has.
    pub count: u32,
    /// Entries in user_seq order.
    pub entries: Vec<TimelineEntry>,
}

/// A message of a conversation in read-diffusion mode (or the boundary
/// message of a switch out of it), for fanout; key = conversation. One
/// event per message, whatever the number of members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvEvent {
    /// The sequenced message (`conv_seq` is the conversation's new head).
    pub message: Message,
}

/// For one gateway: a read-diffusion conversation advanced. Ordinary
/// messages are coalesced into "advanced to `head`" (throttled per
/// conversation); a high-priority message (announcement, membership event)
/// travels in full in `message` and is never throttled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The conversation.
    pub conv: ConversationId,
    /// Its committed head.
    pub head: ConvSeq,
    /// The high-priority message, pushed in full to the online members.
    pub message: Option<Message>,
}

/// A user's read position in a conversation moved; pushed to the user's
/// other devices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMark {
    /// The user.
    pub user: UserId,
    /// The device that moved it (it is not told again).
    pub device: DeviceId,
    /// The conversation.
    pub conv: ConversationId,
    /// The new read position (everything up to it is read).
    pub conv_seq: ConvSeq,
}

/// What a gateway consumes from its own topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GatewayRecord {
    /// The answer to a command.
    Receipt(Receipt),
    /// Entries to push.
    Package(Package),
    /// A read-diffusion conversation advanced.
    Notice(Notice),
    /// A read position moved.
    ReadMark(ReadMark),
}

/// A record that could not be decoded or handled, set aside with its reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Topic it came from.
    pub topic: String,
    /// Partition it came from.
    pub partition: u32,
    /// Offset it had.
    pub offset: u64,
    /// Why it was set aside.
    pub reason: String,
    /// The raw bytes, when there were any.
    pub raw: Vec<u8>,
}

/// The topics of the pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Commands, key = conversation.
    Inbound,
    /// Deliveries to timelines, key = user.
    Deliveries,
    /// Timeline appends, key = user.
    UserEvents,
    /// Ordinary messages of read-diffusion conversations, key =
    /// conversation.
    ConvEvents,
    /// High-priority messages of read-diffusion conversations (an admin's
    /// announcements, membership events), key = conversation: their own
    /// lane, so no backlog of ordinary events delays them.
    PriorityEvents,
    /// Receipts, packages, notices and read marks for one gateway.
    Gateway(GatewayId),
    /// High-priority notices for one gateway, consumed beside its ordinary
    /// topic.
    GatewayPriority(GatewayId),
    /// Records that failed.
    DeadLetter,
}

impl Topic {
    /// The topic's name on the log (adapters may add a prefix).
    pub fn name(&self) -> String {
        match self {
            Topic::Inbound => "inbound".into(),
            Topic::Deliveries => "deliveries".into(),
            Topic::UserEvents => "user-events".into(),
            Topic::ConvEvents => "conv-events".into(),
            Topic::PriorityEvents => "priority-events".into(),
            Topic::Gateway(g) => format!("gw.{g}"),
            // `gw-` cannot begin a `gw.<id>` name, whatever the id.
            Topic::GatewayPriority(g) => format!("gw-priority.{g}"),
            Topic::DeadLetter => "dead-letter".into(),
        }
    }

    /// The topic of the conversation event of `message`: high-priority
    /// messages travel on their own lane.
    pub fn for_conv_event(message: &Message) -> Topic {
        if message.priority {
            Topic::PriorityEvents
        } else {
            Topic::ConvEvents
        }
    }

    /// The topic that carries `notice` to `gateway`: a notice with the
    /// message in full (high priority) goes on the gateway's priority lane.
    pub fn for_notice(gateway: GatewayId, notice: &Notice) -> Topic {
        if notice.message.is_some() {
            Topic::GatewayPriority(gateway)
        } else {
            Topic::Gateway(gateway)
        }
    }

    /// Whether this is a gateway's topic (ordinary or priority lane):
    /// best-effort records only.
    pub fn is_gateway(&self) -> bool {
        matches!(self, Topic::Gateway(_) | Topic::GatewayPriority(_))
    }
}

/// Any record on the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogRecord {
    /// For the sequencer.
    Command(Command),
    /// For the timeline writer.
    Delivery(Delivery),
    /// For fanout.
    UserEvent(UserEvent),
    /// For fanout's conversation lane.
    ConvEvent(ConvEvent),
    /// For a gateway.
    Gateway(GatewayRecord),
    /// Set aside.
    DeadLetter(DeadLetter),
}

impl LogRecord {
    /// The partition key: conversation for commands, user for deliveries and
    /// events, user for packages, conversation for receipts.
    pub fn key(&self) -> &str {
        match self {
            LogRecord::Command(c) => c.conv().as_str(),
            LogRecord::Delivery(d) => d.user.as_str(),
            LogRecord::UserEvent(e) => e.user.as_str(),
            LogRecord::ConvEvent(e) => e.message.conv.as_str(),
            LogRecord::Gateway(GatewayRecord::Receipt(r)) => r.conv.as_str(),
            LogRecord::Gateway(GatewayRecord::Package(p)) => p.user.as_str(),
            LogRecord::Gateway(GatewayRecord::Notice(n)) => n.conv.as_str(),
            LogRecord::Gateway(GatewayRecord::ReadMark(r)) => r.user.as_str(),
            LogRecord::DeadLetter(d) => &d.topic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConvSeq;
    use crate::model::MessageKind;

    fn message(priority: bool) -> Message {
        Message {
            conv: ConversationId::parse("g:all").unwrap(),
            conv_seq: ConvSeq(9),
            client_msg_id: ClientMsgId::random(),
            sender: UserId::parse("admin").unwrap(),
            sender_device: DeviceId::parse("d").unwrap(),
            kind: MessageKind::Text,
            body: String::new(),
            members: Vec::new(),
            priority,
            server_ts_ms: 0,
            vclock: Default::default(),
            sender_name: String::new(),
            read_diffusion: true,
        }
    }

    #[test]
    fn priority_messages_travel_on_their_own_topics() {
        assert_eq!(Topic::for_conv_event(&message(false)), Topic::ConvEvents);
        assert_eq!(Topic::for_conv_event(&message(true)), Topic::PriorityEvents);
        let gw = GatewayId::parse("gw1").unwrap();
        let conv = ConversationId::parse("g:all").unwrap();
        let ordinary = Notice {
            conv: conv.clone(),
            head: ConvSeq(9),
            message: None,
        };
        let full = Notice {
            conv,
            head: ConvSeq(9),
            message: Some(message(true)),
        };
        assert_eq!(Topic::for_notice(gw.clone(), &ordinary), Topic::Gateway(gw.clone()));
        assert_eq!(Topic::for_notice(gw.clone(), &full), Topic::GatewayPriority(gw.clone()));
        assert!(Topic::GatewayPriority(gw.clone()).is_gateway() && Topic::Gateway(gw).is_gateway());
        assert!(!Topic::PriorityEvents.is_gateway());
    }

    #[test]
    fn every_topic_has_its_own_name() {
        let names = |g: &str| {
            let g = GatewayId::parse(g).unwrap();
            [Topic::Gateway(g.clone()).name(), Topic::GatewayPriority(g).name()]
        };
        assert_eq!(Topic::PriorityEvents.name(), "priority-events");
        assert_eq!(names("a"), ["gw.a".to_string(), "gw-priority.a".to_string()]);
        // A gateway id that looks like a priority lane cannot take its name.
        for tricky in ["priority.a", "a.priority", "-priority.a"] {
            let Ok(id) = GatewayId::parse(tricky) else { continue };
            assert_ne!(Topic::Gateway(id).name(), "gw-priority.a");
        }
        let all = [
            Topic::Inbound,
            Topic::Deliveries,
            Topic::UserEvents,
            Topic::ConvEvents,
            Topic::PriorityEvents,
            Topic::DeadLetter,
        ];
        let mut seen: Vec<String> = all.iter().map(Topic::name).chain(names("a")).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), all.len() + 2);
    }
}
