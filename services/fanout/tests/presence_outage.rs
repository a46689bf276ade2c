//! Fanout rides out a Redis outage: while presence is unavailable it drops
//! pushes (devices catch up by sync) instead of ending, keeps consuming, and
//! routes again once Redis is back. Real `redis-server`, real embedded log.

#![allow(clippy::unwrap_used)]

mod common;

use common::{one_partition_log, user_event};

use seqline_core::ids::*;
use seqline_core::ports::{Log, LogConsumer, Polled, Presence};
use seqline_core::records::{GatewayRecord, LogRecord, Topic};

use seqline_redis::{RedisOptions, RedisPresence};
use seqline_testkit::servers;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Reads pushes until one carries the entry `user_seq`; returns every
/// user_seq pushed until then.
async fn pushed_until(consumer: &mut dyn LogConsumer, user_seq: u64) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !seen.contains(&user_seq) {
        assert!(
            Instant::now() < deadline,
            "entry {user_seq} was never pushed; pushed: {seen:?}"
        );
        let Ok(polled) = tokio::time::timeout(Duration::from_secs(1), consumer.poll(100)).await else {
            continue;
        };
        if let Polled::Records { records, .. } = polled.unwrap() {
            for r in records {
                if let Ok(LogRecord::Gateway(GatewayRecord::Package(p))) = r.record {
                    seen.extend(p.entries.iter().map(|e| e.user_seq.0));
                }
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_drops_pushes_while_redis_is_down_and_routes_again_when_it_is_back() {
    let (dir, log) = one_partition_log("fanout-redis");
    let mut redis = servers::redis();
    let presence = RedisPresence::connect(RedisOptions::new(format!("redis://{}", redis.addr)))
        .await
        .unwrap();
    let (user, device, gw) = (
        UserId::parse("alice").unwrap(),
        DeviceId::parse("phone").unwrap(),
        GatewayId::parse("gw-outage").unwrap(),
    );
    let ttl = Duration::from_secs(60);
    presence.register(&user, &device, &gw, ttl).await.unwrap();

    let stop = CancellationToken::new();
    let ports = seqline_fanout::Ports {
        log: Arc::new(log.clone()),
        presence: Arc::new(presence.clone()),
    };
    let task = tokio::spawn(seqline_fanout::run(Default::default(), ports, stop.clone()));
    let mut pushes = log.subscribe("test-gw", &Topic::Gateway(gw.clone())).await.unwrap();

    log.append(&Topic::UserEvents, vec![user_event(&user, 1)])
        .await
        .unwrap();
    assert_eq!(pushed_until(pushes.as_mut(), 1).await, vec![1]);

    // Redis goes away: the next event cannot be routed.
    let port: u16 = redis.addr.rsplit(':').next().unwrap().parse().unwrap();
    redis.kill();
    log.append(&Topic::UserEvents, vec![user_event(&user, 2)])
        .await
        .unwrap();
    // Longer than every retry of the lookup (1.5 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!task.is_finished(), "fanout ended on a Redis outage: {:?}", task.await);

    // Back (empty, as after a restart without persistence): the gateway
    // registers again, and the next event is routed.
    let _redis = servers::redis_on(port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while presence.register(&user, &device, &gw, ttl).await.is_err() {
        assert!(Instant::now() < deadline, "the presence connection did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    log.append(&Topic::UserEvents, vec![user_event(&user, 3)])
        .await
        .unwrap();
    let seen = pushed_until(pushes.as_mut(), 3).await;
    assert_eq!(seen.last(), Some(&3), "{seen:?}");
    assert!(!seen.contains(&1), "nothing is pushed twice: {seen:?}");

    stop.cancel();
    task.await.unwrap().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
