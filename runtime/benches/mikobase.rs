//! Shared-mikobase benchmark: select-by-pk, `record_by_pk` and create round trips over the
//! Unix socket from 1 and 4 workers, beside the shared hash's `get` and the in-process
//! engine (same generated client and dispatch table, no socket), all in the same run.
//!
//! `cargo bench -p caspian-ipc --bench mikobase` (add `-- --quick` for a short run).
//! Prints a Markdown table for docs/BENCHMARKS.md: medians over interleaved rounds.

mod common;

use std::time::Instant;

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::{
    ClassDefinition, ClientError, CreateRequest, ImportSchemaRequest, InProcess, Mikobase, MikobaseClient,
    RecordByPkRequest, SelectRequest, Transport,
};
use caspian_ipc::{share, Error};
use common::{floor, hash_barrier, median, median_of, now_ns, sample, stats_from, stats_json, Stats};
use serde_json::{json, Value};

const CLASS: &str = "example.org/bench/item";
const SEEDED: usize = 200;
/// How many times each measurement runs, interleaved with the others.
const ROUNDS: usize = 5;

fn class_definition() -> ClassDefinition {
    let definition = json!({"name": CLASS, "fields": {"n": {"class": "number", "required": true}}});
    serde_json::from_value(definition).expect("a class definition")
}

fn item(n: usize) -> CreateRequest {
    let bucket = json!({"n": n, "name": format!("item {n}")});
    CreateRequest {
        class: Some(CLASS.into()),
        bucket: bucket.as_object().cloned().unwrap_or_default(),
        ..Default::default()
    }
}

fn by_pk(pk: &str) -> SelectRequest {
    SelectRequest {
        pk: Some(pk.to_owned()),
        ..Default::default()
    }
}

/// Latencies of select-by-pk, `record_by_pk` and create through `db`, whatever carries it.
fn latencies<T: Transport>(db: &MikobaseClient<T>, ops: usize) -> Result<Value, ClientError> {
    let pks = (0..SEEDED)
        .map(|n| db.create(&item(n)).map(|a| a.results.pk))
        .collect::<Result<Vec<_>, _>>()?;
    let pick = |i: usize| &pks[(i * 7919) % pks.len()];
    let select = sample(ops, |i| db.select(&by_pk(pick(i))).map(drop))?;
    let record = sample(ops, |i| {
        db.record_by_pk(&RecordByPkRequest { pk: pick(i).clone() })
            .map(drop)
    })?;
    let create = sample(ops, |i| db.create(&item(SEEDED + i)).map(drop))?;
    Ok(
        json!({"select": stats_json(select), "record_by_pk": stats_json(record), "create": stats_json(create)}),
    )
}

/// One result a worker leaves in the store for the parent to read from the worldlet.
fn report(result: Value) -> CreateRequest {
    CreateRequest {
        bucket: json!({ "bench_result": result })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ..Default::default()
    }
}

fn results(worldlet: &Value) -> Vec<Value> {
    worldlet["records"]
        .as_object()
        .into_iter()
        .flat_map(|records| records.values())
        .filter_map(|r| r["bucket"].get("bench_result").cloned())
        .collect()
}

/// In-process: the generated client → the generated dispatch table → the engine.
fn in_process(ops: usize) -> Value {
    let db = MikobaseClient::new(InProcess::new(Engine::memory()));
    db.import_schema(&ImportSchemaRequest {
        classes: vec![class_definition()],
    })
    .expect("schema");
    latencies(&db, ops).expect("in-process run")
}

fn shared_one_worker(ops: usize) -> Value {
    let finished = Mikobase::new(1)
        .schema(json!({ "classes": [class_definition()] }))
        .run(|_, db| {
            let measured = latencies(&db, ops)?;
            db.create(&report(measured)).map(drop)
        })
        .expect("shared run");
    results(&finished.worldlet).pop().expect("a result")
}

/// `workers` workers start together (a barrier through the store), each runs `ops` calls
/// of one kind, and reports its window and latencies.
fn shared_many(workers: usize, ops: usize, create: bool) -> (f64, Stats) {
    let finished = Mikobase::new(workers)
        .schema(json!({ "classes": [class_definition()] }))
        .run(|worker, db| {
            let pks = (0..SEEDED / 4)
                .map(|n| db.create(&item(n)).map(|a| a.results.pk))
                .collect::<Result<Vec<_>, _>>()?;
            db.q0(&json!({"action": "create", "bucket": {"ready": worker.index()}}))?;
            let waiting = Instant::now();
            loop {
                let seen = db.q0(&json!({"action": "select", "path": ["ready", {"exists": true}]}))?;
                if seen["results"]["count"].as_u64() >= Some(workers as u64) {
                    break;
                }
                if waiting.elapsed().as_secs() > 10 {
                    return Err(ClientError::Decode("barrier timeout".into()));
                }
            }
            let t0 = now_ns();
            let latency = if create {
                sample(ops, |i| db.create(&item(i)).map(drop))?
            } else {
                sample(ops, |i| db.select(&by_pk(&pks[i % pks.len()])).map(drop))?
            };
            let t1 = now_ns();
            db.create(&report(
                json!({"t0": t0, "t1": t1, "latency": stats_json(latency)}),
            ))
            .map(drop)
        })
        .expect("shared run");
    window_rate(&results(&finished.worldlet), workers * ops)
}

