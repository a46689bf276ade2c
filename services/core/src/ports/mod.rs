//! The ports: what the services need from the outside world, as traits held
//! as `Arc<dyn …>`. Each has an embedded implementation and a cluster one.

mod log;
mod presence;
mod store;

pub use log::{Consumed, Log, LogConsumer, Polled};
pub use presence::{DeviceLocation, Presence};
pub use store::{
    ConversationBatch, ConversationState, MemberChange, MemberWindow, Store, TimelineBatch, TimelineState,
    MAX_MEMBER_WINDOWS,
};
