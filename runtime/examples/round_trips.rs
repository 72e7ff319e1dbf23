//! One worker making N shared-hash round trips of one kind (`get`, `set` or `incr`), for
//! counting what one round trip costs each process with callgrind (docs/BENCHMARKS.md):
//!
//! ```text
//! cargo build --release --example round_trips
//! valgrind --tool=callgrind --trace-children=yes target/release/examples/round_trips 2000 get
//! ```
//!
//! Prints the mean time per round trip (meaningless under valgrind; the instruction
//! counts are the point).

use std::time::Instant;

fn main() -> Result<(), caspian_ipc::Error> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10000);
    let op = std::env::args().nth(2).unwrap_or_else(|| "get".into());
    let kind = op.clone();
    let state = caspian_ipc::share(1, move |_, hash| {
        hash.set("k", &1)?;
        let t = Instant::now();
        for _ in 0..n {
            match kind.as_str() {
                "get" => {
                    hash.get_value("k")?;
                }
                "incr" => {
                    hash.incr("c", 1)?;
                }
                _ => {
                    hash.set("k", &2)?;
                }
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        hash.set("ns", &ns)?;
        Ok::<_, caspian_ipc::Error>(())
    })?;
    println!("{:.0} ns per {op}", state["ns"].as_f64().unwrap_or(f64::NAN));
    Ok(())
}
