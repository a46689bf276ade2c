//! Port contract suites (in progress).
