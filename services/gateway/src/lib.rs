//! seqline-gateway (in progress).
