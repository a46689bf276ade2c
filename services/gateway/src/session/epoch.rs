//! The store's epoch in requests: a device names the epoch its cursor or
//! copy belongs to; another one means the data was wiped, restored or
//! replaced since, and the device must start over (`reset` for a sync,
//! `error{stale_epoch}` for history and conversation pulls).

use super::answers::unavailable;
use seqline_core::ports::Store;
use seqline_core::protocol::{ErrorCode, ServerFrame};
use seqline_core::Epoch;

/// Why a device that knows `known` must start over in `current`, if it must.
pub(crate) fn stale_reason(known: Option<Epoch>, current: Epoch) -> Option<String> {
    known.filter(|k| *k != current).map(|k| {
        format!(
            "the cursor belongs to epoch {k} of the data, which is now epoch {current} (wiped, restored or replaced): start over from the head"
        )
    })
}

/// The store's epoch, or the frame that answers the request `req` instead:
/// `error{stale_epoch}` when the device knows another epoch, `unavailable`
/// when the store does not answer.
#[allow(clippy::result_large_err)]
pub(crate) async fn check(store: &dyn Store, req: u64, known: Option<Epoch>) -> Result<Epoch, ServerFrame> {
    let current = store.epoch().await.map_err(|e| unavailable(Some(req), &e))?;
    match stale_reason(known, current) {
        None => Ok(current),
        Some(why) => Err(ServerFrame::error(
            Some(req),
            ErrorCode::StaleEpoch,
            format!("{why}: drop what you read of this data"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_another_known_epoch_is_stale() {
        let (a, b) = (Epoch::from_u64(1), Epoch::from_u64(2));
        assert_eq!(stale_reason(None, a), None);
        assert_eq!(stale_reason(Some(a), a), None);
        let why = stale_reason(Some(b), a).unwrap();
        assert!(
            why.contains("0000000000000002") && why.contains("0000000000000001"),
            "{why}"
        );
    }
}
