//! One worker making N round trips of one kind, for counting what one round trip costs
//! each process with callgrind (docs/BENCHMARKS.md): shared-hash `get`, `set`, `incr` or
//! `batch64` (one batch of 64 `incr`s), or `select` (a shared Mikobase `select` by pk).
//!
//! ```text
//! cargo build --release --example round_trips
//! valgrind --tool=callgrind --trace-children=yes target/release/examples/round_trips 2000 get
//! valgrind --tool=callgrind --trace-children=yes target/release/examples/round_trips 2000 select
//! ```
//!
//! Prints the mean time per round trip (meaningless under valgrind; the instruction
//! counts are the point).

use std::time::Instant;

use caspian_ipc::mikobase::{CreateRequest, Mikobase, SelectRequest};
use serde_json::json;

fn main() -> Result<(), caspian_ipc::Error> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10000);
    let op = std::env::args().nth(2).unwrap_or_else(|| "get".into());
    if op == "select" {
        return selects(n);
    }
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
                "batch64" => {
                    hash.batch(|b| {
                        for _ in 0..64 {
                            b.incr("c", 1);
                        }
                    })?;
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

/// N selects by pk of one record in a shared Mikobase of one class.
fn selects(n: usize) -> Result<(), caspian_ipc::Error> {
    let class = "example.org/round_trips/item";
    let schema =
        json!({ "classes": [{ "name": class, "fields": { "n": { "class": "number", "required": true } } }] });
    Mikobase::new(1).schema(schema).run(move |_, db| {
        let bucket = json!({ "n": 1 }).as_object().cloned().unwrap_or_default();
        let created = db.create(&CreateRequest {
            class: Some(class.into()),
            bucket,
            ..Default::default()
        })?;
        let by_pk = SelectRequest {
            pk: Some(created.results.pk),
            ..Default::default()
        };
        let t = Instant::now();
        for _ in 0..n {
            db.select(&by_pk)?;
        }
        println!("{:.0} ns per select", t.elapsed().as_nanos() as f64 / n as f64);
        Ok::<_, caspian_ipc::mikobase::ClientError>(())
    })?;
    Ok(())
}
