//! The loop both persister workers run is the shared worker runtime
//! (`seqline-worker`): poll a batch, hand it to the handler (which makes its
//! outputs durable), then commit the input offset, with undecodable and
//! refused records dead-lettered and failures retried by their class.

pub(crate) use seqline_worker::{consume, unexpected, Handler, Input, Options};
