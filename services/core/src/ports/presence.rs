use crate::error::Result;
use crate::ids::{ConversationId, DeviceId, GatewayId, UserId};
use async_trait::async_trait;
use std::collections::HashMap;
use std::time::Duration;

/// Where a device is connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceLocation {
    /// The device.
    pub device: DeviceId,
    /// The gateway holding its connection.
    pub gateway: GatewayId,
}

/// Which gateway holds which device, with a time to live refreshed by
/// heartbeats so a dead gateway's entries disappear.
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Records (or refreshes) that `device` of `user` is on `gateway`.
    async fn register(&self, user: &UserId, device: &DeviceId, gateway: &GatewayId, ttl: Duration) -> Result<()>;

    /// Removes the entry if it still points at `gateway`.
    async fn unregister(&self, user: &UserId, device: &DeviceId, gateway: &GatewayId) -> Result<()>;

    /// Live locations of the devices of each user (users with none are absent).
    async fn lookup(&self, users: &[UserId]) -> Result<HashMap<UserId, Vec<DeviceLocation>>>;

    /// Records (or refreshes) that `gateway` has connections following the
    /// read-diffusion conversation `conv`, for `ttl`.
    async fn follow(&self, conv: &ConversationId, gateway: &GatewayId, ttl: Duration) -> Result<()>;

    /// Removes `gateway` from the followers of `conv`.
    async fn unfollow(&self, conv: &ConversationId, gateway: &GatewayId) -> Result<()>;

    /// The gateways with live follows of each conversation (conversations
    /// with none are absent).
    async fn followers(&self, convs: &[ConversationId]) -> Result<HashMap<ConversationId, Vec<GatewayId>>>;
}
