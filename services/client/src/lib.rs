//! seqline-client (in progress).
