//! Proc macros (filled by issue 3).
