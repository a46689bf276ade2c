//! [`MemoryPresence`]: which gateway holds which device, in process memory.

use crate::error::lock;
use async_trait::async_trait;
use seqline_core::ids::{ConversationId, DeviceId, GatewayId, UserId};
use seqline_core::ports::{DeviceLocation, Presence};
use seqline_core::Result;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Sweep the whole map once per this many registrations.
const SWEEP_EVERY: u64 = 1024;

#[derive(Default)]
struct Devices {
    by_user: HashMap<UserId, HashMap<DeviceId, (GatewayId, Instant)>>,
    /// Registrations left before the next full sweep.
    until_sweep: u64,
}

impl Devices {
    fn sweep(&mut self, now: Instant) {
        self.by_user.retain(|_, devices| {
            devices.retain(|_, (_, expires)| *expires > now);
            !devices.is_empty()
        });
    }
}

/// Gateways following each read-diffusion conversation, with expiry.
#[derive(Default)]
struct Follows {
    by_conv: HashMap<ConversationId, HashMap<GatewayId, Instant>>,
    until_sweep: u64,
}

/// The in-process [`Presence`]: entries expire after their TTL (invisible
/// at once, swept periodically); the clock is tokio's, so tests may pause it.
#[derive(Default)]
pub struct MemoryPresence {
    devices: Mutex<Devices>,
    follows: Mutex<Follows>,
}

impl MemoryPresence {
    /// An empty presence map.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn register(&self, user: &UserId, device: &DeviceId, gateway: &GatewayId, ttl: Duration) -> Result<()> {
        let now = Instant::now();
        let mut devices = lock(&self.devices);
        if devices.until_sweep == 0 {
            devices.until_sweep = SWEEP_EVERY;
            devices.sweep(now);
        }
        devices.until_sweep -= 1;
        devices
            .by_user
            .entry(user.clone())
            .or_default()
            .insert(device.clone(), (gateway.clone(), now + ttl));
        Ok(())
    }

    async fn unregister(&self, user: &UserId, device: &DeviceId, gateway: &GatewayId) -> Result<()> {
        let mut devices = lock(&self.devices);
        if let Some(of_user) = devices.by_user.get_mut(user) {
            if of_user.get(device).is_some_and(|(g, _)| g == gateway) {
                of_user.remove(device);
            }
            if of_user.is_empty() {
                devices.by_user.remove(user);
            }
        }
        Ok(())
    }

    async fn lookup(&self, users: &[UserId]) -> Result<HashMap<UserId, Vec<DeviceLocation>>> {
        let now = Instant::now();
        let devices = lock(&self.devices);
        let mut out = HashMap::new();
        for user in users {
            let Some(of_user) = devices.by_user.get(user) else {
                continue;
            };
            let live: Vec<DeviceLocation> = of_user
                .iter()
                .filter(|(_, (_, expires))| *expires > now)
                .map(|(device, (gateway, _))| DeviceLocation {
                    device: device.clone(),
                    gateway: gateway.clone(),
                })
                .collect();
            if !live.is_empty() {
                out.insert(user.clone(), live);
            }
        }
        Ok(out)
    }

    async fn follow(&self, conv: &ConversationId, gateway: &GatewayId, ttl: Duration) -> Result<()> {
        let now = Instant::now();
        let mut follows = lock(&self.follows);
        if follows.until_sweep == 0 {
            follows.until_sweep = SWEEP_EVERY;
            follows.by_conv.retain(|_, gateways| {
                gateways.retain(|_, expires| *expires > now);
                !gateways.is_empty()
            });
        }
        follows.until_sweep -= 1;
        follows
            .by_conv
            .entry(conv.clone())
            .or_default()
            .insert(gateway.clone(), now + ttl);
        Ok(())
    }

    async fn unfollow(&self, conv: &ConversationId, gateway: &GatewayId) -> Result<()> {
        let mut follows = lock(&self.follows);
        if let Some(gateways) = follows.by_conv.get_mut(conv) {
            gateways.remove(gateway);
            if gateways.is_empty() {
                follows.by_conv.remove(conv);
            }
        }
        Ok(())
    }

    async fn followers(&self, convs: &[ConversationId]) -> Result<HashMap<ConversationId, Vec<GatewayId>>> {
        let now = Instant::now();
        let follows = lock(&self.follows);
        let mut out = HashMap::new();
        for conv in convs {
            let live: Vec<GatewayId> = follows
                .by_conv
                .get(conv)
                .into_iter()
                .flatten()
                .filter(|(_, expires)| **expires > now)
                .map(|(g, _)| g.clone())
                .collect();
            if !live.is_empty() {
                out.insert(conv.clone(), live);
            }
        }
        Ok(out)
    }
}
