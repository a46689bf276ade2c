//! The socket edge: what a connection meets before any session state. The
//! accept loop and its limits, open connections per address, parsing client
//! frames into precise error codes, the token bucket, and how a connection
//! ends (close codes and the reasons sent with them).

pub(crate) mod close;
pub(crate) mod frames;
pub(crate) mod listener;
pub(crate) mod peers;
pub(crate) mod ratelimit;
