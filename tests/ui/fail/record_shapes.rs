// `#[derive(Record)]` needs a plain struct with named fields.
use caspian_ipc::Record;

#[derive(Record)]
#[record(class = "example.org/crew/rank")]
enum Rank {
    Captain,
}

#[derive(Record)]
#[record(class = "example.org/crew/serial")]
struct Serial(String);

#[derive(Record)]
#[record(class = "example.org/crew/cargo")]
struct Cargo<T> {
    load: T,
}

fn main() {}
