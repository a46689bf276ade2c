//! The `Presence` contract.

use crate::fixtures::{conversation, device, gateway, user};
use crate::{ok, wait, Harness};
use seqline_core::ids::{ConversationId, GatewayId};
use seqline_core::ports::{DeviceLocation, Presence};
use std::collections::HashMap;
use std::time::Duration;

/// The presence's harness.
pub type PresenceHarness = dyn Harness<dyn Presence>;

const LONG: Duration = Duration::from_secs(60);

/// Runs every presence check in turn.
pub async fn presence_contract(h: &PresenceHarness) {
    register_lookup_unregister(h).await;
    ttl_expiry(h).await;
    gateway_mismatch_unregister(h).await;
    follow_followers_unfollow(h).await;
    follow_ttl_expiry(h).await;
    followers_of_many_conversations(h).await;
}

/// Generates one test per presence check; `$harness` builds the harness.
#[macro_export]
macro_rules! presence_tests {
    ($harness:expr) => {
        $crate::__contract_tests!(presence, $harness; register_lookup_unregister, ttl_expiry,
            gateway_mismatch_unregister, follow_followers_unfollow, follow_ttl_expiry,
            followers_of_many_conversations);
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

/// The followers of `convs`, each list sorted.
async fn followers_sorted(
    presence: &std::sync::Arc<dyn Presence>,
    convs: &[ConversationId],
) -> HashMap<ConversationId, Vec<GatewayId>> {
    let mut found = ok(presence.followers(convs).await, "followers");
    for gateways in found.values_mut() {
        gateways.sort();
    }
    found
}

/// A live follow is listed; following again refreshes it without listing
/// the gateway twice; unfollowing removes only that gateway.
pub async fn follow_followers_unfollow(h: &PresenceHarness) {
    let presence = h.open().await;
    let (conv, other, gw1, gw2) = (conversation(), conversation(), gateway("gw"), gateway("gw"));
    assert!(followers_sorted(&presence, std::slice::from_ref(&conv))
        .await
        .is_empty());
    ok(presence.follow(&conv, &gw1, LONG).await, "follow 1");
    ok(presence.follow(&conv, &gw2, LONG).await, "follow 2");
    ok(presence.follow(&conv, &gw1, LONG).await, "refresh 1");
    let mut both = vec![gw1.clone(), gw2.clone()];
    both.sort();
    let found = followers_sorted(&presence, std::slice::from_ref(&conv)).await;
    assert_eq!(found.get(&conv), Some(&both));
    assert_eq!(found.len(), 1);
    // Unfollowing a conversation the gateway never followed changes nothing.
    ok(presence.unfollow(&other, &gw1).await, "unfollow other");
    assert_eq!(
        followers_sorted(&presence, std::slice::from_ref(&conv))
            .await
            .get(&conv),
        Some(&both)
    );
    ok(presence.unfollow(&conv, &gw1).await, "unfollow 1");
    assert_eq!(
        followers_sorted(&presence, std::slice::from_ref(&conv))
            .await
            .get(&conv),
        Some(&vec![gw2.clone()]),
        "only gateway 1 left"
    );
    ok(presence.unfollow(&conv, &gw1).await, "unfollow 1 again");
    ok(presence.unfollow(&conv, &gw2).await, "unfollow 2");
    assert!(
        followers_sorted(&presence, std::slice::from_ref(&conv))
            .await
            .is_empty(),
        "a conversation without followers is absent"
    );
}

/// A follow not refreshed within its TTL disappears; a refreshed one stays.
pub async fn follow_ttl_expiry(h: &PresenceHarness) {
    let presence = h.open().await;
    let (conv, short, long) = (conversation(), gateway("short"), gateway("long"));
    ok(
        presence.follow(&conv, &short, Duration::from_millis(300)).await,
        "follow short",
    );
    ok(presence.follow(&conv, &long, LONG).await, "follow long");
    assert_eq!(
        followers_sorted(&presence, std::slice::from_ref(&conv))
            .await
            .get(&conv)
            .map(Vec::len),
        Some(2)
    );
    wait::until(Duration::from_secs(10), "the short follow to expire", || {
        let (presence, conv) = (&presence, &conv);
        async move {
            let found = followers_sorted(presence, std::slice::from_ref(conv)).await;
            (found.get(conv).map(Vec::len) == Some(1)).then_some(())
        }
    })
    .await;
    assert_eq!(
        followers_sorted(&presence, std::slice::from_ref(&conv))
            .await
            .get(&conv),
        Some(&vec![long.clone()])
    );
    // An expired follow renewed is live again.
    ok(presence.follow(&conv, &short, LONG).await, "follow again");
    let mut both = vec![short, long];
    both.sort();
    assert_eq!(
        followers_sorted(&presence, std::slice::from_ref(&conv))
            .await
            .get(&conv),
        Some(&both)
    );
    // Expiry alone, with no other follower: the conversation is absent.
    let lone = conversation();
    ok(
        presence.follow(&lone, &gateway("gw"), Duration::from_millis(200)).await,
        "follow lone",
    );
    wait::until(Duration::from_secs(10), "the lone follow to expire", || {
        let (presence, lone) = (&presence, &lone);
        async move {
            let found = followers_sorted(presence, std::slice::from_ref(lone)).await;
            found.is_empty().then_some(())
        }
    })
    .await;
}

/// One call answers for many conversations; those without followers are
/// absent, and duplicates in the request do no harm.
pub async fn followers_of_many_conversations(h: &PresenceHarness) {
    let presence = h.open().await;
    let convs: Vec<ConversationId> = (0..250).map(|_| conversation()).collect();
    let gateways: Vec<GatewayId> = (0..3).map(|_| gateway("gw")).collect();
    let mut want: HashMap<ConversationId, Vec<GatewayId>> = HashMap::new();
    for (i, conv) in convs.iter().enumerate() {
        // Every third conversation has no follower; the others one to three.
        let n = i % 3;
        for gw in &gateways[..n] {
            ok(presence.follow(conv, gw, LONG).await, "follow");
        }
        if n > 0 {
            let mut followers = gateways[..n].to_vec();
            followers.sort();
            want.insert(conv.clone(), followers);
        }
    }
    let mut asked = convs.clone();
    asked.push(convs[1].clone());
    assert_eq!(followers_sorted(&presence, &asked).await, want);
    assert!(followers_sorted(&presence, &[]).await.is_empty());
    assert!(followers_sorted(&presence, &[conversation()]).await.is_empty());
}
