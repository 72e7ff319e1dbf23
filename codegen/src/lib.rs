//! Code generator (filled by issue 3).
