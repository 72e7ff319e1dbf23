// A spec with problems: every diagnostic is an error at the path literal that shows the
// spec's path:line:col and the offending line. (trybuild builds this file in
// target/tests/trybuild/caspian-ipc-tests, its CARGO_MANIFEST_DIR: hence the `../`s.)
caspian_ipc::mikobase_api!("../../../../tests/specs/invalid/mb004_unknown_type.yaml");

// A spec that is not there, and input that is not a spec path.
caspian_ipc::mikobase_api!(mod missing = "../../../../tests/specs/none.yaml");
caspian_ipc::mikobase_api!(struct Api);

fn main() {}
