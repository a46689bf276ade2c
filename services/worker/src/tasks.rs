//! Named tasks that stand or fall together: a role's loops run side by
//! side, and the first one to fail stops the others, since a role missing
//! one of its loops is broken in a way nobody would notice.

use seqline_core::{Error, Result};
use std::collections::HashMap;
use std::future::Future;
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// Which task failed, and why.
#[derive(Debug)]
pub struct TaskFailed {
    /// The task's name.
    pub task: &'static str,
    /// Its error (a panic is `Unavailable`).
    pub error: Error,
}

impl std::fmt::Display for TaskFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.task, self.error)
    }
}

impl std::error::Error for TaskFailed {}

impl From<TaskFailed> for Error {
    fn from(failed: TaskFailed) -> Self {
        failed.error
    }
}

/// Named tasks sharing one stop token. A task that returns an error (or
/// panics) cancels the token, which the others watch; one that returns
/// `Ok` just ends. Dropping `Tasks` aborts whatever still runs.
pub struct Tasks {
    stop: CancellationToken,
    set: JoinSet<Result<()>>,
    names: HashMap<Id, &'static str>,
}

impl Tasks {
    /// Tasks stopped when `parent` is cancelled, or when one of them fails.
    pub fn new(parent: &CancellationToken) -> Self {
        Self {
            stop: parent.child_token(),
            set: JoinSet::new(),
            names: HashMap::new(),
        }
    }

    /// The token the tasks watch to stop.
    pub fn stop(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `task` as `name`.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = Result<()>> + Send + 'static,
    {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// Waits for every task; the first failure, once all have stopped.
    pub async fn join(mut self) -> Result<(), TaskFailed> {
        let mut first: Option<TaskFailed> = None;
        while let Some(done) = self.set.join_next_with_id().await {
            let (task, error) = match done {
                Ok((_, Ok(()))) => continue,
                Ok((id, Err(e))) => (self.names.get(&id).copied().unwrap_or("?"), e),
                Err(e) => {
                    let task = self.names.get(&e.id()).copied().unwrap_or("?");
                    (task, Error::Unavailable(format!("{task} task panicked: {e}")))
                }
            };
            if first.is_none() {
                tracing::warn!(task, error = %error, "task failed; stopping the others");
                self.stop.cancel();
                first = Some(TaskFailed { task, error });
            } else {
                tracing::debug!(task, error = %error, "task failed while stopping");
            }
        }
        match first {
            Some(failed) => Err(failed),
            None => Ok(()),
        }
    }
}
