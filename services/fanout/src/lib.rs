//! seqline-fanout (in progress).
