//! seqline-embedded (in progress).
