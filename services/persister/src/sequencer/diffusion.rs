//! Who gets a timeline entry for a message, and when a conversation event
//! goes out instead: write diffusion for ordinary conversations, read
//! diffusion for huge groups (see `docs/huge-groups.md`).

use seqline_core::ids::UserId;
use seqline_core::model::{Message, MessageKind};

/// The users whose timelines get `m`, given the mode before it and the
/// members after it (plus the users it removed).
///
/// - Write mode before, or a boundary (the mode flips at `m`): every member.
/// - Read mode before and after: only the users a `joined` or `left` is
///   about, so their devices know to start or stop following.
pub fn recipients<'a, I>(m: &'a Message, read_before: bool, members: impl FnOnce() -> I) -> Vec<&'a UserId>
where
    I: Iterator<Item = &'a UserId>,
{
    if !read_before || !m.read_diffusion {
        return members().collect();
    }
    match m.kind {
        MessageKind::Joined | MessageKind::Left => m.members.iter().collect(),
        MessageKind::Text | MessageKind::Created => Vec::new(),
    }
}

/// The copy of `m` that goes to `user`'s timeline. In read mode a
/// `joined`/`left` message reaches only the users it names, and each of
/// them gets a copy naming just themself: adding 1,000 members at once then
/// writes 1,000 small entries, not 1,000 copies of a 1,000-name list. The
/// stored message (history, pulls) keeps the whole list.
pub fn copy_for(m: &Message, read_before: bool, user: &UserId) -> Message {
    let membership = matches!(m.kind, MessageKind::Joined | MessageKind::Left);
    if read_before && m.read_diffusion && membership && m.members.len() > 1 {
        let mut copy = m.clone();
        copy.members = vec![user.clone()];
        copy
    } else {
        m.clone()
    }
}

/// Whether `m` also goes out as one conversation event (for notices and the
/// priority lane): whenever the conversation is in read mode before or
/// after it.
pub fn is_conv_event(m: &Message, read_before: bool) -> bool {
    read_before || m.read_diffusion
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId};

    fn message(kind: MessageKind, read: bool, members: &[&str]) -> Message {
        Message {
            conv: ConversationId::parse("g").unwrap(),
            conv_seq: ConvSeq(7),
            client_msg_id: ClientMsgId::random(),
            sender: UserId::parse("a").unwrap(),
            sender_device: DeviceId::parse("d").unwrap(),
            kind,
            body: String::new(),
            members: members.iter().map(|u| UserId::parse(*u).unwrap()).collect(),
            priority: false,
            server_ts_ms: 0,
            vclock: Default::default(),
            sender_name: String::new(),
            read_diffusion: read,
        }
    }

    #[test]
    fn write_mode_and_boundaries_reach_every_member() {
        let all: Vec<UserId> = ["a", "b", "c"].iter().map(|u| UserId::parse(*u).unwrap()).collect();
        for (before, after) in [(false, false), (false, true), (true, false)] {
            let m = message(MessageKind::Text, after, &[]);
            assert_eq!(recipients(&m, before, || all.iter()).len(), 3, "{before}->{after}");
            assert_eq!(is_conv_event(&m, before), before || after);
        }
    }

    #[test]
    fn read_mode_reaches_only_the_users_a_membership_event_is_about() {
        let all: Vec<UserId> = ["a", "b", "c"].iter().map(|u| UserId::parse(*u).unwrap()).collect();
        let text = message(MessageKind::Text, true, &[]);
        assert!(recipients(&text, true, || all.iter()).is_empty());
        let joined = message(MessageKind::Joined, true, &["z"]);
        let got: Vec<&str> = recipients(&joined, true, || all.iter())
            .iter()
            .map(|u| u.as_str())
            .collect();
        assert_eq!(got, vec!["z"]);
        assert!(is_conv_event(&text, true));
    }
}
