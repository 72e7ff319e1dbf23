//! Shared-hash benchmark: every figure beside baselines measured in the same run.
//!
//! `cargo bench -p caspian-ipc --bench share` (add `-- --quick` for a short run).
//!
//! Baselines: a raw 1-byte socketpair ping-pong between two processes (the transport
//! floor), and, when present, the anchors in `../shared/anchors/` (Python's
//! multiprocessing Manager, Redis over a Unix socket, a std-only Rust HTTP/UDS server).
//! Prints a Markdown table for docs/BENCHMARKS.md.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use caspian_ipc::{share, Error, SharedHash};
use common::{floor, hash_barrier, now_ns, sample, stats_from, stats_json, Stats};
use serde_json::{json, Value};

/// One worker's get / set / incr round trips.
fn latencies(ops: usize) -> (Stats, Stats, Stats) {
    let state = share(1, |_, hash| {
        hash.set("k", &1)?;
        let get = sample(ops, |_| hash.get_value("k").map(drop))?;
        let set = sample(ops, |_| hash.set("k", &2).map(drop))?;
        let incr = sample(ops, |_| hash.incr("c", 1).map(drop))?;
        hash.set(
            "lat",
            &json!({"get": stats_json(get), "set": stats_json(set), "incr": stats_json(incr)}),
        )?;
        Ok::<_, Error>(())
    })
    .expect("latency run");
    let lat = &state["lat"];
    (
        stats_from(&lat["get"]),
        stats_from(&lat["set"]),
        stats_from(&lat["incr"]),
    )
}

/// Workers start together, run `work`, and report their start and end instants; returns
/// the operations per second over the whole window and the final state.
fn throughput(
    workers: usize,
    ops_per_worker: usize,
    work: impl Fn(&SharedHash) -> Result<(), Error>,
) -> (f64, Value) {
    let state = share(workers, |worker, hash| {
        hash_barrier(&hash, workers)?;
        let t0 = now_ns();
        work(&hash)?;
        let t1 = now_ns();
        hash.at("window")
            .set(&worker.index().to_string(), &json!([t0, t1]))?;
        Ok::<_, Error>(())
    })
    .expect("throughput run");
    let windows: Vec<(u64, u64)> = state["window"]
        .as_object()
        .expect("windows")
        .values()
        .map(|w| (w[0].as_u64().unwrap(), w[1].as_u64().unwrap()))
        .collect();
    let start = windows.iter().map(|w| w.0).min().unwrap();
    let end = windows.iter().map(|w| w.1).max().unwrap();
    let total = (workers * ops_per_worker) as f64;
    (total / ((end - start) as f64 / 1e9), state)
}

fn anchors_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/anchors");
    dir.is_dir().then_some(dir)
}

fn run(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output.status.success().then(|| {
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
    })
}

