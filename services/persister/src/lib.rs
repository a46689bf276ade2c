//! seqline-persister (in progress).
