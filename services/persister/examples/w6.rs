//! Workload W6: conv_seq assignment with dedup, in process, no I/O.
//! `cargo run --release -p seqline-persister --example w6 -- [commands] [conversations]`
//! Prints commands/s on one core.

#![allow(clippy::unwrap_used)]

use seqline_core::ids::*;
use seqline_core::model::ConversationKind;
use seqline_core::records::{Command, CreateCommand, Origin, SendCommand};
use seqline_persister::sequencer::{apply, Applied, ConvState, Limits};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let convs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let limits = Limits {
        max_group_members: 1000,
        max_body_bytes: 65536,
        dedup_window: 1024,
        read_diffusion_threshold: 500,
    };
    let origin = |u: usize| Origin {
        name: String::new(),
        gateway: GatewayId::parse("gw").unwrap(),
        user: UserId::parse(format!("u{u}")).unwrap(),
        device: DeviceId::parse("d").unwrap(),
        request: 0,
    };
    let mut states: Vec<Option<ConvState>> = (0..convs).map(|_| None).collect();
    let ids: Vec<ConversationId> = (0..convs)
        .map(|i| ConversationId::parse(format!("g:{i}")).unwrap())
        .collect();
    for (i, s) in states.iter_mut().enumerate() {
        let c = Command::Create(CreateCommand {
            origin: origin(i),
            conv: ids[i].clone(),
            kind: ConversationKind::Group,
            title: String::new(),
            members: vec![UserId::parse(format!("u{}", i + 1)).unwrap()],
            client_msg_id: ClientMsgId::random(),
        });
        apply(s, c, 0, &limits);
    }
    // Pre-build the commands so only the sequencer is timed; 1 in 10 is a resend.
    let mut last: Vec<Option<ClientMsgId>> = vec![None; convs];
    let mut cmds = Vec::with_capacity(total);
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in 0..total {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let c = (rng as usize) % convs;
        let resend = n % 10 == 9 && last[c].is_some();
        let id = if resend {
            last[c].unwrap_or_else(ClientMsgId::random)
        } else {
            ClientMsgId(uuid::Uuid::from_u64_pair(rng, n as u64))
        };
        let prev = if resend { None } else { last[c] };
        if !resend {
            last[c] = Some(id);
        }
        cmds.push((
            c,
            Command::Send(SendCommand {
                origin: origin(c),
                conv: ids[c].clone(),
                client_msg_id: id,
                prev,
                body: "hello world".into(),
                priority: false,
                vclock: Default::default(),
                sent_ms: 0,
            }),
        ));
    }
    let start = Instant::now();
    let (mut sequenced, mut dups, mut refused) = (0u64, 0u64, 0u64);
    for (c, cmd) in cmds {
        match apply(&mut states[c], cmd, 0, &limits) {
            Applied::Sequenced { .. } => sequenced += 1,
            Applied::Duplicate(_) => dups += 1,
            Applied::Refused { .. } => refused += 1,
            // W6 sends no batches.
            Applied::Batch(_) => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("| workload | commands | conversations | sequenced | dedup hits | refused | seconds | commands/s |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| W6 sequencer | {total} | {convs} | {sequenced} | {dups} | {refused} | {secs:.3} | {:.0} |",
        total as f64 / secs
    );
}
