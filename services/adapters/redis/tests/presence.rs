#![allow(clippy::unwrap_used)]
//! `RedisPresence` against a real `redis-server`: the testkit contract, plus
//! batching, expiry of a dead gateway's entries, and a server restart.

mod support;

use redis::AsyncCommands;
use seqline_core::ids::{DeviceId, GatewayId, UserId};
use seqline_core::ports::Presence;
use seqline_core::Error;
use seqline_redis::presence::LOOKUP_CHUNK;
use seqline_redis::RedisPresence;
use seqline_testkit::wait;
use std::time::{Duration, Instant};
use support::{options, Backend, LatencyProxy, RedisServer};

mod contract {
    seqline_testkit::presence_tests!(crate::support::PresenceFixture::new());
}

const LONG: Duration = Duration::from_secs(60);

fn id<T>(r: seqline_core::Result<T>) -> T {
    r.unwrap()
}

fn users(n: usize) -> Vec<UserId> {
    let run = support::fresh_prefix();
    (0..n).map(|i| id(UserId::parse(format!("{run}-u{i}")))).collect()
}

/// 1,000 users are looked up in one round trip: behind a proxy that holds
/// every chunk 50 ms each way, one round trip costs ~100 ms and 1,000 would
/// cost 100 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_of_1000_users_is_one_round_trip() {
    const { assert!(1000 <= LOOKUP_CHUNK) };
    let backend = Backend::Own(RedisServer::start());
    let Backend::Own(server) = &backend else { unreachable!() };
    let opts = options(&backend.url());
    let direct = RedisPresence::connect(opts.clone()).await.unwrap();
    let all = users(1000);
    let gw = id(GatewayId::parse("gw-a"));
    for (i, user) in all.iter().enumerate() {
        let device = id(DeviceId::parse(format!("d{}", i % 3)));
        direct.register(user, &device, &gw, LONG).await.unwrap();
    }

    let delay = Duration::from_millis(50);
    let proxy = LatencyProxy::start(server.port(), delay).await;
    let mut slow_opts = opts.clone();
    slow_opts.url = proxy.url();
    slow_opts.response_timeout = Duration::from_secs(10);
    let slow = RedisPresence::connect(slow_opts).await.unwrap();

    let started = Instant::now();
    let found = slow.lookup(&all).await.unwrap();
    let took = started.elapsed();
    assert_eq!(found.len(), 1000, "every user is found");
    assert!(found.values().all(|d| d.len() == 1 && d[0].gateway == gw));
    assert!(
        took < delay * 20,
        "a lookup of 1,000 users took {took:?} behind a {delay:?} proxy: more than one round trip"
    );
}

/// A gateway that stops heartbeating loses its entries when their TTL runs
/// out, with no unregister; a refreshed entry on a live gateway stays, and a
/// user left with nothing has no key at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_gateway_entries_expire_without_unregister() {
    let backend = Backend::from_env();
    let opts = options(&backend.url());
    let presence = RedisPresence::connect(opts.clone()).await.unwrap();
    let (dead, live) = (id(GatewayId::parse("gw-dead")), id(GatewayId::parse("gw-live")));
    let [alice, bob]: [UserId; 2] = users(2).try_into().unwrap();
    let (phone, laptop) = (id(DeviceId::parse("phone")), id(DeviceId::parse("laptop")));
    let short = Duration::from_millis(400);
    presence.register(&alice, &phone, &dead, short).await.unwrap();
    presence.register(&alice, &laptop, &live, short).await.unwrap();
    presence.register(&bob, &phone, &dead, short).await.unwrap();

    // The live gateway heartbeats its device until the dead one's are gone.
    let both = [alice.clone(), bob.clone()];
    wait::until(Duration::from_secs(10), "the dead gateway's entries to expire", || {
        let (presence, both, laptop, live) = (&presence, &both, &laptop, &live);
        async move {
            presence
                .register(&both[0], laptop, live, Duration::from_millis(400))
                .await
                .unwrap();
            let found = presence.lookup(both).await.unwrap();
            let gone = !found.contains_key(&both[1])
                && found
                    .get(&both[0])
                    .is_some_and(|d| d.len() == 1 && &d[0].gateway == live);
            gone.then_some(())
        }
    })
    .await;

    // Bob's hash expires as a whole once its last entry has.
    let mut raw = support::raw(&backend.url()).await;
    let bob_key = format!("presence:{}:{bob}", opts.key_prefix);
    wait::until(Duration::from_secs(10), "bob's key to expire", || {
        let (mut raw, key) = (raw.clone(), &bob_key);
        async move {
            let exists: bool = raw.exists(key).await.unwrap();
            (!exists).then_some(())
        }
    })
    .await;
    // Alice's key lives as long as her latest entry; the dead gateway's
    // field was pruned by the heartbeat.
    presence
        .register(&alice, &laptop, &live, Duration::from_secs(5))
        .await
        .unwrap();
    let alice_key = format!("presence:{}:{alice}", opts.key_prefix);
    let alice_ttl: i64 = raw.pttl(&alice_key).await.unwrap();
    assert!(
        (4000..=5000).contains(&alice_ttl),
        "alice's key expires with her latest entry, pttl {alice_ttl}"
    );
    let fields: usize = raw.hlen(&alice_key).await.unwrap();
    assert_eq!(fields, 1, "the dead gateway's entry is gone from the hash");
}

