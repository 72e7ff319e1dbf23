//! `cargo xtask`: developer tasks (filled by issues 2 and 3).
fn main() {
    eprintln!("usage: cargo xtask <codegen|check-spec|bench>");
    std::process::exit(2);
}
