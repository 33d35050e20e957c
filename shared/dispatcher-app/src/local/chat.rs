//! The in-process queue of chat commands: each runs on its own task once its request was
//! answered, as the control function runs them on AWS after invoking itself.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::SourceError;
use crate::control::{Control, chat};
use crate::ports::{ChatQueue, ChatReply, ChatRequest};

/// Runs chat commands on tasks of the current runtime.
#[derive(Clone)]
pub struct LocalChatQueue {
    control: Control,
    reply: Arc<dyn ChatReply>,
    now: fn() -> i64,
    done: Arc<watch::Sender<u64>>,
}

impl LocalChatQueue {
    /// A queue running commands through `control`, answering through `reply`.
    pub fn new(control: Control, reply: Arc<dyn ChatReply>, now: fn() -> i64) -> Self {
        Self {
            control,
            reply,
            now,
            done: Arc::new(watch::channel(0).0),
        }
    }

    /// How many commands have been answered, to wait on.
    pub fn answered(&self) -> watch::Receiver<u64> {
        self.done.subscribe()
    }
}

#[async_trait]
impl ChatQueue for LocalChatQueue {
    async fn submit(&self, request: &ChatRequest) -> Result<(), SourceError> {
        let queue = self.clone();
        let request = request.clone();
        tokio::spawn(async move {
            chat::answer(
                &queue.control,
                queue.reply.as_ref(),
                &request,
                (queue.now)(),
            )
            .await;
            queue.done.send_modify(|n| *n += 1);
        });
        Ok(())
    }
}
