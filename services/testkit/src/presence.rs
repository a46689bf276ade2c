//! The `Presence` contract.

use crate::fixtures::{device, gateway, user};
use crate::{ok, wait, Harness};
use seqline_core::ports::{DeviceLocation, Presence};
use std::time::Duration;

/// The presence's harness.
pub type PresenceHarness = dyn Harness<dyn Presence>;

const LONG: Duration = Duration::from_secs(60);

/// Runs every presence check in turn.
pub async fn presence_contract(h: &PresenceHarness) {
    register_lookup_unregister(h).await;
    ttl_expiry(h).await;
    gateway_mismatch_unregister(h).await;
}

/// Generates one test per presence check; `$harness` builds the harness.
#[macro_export]
macro_rules! presence_tests {
    ($harness:expr) => {
        $crate::__contract_tests!(presence, $harness; register_lookup_unregister, ttl_expiry,
            gateway_mismatch_unregister);
    };
}

/// Registered devices are found per user; unregistered ones are not.
pub async fn register_lookup_unregister(h: &PresenceHarness) {
    let presence = h.open().await;
    let (alice, bob, nobody, gw1, gw2) = (user("alice"), user("bob"), user("nobody"), gateway("gw"), gateway("gw"));
    ok(
        presence.register(&alice, &device("phone"), &gw1, LONG).await,
        "register",
    );
    ok(
        presence.register(&alice, &device("laptop"), &gw2, LONG).await,
        "register",
    );
    ok(presence.register(&bob, &device("phone"), &gw2, LONG).await, "register");
    let found = ok(
        presence.lookup(&[alice.clone(), bob.clone(), nobody.clone()]).await,
        "lookup",
    );
    let mut of_alice = found.get(&alice).cloned().unwrap_or_default();
    of_alice.sort_by(|a, b| a.device.cmp(&b.device));
    assert_eq!(
        of_alice,
        vec![
            DeviceLocation {
                device: device("laptop"),
                gateway: gw2.clone()
            },
            DeviceLocation {
                device: device("phone"),
                gateway: gw1.clone()
            },
        ]
    );
    assert_eq!(found.get(&bob).map(Vec::len), Some(1));
    assert!(!found.contains_key(&nobody), "users without devices are absent");
    ok(presence.unregister(&alice, &device("phone"), &gw1).await, "unregister");
    let found = ok(presence.lookup(std::slice::from_ref(&alice)).await, "lookup");
    assert_eq!(
        found.get(&alice).cloned(),
        Some(vec![DeviceLocation {
            device: device("laptop"),
            gateway: gw2.clone()
        }])
    );
    ok(presence.unregister(&alice, &device("laptop"), &gw2).await, "unregister");
    assert!(ok(presence.lookup(std::slice::from_ref(&alice)).await, "lookup").is_empty());
}

/// An entry not refreshed within its TTL disappears.
pub async fn ttl_expiry(h: &PresenceHarness) {
    let presence = h.open().await;
    let (alice, gw) = (user("alice"), gateway("gw"));
    ok(
        presence
            .register(&alice, &device("short"), &gw, Duration::from_millis(300))
            .await,
        "register",
    );
    ok(presence.register(&alice, &device("long"), &gw, LONG).await, "register");
    assert_eq!(
        ok(presence.lookup(std::slice::from_ref(&alice)).await, "lookup")
            .get(&alice)
            .map(Vec::len),
        Some(2)
    );
    wait::until(Duration::from_secs(10), "the short entry to expire", || {
        let (presence, alice) = (&presence, &alice);
        async move {
            let found = ok(presence.lookup(std::slice::from_ref(alice)).await, "lookup");
            let devices = found.get(alice).cloned().unwrap_or_default();
            (devices.len() == 1).then_some(())
        }
    })
    .await;
    let found = ok(presence.lookup(std::slice::from_ref(&alice)).await, "lookup");
    assert_eq!(
        found.get(&alice).cloned(),
        Some(vec![DeviceLocation {
            device: device("long"),
            gateway: gw
        }])
    );
}

/// Unregistering through a gateway that no longer holds the device does
/// nothing (the device moved).
pub async fn gateway_mismatch_unregister(h: &PresenceHarness) {
    let presence = h.open().await;
    let (alice, gw1, gw2) = (user("alice"), gateway("gw"), gateway("gw"));
    ok(
        presence.register(&alice, &device("phone"), &gw1, LONG).await,
        "register on 1",
    );
    ok(
        presence.register(&alice, &device("phone"), &gw2, LONG).await,
        "moved to 2",
    );
    ok(
        presence.unregister(&alice, &device("phone"), &gw1).await,
        "late unregister from 1",
    );
    let found = ok(presence.lookup(std::slice::from_ref(&alice)).await, "lookup");
    assert_eq!(
        found.get(&alice).cloned(),
        Some(vec![DeviceLocation {
            device: device("phone"),
            gateway: gw2.clone()
        }])
    );
    ok(
        presence.unregister(&alice, &device("phone"), &gw2).await,
        "unregister from 2",
    );
    assert!(ok(presence.lookup(std::slice::from_ref(&alice)).await, "lookup").is_empty());
}
