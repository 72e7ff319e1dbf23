//! caspian-ipc