/// While the server is down every call fails as unavailable (promptly); once
/// it is back on the same port the same adapter works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_a_server_restart() {
    let mut server = RedisServer::start();
    let presence = RedisPresence::connect(options(&server.url())).await.unwrap();
    let [alice]: [UserId; 1] = users(1).try_into().unwrap();
    let (phone, gw) = (id(DeviceId::parse("phone")), id(GatewayId::parse("gw-1")));
    presence.register(&alice, &phone, &gw, LONG).await.unwrap();
    assert_eq!(presence.lookup(std::slice::from_ref(&alice)).await.unwrap().len(), 1);

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let lookup = presence.lookup(std::slice::from_ref(&alice)).await;
        assert!(
            matches!(lookup, Err(Error::Unavailable(_))),
            "lookup while down: {lookup:?}"
        );
        let register = presence.register(&alice, &phone, &gw, LONG).await;
        assert!(
            matches!(register, Err(Error::Unavailable(_))),
            "register while down: {register:?}"
        );
        let unregister = presence.unregister(&alice, &phone, &gw).await;
        assert!(
            matches!(unregister, Err(Error::Unavailable(_))),
            "unregister while down: {unregister:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "failures are prompt");
    }

    server.restart();
    // The data is gone (no persistence); the gateway's next heartbeat puts it back.
    wait::until(Duration::from_secs(15), "the adapter to reconnect", || {
        let (presence, alice, phone, gw) = (&presence, &alice, &phone, &gw);
        async move { presence.register(alice, phone, gw, LONG).await.ok() }
    })
    .await;
    let found = presence.lookup(std::slice::from_ref(&alice)).await.unwrap();
    assert_eq!(found.get(&alice).map(|d| d[0].gateway.clone()), Some(gw.clone()));
    presence.unregister(&alice, &phone, &gw).await.unwrap();
    assert!(presence.lookup(std::slice::from_ref(&alice)).await.unwrap().is_empty());
}

/// Connecting to a port nobody listens on fails as unavailable, not a panic
/// or a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_nothing_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let result = RedisPresence::connect(options(&format!("redis://127.0.0.1:{port}"))).await;
    assert!(matches!(result, Err(Error::Unavailable(_))), "got {result:?}");
}

/// A zero TTL registers nothing visible; a malformed entry written behind the
/// adapter's back is skipped, not fatal to the whole lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_ttl_and_foreign_entries() {
    let backend = Backend::from_env();
    let opts = options(&backend.url());
    let presence = RedisPresence::connect(opts.clone()).await.unwrap();
    let [alice, bob]: [UserId; 2] = users(2).try_into().unwrap();
    let (phone, gw) = (id(DeviceId::parse("phone")), id(GatewayId::parse("gw-1")));
    presence.register(&alice, &phone, &gw, Duration::ZERO).await.unwrap();
    presence.register(&bob, &phone, &gw, LONG).await.unwrap();
    let mut raw = support::raw(&backend.url()).await;
    let _: () = raw
        .hset(
            format!("presence:{}:{bob}", opts.key_prefix),
            "tablet",
            "no-expiry-here",
        )
        .await
        .unwrap();
    let found = presence.lookup(&[alice.clone(), bob.clone()]).await.unwrap();
    assert!(!found.contains_key(&alice));
    assert_eq!(found.get(&bob).map(Vec::len), Some(1));
}
