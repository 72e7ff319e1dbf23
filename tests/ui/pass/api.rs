// mikobase_api! on the shipped spec compiles warning-free in a crate of its own.
#![deny(warnings)]

caspian_ipc::mikobase_api!(
    /// The shipped surface, generated at compile time.
    pub mod api = "mikobase-spec/mikobase.yaml"
);

fn main() {
    use caspian_ipc::mikobase::engine::Engine;
    use caspian_ipc::mikobase::InProcess;
    let db = api::MikobaseClient::new(InProcess::new(Engine::memory()));
    let answer = db.select(&api::SelectRequest::default()).expect("an empty store answers");
    assert_eq!(answer.results.count, 0);
}
