// A spec with problems: every diagnostic is an error at the path literal that shows the
// spec's path:line:col and the offending line. (Paths are relative to the trybuild
// project, where `tests/ui.rs` links this crate's `specs/`.)
caspian_ipc::mikobase_api!("specs/invalid/mb004_unknown_type.yaml");

// A spec that is not there, and input that is not a spec path.
caspian_ipc::mikobase_api!(mod missing = "specs/none.yaml");
caspian_ipc::mikobase_api!(struct Api);

fn main() {}