/// The first number that directly follows an occurrence of `marker` in `text` (commas
/// allowed), skipping occurrences followed by something else (redis-benchmark prints
/// progress lines like `INCR: rps=...` before the final `INCR: 52631.58 requests ...`).
fn number_after(text: &str, marker: &str) -> Option<f64> {
    text.match_indices(marker).find_map(|(at, _)| {
        let digits: String = text[at + marker.len()..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
            .filter(|c| *c != ',')
            .collect();
        digits.parse().ok()
    })
}

struct Anchor {
    name: String,
    value: f64,
    unit: &'static str,
}

fn anchors(quick: bool) -> Vec<Anchor> {
    let mut out = Vec::new();
    let Some(dir) = anchors_dir() else {
        eprintln!("anchors: ../shared/anchors not found; skipped");
        return out;
    };
    if let Some(text) = run(Command::new("python3")
        .arg(dir.join("mp_manager_bench.py"))
        .env("NW", "4")
        .env("NOPS", if quick { "1000" } else { "5000" }))
    {
        if let Some(us) = number_after(&text, "inc/s,") {
            out.push(Anchor {
                name: "Python Manager: one proxy RPC (µs)".into(),
                value: us,
                unit: "µs",
            });
        }
        for line in text.lines() {
            if let Some(rate) = line.strip_prefix("lock    :").and_then(|l| number_after(l, "->")) {
                out.push(Anchor {
                    name: "Python Manager: 4 workers, increments under a lock".into(),
                    value: rate,
                    unit: "inc/s",
                });
            }
            if line.starts_with("nolock") {
                if let (Some(final_c), Some(expected)) = (
                    number_after(line, "final counter="),
                    number_after(line, "expected"),
                ) {
                    out.push(Anchor {
                        name: "Python Manager: increments kept without a lock".into(),
                        value: 100.0 * final_c / expected,
                        unit: "%",
                    });
                }
            }
        }
    }
    if let Some(text) = run(Command::new("python3").arg(dir.join("mp_manager_atomic.py"))) {
        if let Some(rate) = number_after(&text, "->") {
            out.push(Anchor {
                name: "Python Manager: 4 workers, server-side incr".into(),
                value: rate,
                unit: "inc/s",
            });
        }
    }
    if let Some(text) = run(Command::new("bash").arg(dir.join("redis-uds-bench.sh")).args([
        "4",
        "1",
        if quick { "20000" } else { "100000" },
    ])) {
        if let Some(rate) = number_after(&text, "INCR:") {
            out.push(Anchor {
                name: "Redis over UDS: 4 clients, INCR, unpipelined".into(),
                value: rate,
                unit: "ops/s",
            });
        }
    }
    if let Some(text) = run(Command::new("bash").arg(dir.join("redis-uds-bench.sh")).args([
        "1",
        "1",
        if quick { "20000" } else { "50000" },
    ])) {
        if let Some(rate) = number_after(&text, "GET:") {
            out.push(Anchor {
                name: "Redis over UDS: 1 client, GET".into(),
                value: rate,
                unit: "ops/s",
            });
        }
    }
    let exe = std::env::temp_dir().join(format!("uds_http_bench_{}", std::process::id()));
    if run(Command::new("rustc")
        .args(["-O", "-o"])
        .arg(&exe)
        .arg(dir.join("uds_http_bench.rs")))
    .is_some()
    {
        for (clients, n) in [(1, 20000), (4, 5000)] {
            if let Some(text) = run(Command::new(&exe).args([clients.to_string(), n.to_string(), "1".into()]))
            {
                if let Some(rate) = number_after(&text, "s =") {
                    out.push(Anchor {
                        name: format!("std-only Rust HTTP/UDS: {clients} client(s)"),
                        value: rate,
                        unit: "req/s",
                    });
                }
            }
        }
        let _ = std::fs::remove_file(&exe);
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; nothing to list.
    }
    let quick = args.iter().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 5 };
    floor(1000); // warm-up: the first ping-pongs pay for page faults and CPU wake-up
    let floor = floor(4000 * scale);
    let (get, set, incr) = latencies(4000 * scale);
    let per = 4000 * scale;
    let mut rows: Vec<(String, f64, bool)> = Vec::new();
    let mut lost = 0i64;
    for workers in [1, 2, 4] {
        let (rate, state) = throughput(workers, per, |h| {
            for _ in 0..per {
                h.incr("n", 1)?;
            }
            Ok(())
        });
        lost += (workers * per) as i64 - state["n"].as_i64().unwrap_or(0);
        rows.push((format!("incr throughput, {workers} worker(s)"), rate, true));
    }
    let batches = 400 * scale;
    let (batch_rate, state) = throughput(1, batches * 64, |h| {
        for _ in 0..batches {
            h.batch(|b| {
                for i in 0..64 {
                    b.incr(&format!("k{}", i % 8), 1);
                }
            })?;
        }
        Ok(())
    });
    let batched: i64 = (0..8).map(|i| state[format!("k{i}")].as_i64().unwrap_or(0)).sum();
    lost += (batches * 64) as i64 - batched;
    let single_rate = rows[0].1;

    println!("| measurement | value | ratio |");
    println!("| --- | --- | --- |");
    println!(
        "| raw socketpair ping-pong (floor), p50 / p99 / mean | {:.1} / {:.1} / {:.1} µs | 1.00× |",
        floor.p50, floor.p99, floor.mean
    );
    for (name, s) in [("get", get), ("set", set), ("incr", incr)] {
        println!(
            "| shared hash `{name}` round trip, 1 worker, p50 / p99 / mean | {:.1} / {:.1} / {:.1} µs | {:.2}× floor (p50), {:.2}× (mean) |",
            s.p50, s.p99, s.mean, s.p50 / floor.p50, s.mean / floor.mean
        );
    }
    for (name, rate, _) in &rows {
        println!(
            "| {name} | {:.0} ops/s | {:.2}× 1/floor-mean |",
            rate,
            rate * floor.mean / 1e6
        );
    }
    println!(
        "| batch(64) throughput, 1 worker | {:.0} ops/s | {:.1}× single-op rate |",
        batch_rate,
        batch_rate / single_rate
    );
    println!("| lost updates (all runs above) | {lost} | |");
    let four = rows[2].1;
    for anchor in anchors(quick) {
        let ratio = match anchor.unit {
            "inc/s" | "ops/s" | "req/s" => format!("shared hash 4-worker incr = {:.2}×", four / anchor.value),
            "µs" => format!("shared hash get p50 = {:.2}×", get.p50 / anchor.value),
            _ => String::new(),
        };
        println!(
            "| anchor: {} | {:.1} {} | {ratio} |",
            anchor.name, anchor.value, anchor.unit
        );
    }
}
