//! `seqline-chat`: a tiny interactive client on the SDK.
//!
//! ```text
//! seqline-chat --url ws://127.0.0.1:7600/v1/ws --token T [--conv C]
//! /dm USER            open (create) the direct conversation with USER
//! /group TITLE USER…  create a group and switch to it
//! /to CONV            switch to a conversation
//! /history [N]        print the last N messages of the current conversation
//! /quit               leave
//! anything else       send it to the current conversation
//! ```

use anyhow::{bail, Context, Result};
use clap::Parser;
use seqline_client::{Client, ClientConfig, Event, HttpApi, SendState};
use seqline_core::ids::{ConversationId, UserId};
use seqline_core::model::{Message, MessageKind};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
#[command(about = "Chat on a seqline server from the terminal")]
struct Args {
    /// WebSocket URL of the server.
    #[arg(long, default_value = "ws://127.0.0.1:7600/v1/ws")]
    url: String,
    /// Device token (see `seqline token`).
    #[arg(long, env = "SEQLINE_TOKEN")]
    token: String,
    /// Conversation to start in.
    #[arg(long)]
    conv: Option<String>,
}

fn show(m: &Message) -> String {
    match m.kind {
        MessageKind::Text => format!("[{} #{}] {}: {}", m.conv, m.conv_seq, m.sender, m.body),
        kind => {
            let who: Vec<&str> = m.members.iter().map(UserId::as_str).collect();
            format!(
                "[{} #{}] * {:?} by {}: {}",
                m.conv,
                m.conv_seq,
                kind,
                m.sender,
                who.join(", ")
            )
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let http = HttpApi::new(&HttpApi::base_of_ws_url(&args.url)?, args.token.clone())?;
    let (client, mut events) = Client::connect(ClientConfig::new(args.url.clone(), args.token.clone()))
        .await
        .context("cannot connect")?;
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Message { entry, .. } => println!("{}", show(&entry.message)),
                Event::Reset {
                    data_replaced: true, ..
                } => println!("* the server's data was replaced (wiped or restored): starting over"),
                Event::Reset { head, .. } => println!("* the server reset this device to {head}"),
                Event::Disconnected { reason } => eprintln!("* disconnected: {reason}"),
                Event::Failed { id, reason, .. } => eprintln!("* message {id} failed: {reason}"),
                _ => {}
            }
        }
    });
    let mut current = args.conv.map(ConversationId::parse).transpose()?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Err(e) = command(line, &client, &http, &mut current).await {
            eprintln!("! {e:#}");
        }
        if line == "/quit" {
            break;
        }
    }
    // Give pending messages a moment to be acknowledged before leaving.
    if !client.flush(std::time::Duration::from_secs(5)).await {
        eprintln!("* leaving with unacknowledged messages");
    }
    client.close().await;
    Ok(())
}

async fn command(line: &str, client: &Client, http: &HttpApi, current: &mut Option<ConversationId>) -> Result<()> {
    let mut words = line.split_whitespace();
    match words.next().unwrap_or_default() {
        "/quit" => {}
        "/dm" => {
            let peer = UserId::parse(words.next().context("/dm USER")?)?;
            let created = http.create_direct(&peer).await?;
            println!("* now in {}", created.conv);
            *current = Some(created.conv);
        }
        "/group" => {
            let title = words.next().context("/group TITLE USER...")?;
            let members = words.map(UserId::parse).collect::<Result<Vec<_>, _>>()?;
            let created = http.create_group(title, &members).await?;
            println!("* now in {}", created.conv);
            *current = Some(created.conv);
        }
        "/to" => {
            *current = Some(ConversationId::parse(words.next().context("/to CONV")?)?);
        }
        "/history" => {
            let n = words.next().map(str::parse).transpose()?.unwrap_or(20);
            let conv = current.as_ref().context("no conversation: /dm, /group or /to first")?;
            for m in client.history(conv, None, n).await? {
                println!("{}", show(&m));
            }
        }
        w if w.starts_with('/') => bail!("unknown command {w}"),
        _ => {
            let conv = current.clone().context("no conversation: /dm, /group or /to first")?;
            let handle = client.send(conv, line).await?;
            tokio::spawn(async move {
                if let SendState::Failed(reason) = handle.outcome().await {
                    eprintln!("* not sent: {reason}");
                }
            });
        }
    }
    Ok(())
}
