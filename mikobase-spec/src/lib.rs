//! Mikobase spec IR (filled by issue 3).
