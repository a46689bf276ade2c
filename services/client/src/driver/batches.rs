//! Batches waiting for the answers of all their commands. A batch is sent
//! once the connection has synced and again after every reconnect (same
//! ids, so the server answers a sequenced one with its original numbers),
//! until every command is answered or its deadline passes.

use super::Driver;
use crate::batch::Batch;
use crate::error::{ClientError, Result};
use seqline_core::ids::{ClientMsgId, ConversationId};
use seqline_core::model::RefusalCode;
use seqline_core::protocol::ClientFrame;
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::oneshot;

/// A caller's batch and where its answer goes.
#[derive(Debug)]
pub(crate) struct BatchCall {
    pub batch: Batch,
    pub reply: oneshot::Sender<Result<Vec<u64>>>,
    pub deadline: Instant,
}

#[derive(Debug)]
struct Wait {
    call: BatchCall,
    prev: Option<ClientMsgId>,
    sent: bool,
    answers: HashMap<ClientMsgId, std::result::Result<u64, (RefusalCode, String)>>,
}

/// A batch whose every command was answered.
pub(crate) struct Done {
    /// The conversation.
    pub conv: ConversationId,
    /// The batch's last send, when the sequencer processed the batch (the
    /// device's next send names it as `prev`).
    pub settled: Option<ClientMsgId>,
}

#[derive(Debug, Default)]
pub(crate) struct Batches {
    waiting: Vec<Wait>,
}

impl Batches {
    /// Whether a batch of `conv` waits.
    pub fn waits_in(&self, conv: &ConversationId) -> bool {
        self.waiting.iter().any(|w| w.call.batch.conv() == conv)
    }

    /// Takes a batch whose first send follows `prev`.
    pub fn add(&mut self, call: BatchCall, prev: Option<ClientMsgId>) {
        self.waiting.push(Wait {
            call,
            prev,
            sent: false,
            answers: HashMap::new(),
        });
    }

    /// The frames of the batches not on this connection yet.
    pub fn take_unsent(&mut self) -> Vec<ClientFrame> {
        let mut out = Vec::new();
        for w in self.waiting.iter_mut().filter(|w| !w.sent) {
            w.sent = true;
            out.push(ClientFrame::Batch {
                conv: w.call.batch.conv().clone(),
                prev: w.prev,
                commands: w.call.batch.commands().to_vec(),
            });
        }
        out
    }

    /// The connection dropped: send everything again on the next one.
    pub fn disconnected(&mut self) {
        for w in &mut self.waiting {
            w.sent = false;
        }
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.iter().map(|w| w.call.deadline).min()
    }

    /// Answers the batches past their deadline with a timeout (their
    /// outcome is unknown: resend the same batch to learn it).
    pub fn expire(&mut self, t: Instant) {
        let (late, keep) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.call.deadline <= t);
        self.waiting = keep;
        for w in late {
            let _ = w.call.reply.send(Err(ClientError::Timeout));
        }
    }

    /// Fails every batch with `err`.
    pub fn fail_all(&mut self, err: impl Fn() -> ClientError) {
        for w in self.waiting.drain(..) {
            let _ = w.call.reply.send(Err(err()));
        }
    }

    /// An `ack` or `nack` for `id`; false when no batch holds it.
    pub fn answer(
        &mut self,
        id: ClientMsgId,
        answer: std::result::Result<u64, (RefusalCode, String)>,
    ) -> Option<Option<Done>> {
        let i = self.waiting.iter().position(|w| w.call.batch.ids().contains(&id))?;
        let w = &mut self.waiting[i];
        w.answers.insert(id, answer);
        let ids = w.call.batch.ids();
        if w.answers.len() < ids.len() {
            return Some(None);
        }
        let mut w = self.waiting.remove(i);
        let answers: Vec<_> = ids.iter().map(|id| w.answers.remove(id)).collect();
        let conv = w.call.batch.conv().clone();
        let last = w.call.batch.last_send();
        let refused = answers.iter().flatten().find_map(|a| a.as_ref().err().cloned());
        let (result, settled) = match refused {
            None => (Ok(answers.into_iter().flatten().flatten().collect()), last),
            Some((code, message)) => {
                // The message names the failing command by its id.
                let index = ids.iter().position(|id| message.contains(&id.to_string())).unwrap_or(0);
                let settled = if code == RefusalCode::OutOfOrder { None } else { last };
                let err = ClientError::BatchRefused {
                    index,
                    id: ids[index],
                    code,
                    message,
                };
                (Err(err), settled)
            }
        };
        let _ = w.call.reply.send(result);
        Some(Some(Done { conv, settled }))
    }

    /// The gateway refused a batch (an `error` whose message starts with
    /// `batch <first id>:`, or `message <first id>` when the log did not
    /// take it); false when it is none of these batches.
    pub fn refused(&mut self, message: &str, code: seqline_core::protocol::ErrorCode) -> bool {
        let Some(first) = message
            .strip_prefix("batch ")
            .or_else(|| message.strip_prefix("message "))
            .and_then(|m| m.split([':', ' ']).next())
            .and_then(|id| ClientMsgId::parse(id).ok())
        else {
            return false;
        };
        let Some(i) = self
            .waiting
            .iter()
            .position(|w| w.call.batch.ids().first() == Some(&first))
        else {
            return false;
        };
        let w = self.waiting.remove(i);
        let _ = w.call.reply.send(Err(ClientError::Server {
            code,
            message: message.to_string(),
        }));
        true
    }
}

impl Driver {
    /// An answer for a command of a batch; false when no batch holds `id`.
    /// A batch the sequencer processed moves its conversation's chain.
    pub(super) fn batch_answer(&mut self, id: ClientMsgId, answer: Result<u64, (RefusalCode, String)>) -> bool {
        match self.batches.answer(id, answer) {
            None => false,
            Some(None) => true,
            Some(Some(done)) => {
                if let Some(last) = done.settled {
                    self.outbox.settled_outside(&done.conv, last);
                }
                true
            }
        }
    }
}
