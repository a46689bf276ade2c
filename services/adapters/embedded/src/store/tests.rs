//! White-box: a batch written but not yet fsynced is invisible to readers.

use super::*;
use crate::test_dir::TestDir;
use seqline_testkit::fixtures::{conversation, create_batch, messages_batch, timeline_batch, user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsynced_batches_are_invisible() {
    let dir = TestDir::new();
    let engine = EmbeddedEngine::open(&dir.0).unwrap();
    let store = EmbeddedStore::open(Arc::clone(&engine)).unwrap();
    let (conv, alice) = (conversation(), user("alice"));
    store
        .commit_conversation(create_batch(&conv, &alice, &[]))
        .await
        .unwrap();

    // Written to the journal, its fsync not awaited and its marker not cleared.
    let inner = Arc::clone(&store.inner);
    let marker = layout::pending_conv(&conv);
    let batch = messages_batch(&conv, 0, 3, &alice);
    let id = batch.dedup[0].0;
    let ticket = conversation::write(&inner, &marker, batch, super::Wait::Durable).unwrap();
    assert_eq!(store.conversation_head(&conv).await.unwrap(), Some(ConvSeq(0)));
    assert!(store.messages_after(&conv, ConvSeq(0), 10).await.unwrap().is_empty());
    assert!(store.messages_before(&conv, ConvSeq(100), 10).await.unwrap().is_empty());
    // A stale writer is fenced against the written head, not the durable one.
    let stale = store.commit_conversation(messages_batch(&conv, 0, 1, &alice)).await;
    assert!(matches!(stale, Err(seqline_core::Error::Fenced(_))));
    // Other reads wait for the fsync, which covers what they saw.
    assert!(store.dedup(&conv, id).await.unwrap().is_some());

    engine.durable(ticket).await.unwrap();
    inner.pending.finish(&marker, Some(3));
    assert_eq!(store.conversation_head(&conv).await.unwrap(), Some(ConvSeq(3)));
    assert_eq!(store.messages_after(&conv, ConvSeq(0), 10).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsynced_creation_and_timeline_are_invisible() {
    let dir = TestDir::new();
    let engine = EmbeddedEngine::open(&dir.0).unwrap();
    let store = EmbeddedStore::open(Arc::clone(&engine)).unwrap();
    let (conv, bob) = (conversation(), user("bob"));
    let inner = Arc::clone(&store.inner);

    let marker = layout::pending_conv(&conv);
    conversation::write(&inner, &marker, create_batch(&conv, &bob, &[]), super::Wait::Durable).unwrap();
    assert_eq!(
        store.conversation_head(&conv).await.unwrap(),
        None,
        "not created until durable"
    );

    let marker = layout::pending_user(&bob);
    timeline::write(
        &inner,
        &marker,
        timeline_batch(&bob, 0, &conv, 1, 2),
        super::Wait::Durable,
    )
    .unwrap();
    assert_eq!(store.timeline_head(&bob).await.unwrap(), UserSeq(0));
    assert!(store.timeline_after(&bob, UserSeq(0), 10).await.unwrap().is_empty());
}
