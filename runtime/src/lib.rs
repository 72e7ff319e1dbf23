//! caspian-ipc
pub mod mikobase;
