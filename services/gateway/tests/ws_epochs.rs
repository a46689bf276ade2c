//! The store's epoch at the gateway: `welcome` and every page carry it; a
//! sync, history or conversation pull naming another epoch is told to
//! start over; a malformed epoch or entry id is an `invalid_field`. Nothing
//! else changes and the connection stays open.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::ports::Store;
use serde_json::json;

#[tokio::test]
async fn welcome_and_pages_carry_the_store_epoch() {
    let gw = Gw::start().await;
    let epoch = gw.store.epoch().await.unwrap().to_string();
    let (mut c, welcome) = gw.login("alice", "phone").await;
    assert_eq!(welcome["epoch"], epoch.as_str(), "{welcome}");
    let (_, again) = gw.login("alice", "laptop").await;
    assert_eq!(again["epoch"], welcome["epoch"], "one store, one epoch");
    c.send(json!({"type": "sync", "req": 1, "after": 0, "epoch": epoch}))
        .await;
    let page = c.recv().await;
    assert_eq!(
        (page["type"].as_str(), page["epoch"].as_str()),
        (Some("sync_page"), Some(epoch.as_str())),
        "{page}"
    );
}

#[tokio::test]
async fn another_epoch_is_told_to_start_over() {
    let gw = Gw::start().await;
    let epoch = gw.store.epoch().await.unwrap();
    let other = seqline_core::Epoch::from_u64(epoch.as_u64() ^ 1).to_string();
    let (mut c, _) = gw.login("alice", "phone").await;
    c.send(json!({"type": "sync", "req": 7, "after": 0, "epoch": other}))
        .await;
    let reset = c.recv().await;
    assert_eq!(reset["type"], "reset", "{reset}");
    assert_eq!(reset["req"], 7);
    assert_eq!(reset["code"], "stale_epoch");
    assert_eq!(reset["epoch"], epoch.to_string().as_str());
    assert_eq!(reset["head"], 0);
    for frame in [
        json!({"type": "history", "req": 8, "conv": "g:any", "epoch": other}),
        json!({"type": "sync_conv", "req": 9, "conv": "g:any", "after": 0, "epoch": other}),
    ] {
        c.send(frame.clone()).await;
        let e = c.expect_error("stale_epoch").await;
        assert_eq!(e["req"], frame["req"], "{e}");
    }
    c.assert_alive().await;
}

#[tokio::test]
async fn a_malformed_epoch_or_entry_id_is_an_invalid_field() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let (mut c, _) = gw.login("alice", "phone").await;
    for bad in [json!("not hex"), json!(42), json!("0123456789abcdef0"), json!("")] {
        for frame in [
            json!({"type": "sync", "req": 1, "after": 0, "epoch": bad}),
            json!({"type": "history", "req": 2, "conv": "g:any", "epoch": bad}),
            json!({"type": "sync_conv", "req": 3, "conv": "g:any", "after": 0, "epoch": bad}),
        ] {
            c.send(frame.clone()).await;
            let e = c.expect_error("invalid_field").await;
            assert_eq!(e["req"], frame["req"], "{frame}: {e}");
        }
    }
    c.send(json!({"type": "sync", "req": 4, "after": 1, "after_id": "not-a-uuid"}))
        .await;
    c.expect_error("invalid_field").await;
    c.assert_alive().await;
    inbound.assert_empty().await;
}
