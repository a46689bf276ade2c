//! seqline-loadgen (in progress).