fn hash_get_one_worker(ops: usize) -> Stats {
    let state = share(1, |_, hash| {
        hash.set("k", &1)?;
        let get = sample(ops, |_| hash.get_value("k").map(drop))?;
        hash.set("lat", &stats_json(get)).map(drop)
    })
    .expect("shared-hash run");
    stats_from(&state["lat"])
}

fn hash_get_many(workers: usize, ops: usize) -> (f64, Stats) {
    let state = share(workers, |worker, hash| {
        hash.set("k", &1)?;
        hash_barrier(&hash, workers)?;
        let t0 = now_ns();
        let latency = sample(ops, |_| hash.get_value("k").map(drop))?;
        let t1 = now_ns();
        hash.at("results").set(
            &worker.index().to_string(),
            &json!({"t0": t0, "t1": t1, "latency": stats_json(latency)}),
        )?;
        Ok::<_, Error>(())
    })
    .expect("shared-hash run");
    let reports: Vec<Value> = state["results"]
        .as_object()
        .map(|r| r.values().cloned().collect())
        .unwrap_or_default();
    window_rate(&reports, workers * ops)
}

/// Operations per second over the union of the workers' windows, and the mean of their
/// mean latencies.
fn window_rate(reports: &[Value], total_ops: usize) -> (f64, Stats) {
    let start = reports.iter().filter_map(|r| r["t0"].as_u64()).min().unwrap_or(0);
    let end = reports.iter().filter_map(|r| r["t1"].as_u64()).max().unwrap_or(0);
    let latencies: Vec<Stats> = reports.iter().map(|r| stats_from(&r["latency"])).collect();
    let average = |f: fn(&Stats) -> f64| latencies.iter().map(f).sum::<f64>() / latencies.len().max(1) as f64;
    let latency = Stats {
        p50: average(|s| s.p50),
        p99: average(|s| s.p99),
        mean: average(|s| s.mean),
    };
    (total_ops as f64 / ((end - start) as f64 / 1e9), latency)
}

fn row(name: &str, s: Stats, baseline: Stats, against: &str) {
    println!(
        "| {name} | {:.1} / {:.1} / {:.1} µs | {:.2}× {against} (p50), {:.2}× (mean) |",
        s.p50,
        s.p99,
        s.mean,
        s.p50 / baseline.p50,
        s.mean / baseline.mean
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; nothing to list.
    }
    let ops = if args.iter().any(|a| a == "--quick") {
        2000
    } else {
        10000
    };
    floor(1000); // warm-up
    let floor = floor(ops);
    // Every measurement runs ROUNDS times, in turn with the others, and is summarised by
    // its medians: a burst of load lands on both sides of a ratio.
    let share = ops / ROUNDS;
    let (mut hash_gets, mut locals, mut shareds) = (Vec::new(), Vec::new(), Vec::new());
    let (mut hash_fours, mut select_fours, mut create_fours) = (Vec::new(), Vec::new(), Vec::new());
    let (mut hash_rates, mut select_rates, mut create_rates) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        hash_gets.push(hash_get_one_worker(share));
        locals.push(in_process(share));
        shareds.push(shared_one_worker(share));
        let (rate, latency) = hash_get_many(4, share);
        hash_rates.push(rate);
        hash_fours.push(latency);
        let (rate, latency) = shared_many(4, share, false);
        select_rates.push(rate);
        select_fours.push(latency);
        let (rate, latency) = shared_many(4, share / 2, true);
        create_rates.push(rate);
        create_fours.push(latency);
    }
    let hash_get = median(&hash_gets);
    let of = |runs: &[Value], op: &str| median(&runs.iter().map(|r| stats_from(&r[op])).collect::<Vec<_>>());
    let (hash_four, select_four, create_four) =
        (median(&hash_fours), median(&select_fours), median(&create_fours));
    let (hash_rate, select_rate, create_rate) = (
        median_of(hash_rates),
        median_of(select_rates),
        median_of(create_rates),
    );

    println!("| measurement | p50 / p99 / mean | ratio |");
    println!("| --- | --- | --- |");
    row("raw socketpair ping-pong (floor)", floor, floor, "floor");
    row("shared hash `get`, 1 worker", hash_get, hash_get, "hash get");
    for (op, name) in [
        ("select", "select by pk"),
        ("record_by_pk", "`record_by_pk`"),
        ("create", "create"),
    ] {
        let over_uds = of(&shareds, op);
        let here = of(&locals, op);
        row(
            &format!("mikobase {name}, in-process (no socket)"),
            here,
            hash_get,
            "hash get",
        );
        row(
            &format!("mikobase {name}, 1 worker over UDS"),
            over_uds,
            hash_get,
            "hash get",
        );
    }
    row(
        "shared hash `get`, each of 4 workers",
        hash_four,
        hash_get,
        "1-worker hash get",
    );
    row(
        "mikobase select by pk, each of 4 workers",
        select_four,
        hash_four,
        "4-worker hash get",
    );
    row(
        "mikobase create, each of 4 workers",
        create_four,
        hash_four,
        "4-worker hash get",
    );
    println!("| throughput, 4 workers: shared hash `get` | {hash_rate:.0} ops/s | 1.00× |");
    println!(
        "| throughput, 4 workers: mikobase select by pk | {select_rate:.0} ops/s | {:.2}× hash get |",
        select_rate / hash_rate
    );
    println!(
        "| throughput, 4 workers: mikobase create | {create_rate:.0} ops/s | {:.2}× hash get |",
        create_rate / hash_rate
    );
}
