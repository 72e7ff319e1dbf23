//! `mikobase`: the Mikobase command line (filled by issue 4).
fn main() {
    eprintln!("mikobase: not built yet (issue 4)");
    std::process::exit(2);
}
