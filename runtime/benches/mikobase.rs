//! Shared-mikobase benchmark: select-by-pk, `record_by_pk` and create round trips over the
//! Unix socket from 1 and 4 workers, beside the shared hash's `get` and the in-process
//! engine (same generated client and dispatch table, no socket), all in the same run; and
//! the WAL anchor: 4 forked processes sharing one SQLite file in WAL mode, beside 4 workers
//! of the shared mikobase doing the same creates and selects by pk (`common/wal.rs`).
//!
//! `cargo bench -p caspian-ipc --bench mikobase` (add `-- --quick` for a short run), or
//! `cargo xtask bench`. Each round runs every measurement once, in turn; the driver runs
//! the rounds pinned to one CPU and unpinned, interleaved (see `common/driver.rs`).

mod common;

use std::time::Instant;

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::{
    ClassDefinition, ClientError, CreateRequest, ImportSchemaRequest, InProcess, Mikobase, MikobaseClient,
    RecordByPkRequest, SelectRequest, Transport,
};
use caspian_ipc::{share, Error};
use common::driver::{met, per_s, times, us};
use common::wal::{self, Measured, Work};
use common::{
    drive, hash_barrier, now_ns, sample, stats_from, stats_json, window_rate, Floor, Report, Round, Stats,
    Summary, Table,
};
use serde_json::{json, Value};

const CLASS: &str = "example.org/bench/item";
const SEEDED: usize = 200;
/// The WAL anchor's work, on both sides: 4 processes, each 2,000 creates (each its own
/// transaction) then 2,000 selects by pk of its own records.
const WAL_WORK: Work = Work {
    workers: 4,
    creates: 2000,
    selects: 2000,
};

fn class_definition() -> ClassDefinition {
    let definition = json!({"name": CLASS, "fields": {"n": {"class": "number", "required": true}}});
    serde_json::from_value(definition).expect("a class definition")
}

/// The bucket of the `n`th item (the WAL anchor stores the same).
fn bucket(n: usize) -> Value {
    json!({"n": n, "name": format!("item {n}")})
}

fn item(n: usize) -> CreateRequest {
    CreateRequest {
        class: Some(CLASS.into()),
        bucket: bucket(n).as_object().cloned().unwrap_or_default(),
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

/// Waits until `workers` workers have reached this point (each leaves a `ready` record in
/// the store), so their measured windows overlap; gives up after 10 s.
fn store_barrier<T: Transport>(
    db: &MikobaseClient<T>,
    index: usize,
    workers: usize,
) -> Result<(), ClientError> {
    db.q0(&json!({"action": "create", "bucket": {"ready": index}}))?;
    let waiting = Instant::now();
    loop {
        let seen = db.q0(&json!({"action": "select", "path": ["ready", {"exists": true}]}))?;
        if seen["results"]["count"].as_u64() >= Some(workers as u64) {
            return Ok(());
        }
        if waiting.elapsed().as_secs() > 10 {
            return Err(ClientError::Decode("barrier timeout".into()));
        }
    }
}

/// The WAL anchor's work on the shared mikobase: the workers start together (a barrier
/// through the store), then each creates `work.creates` records (each create its own
/// write) and selects `work.selects` of them by pk.
fn shared_wal_work(work: Work) -> Measured {
    let finished = Mikobase::new(work.workers)
        .schema(json!({ "classes": [class_definition()] }))
        .run(|worker, db| {
            store_barrier(&db, worker.index(), work.workers)?;
            let t0 = now_ns();
            let mut pks = Vec::with_capacity(work.creates);
            let create = sample(work.creates, |i| {
                db.create(&item(i)).map(|a| pks.push(a.results.pk))
            })?;
            let select = sample(work.selects, |i| {
                db.select(&by_pk(&pks[(i * 7919) % pks.len()])).map(drop)
            })?;
            let t1 = now_ns();
            db.create(&report(json!({
                "t0": t0, "t1": t1, "create": stats_json(create), "select": stats_json(select),
            })))
            .map(drop)
        })
        .expect("shared run");
    wal::combine(&results(&finished.worldlet), work)
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
            store_barrier(&db, worker.index(), workers)?;
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
    rate_and_latency(&results(&finished.worldlet), workers * ops)
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
    rate_and_latency(&reports, workers * ops)
}

/// Operations per second over the union of the workers' windows, and the mean of their
/// latencies.
fn rate_and_latency(reports: &[Value], total_ops: usize) -> (f64, Stats) {
    let windows: Vec<(u64, u64)> = reports
        .iter()
        .map(|r| (r["t0"].as_u64().unwrap_or(0), r["t1"].as_u64().unwrap_or(0)))
        .collect();
    let latencies: Vec<Stats> = reports.iter().map(|r| stats_from(&r["latency"])).collect();
    let average = |f: fn(&Stats) -> f64| latencies.iter().map(f).sum::<f64>() / latencies.len().max(1) as f64;
    let latency = Stats {
        p50: average(|s| s.p50),
        p99: average(|s| s.p99),
        mean: average(|s| s.mean),
    };
    (window_rate(&windows, total_ops), latency)
}

const OPS: [(&str, &str); 3] = [
    ("select", "select by pk"),
    ("record_by_pk", "`record_by_pk`"),
    ("create", "create"),
];

/// One round: every measurement once, in turn.
fn round(quick: bool) -> Round {
    let ops = if quick { 1000 } else { 2000 };
    let mut round = Round::default();
    let mut floor = Floor::new();
    floor.measure(ops);
    round.stats("hash_get", hash_get_one_worker(ops));
    let (local, shared) = (in_process(ops), shared_one_worker(ops));
    floor.measure(ops);
    for (op, _) in OPS {
        round.stats(&format!("local.{op}"), stats_from(&local[op]));
        round.stats(&format!("uds.{op}"), stats_from(&shared[op]));
    }
    for (key, (rate, latency)) in [
        ("four.hash_get", hash_get_many(4, ops)),
        ("four.select", shared_many(4, ops, false)),
        ("four.create", shared_many(4, ops / 2, true)),
    ] {
        round.put(&format!("{key}.rate"), rate);
        round.stats(key, latency);
    }
    // The WAL anchor and the shared mikobase doing the same work, in turn.
    match wal::measure(WAL_WORK, bucket) {
        Ok(anchor) => put_measured(&mut round, "wal.anchor", &anchor),
        Err(reason) => {
            eprintln!("{reason}");
            round.skip("wal", reason);
        }
    }
    put_measured(&mut round, "wal.shared", &shared_wal_work(WAL_WORK));
    floor.measure(ops);
    round.stats("floor", floor.stats());
    round
}

fn put_measured(round: &mut Round, key: &str, measured: &Measured) {
    round.put(&format!("{key}.rate"), measured.rate);
    round.stats(&format!("{key}.create"), measured.create);
    round.stats(&format!("{key}.select"), measured.select);
}

/// Cells: `p50 / p99 / mean µs`, and the p50 over the same mode's floor (for a figure
/// that crosses processes) and over `baseline`.
fn cells(s: &Summary, key: &str, baseline: (&str, &str)) -> [String; 2] {
    let (ours, floor, base) = (s.stats(key), s.stats("floor"), s.stats(baseline.0));
    let over_floor = if key.starts_with("local.") {
        String::new() // in-process: no round trip, not comparable with the floor
    } else {
        format!("{} floor, ", times(ours.p50 / floor.p50))
    };
    [
        format!("{} / {} / {} µs", us(ours.p50), us(ours.p99), us(ours.mean)),
        format!("{over_floor}{} {}", times(ours.p50 / base.p50), baseline.1),
    ]
}

fn render(report: &Report) -> String {
    for s in report.modes() {
        let floor = s.stats("floor").p50;
        s.check_floor("hash get p50", s.stats("hash_get").p50, floor);
        for (op, _) in OPS {
            s.check_floor(
                &format!("mikobase {op} over UDS p50"),
                s.stats(&format!("uds.{op}")).p50,
                floor,
            );
        }
        for key in [
            "four.hash_get",
            "four.select",
            "four.create",
            "wal.shared.create",
            "wal.shared.select",
        ] {
            s.check_floor(&format!("{key} p50"), s.stats(key).p50, floor);
        }
    }
    let mut table = Table::by_mode("measurement (p50 / p99 / mean)");
    table.row(report.row("floor: 1-byte socketpair ping-pong", |s| {
        let f = s.stats("floor");
        [
            format!("{} / {} / {} µs", us(f.p50), us(f.p99), us(f.mean)),
            "1.00×".into(),
        ]
    }));
    let hash = ("hash_get", "hash get");
    table.row(report.row("shared hash `get`, 1 worker", |s| cells(s, "hash_get", hash)));
    for (op, name) in OPS {
        table.row(
            report.row(&format!("mikobase {name}, in-process (no socket)"), |s| {
                cells(s, &format!("local.{op}"), hash)
            }),
        );
        table.row(report.row(&format!("mikobase {name}, 1 worker over UDS"), |s| {
            cells(s, &format!("uds.{op}"), hash)
        }));
    }
    let four = ("four.hash_get", "4-worker hash get");
    table.row(report.row("shared hash `get`, each of 4 workers", |s| {
        cells(s, "four.hash_get", hash)
    }));
    table.row(report.row("mikobase select by pk, each of 4 workers", |s| {
        cells(s, "four.select", four)
    }));
    table.row(report.row("mikobase create, each of 4 workers", |s| {
        cells(s, "four.create", four)
    }));
    for (key, name) in [
        ("four.hash_get", "shared hash `get`"),
        ("four.select", "mikobase select by pk"),
        ("four.create", "mikobase create"),
    ] {
        table.row(report.row(&format!("throughput, 4 workers: {name}, ops/s"), |s| {
            let rate = s.median(&format!("{key}.rate"));
            [
                per_s(rate),
                format!("{} hash get", times(rate / s.median("four.hash_get.rate"))),
            ]
        }));
    }
    let mut target = Table::new(&["target", "pinned (CPU 0)", "met", "unpinned", "met"]);
    target.row(report.row(
        "issue 5: a select-by-pk round trip within 1.3× a shared-hash `get` (1 worker, p50)",
        |s| {
            let ratio = s.stats("uds.select").p50 / s.stats("hash_get").p50;
            [times(ratio), met(ratio <= 1.3)]
        },
    ));
    for (name, at_least) in [
        (
            "issue 16: shared mikobase ≥ 0.6× the WAL file's ops/s (4 workers)",
            0.6,
        ),
        (
            "issue 16, moonshot: shared mikobase ≥ 1.0× the WAL file's ops/s",
            1.0,
        ),
    ] {
        target.row(report.row(name, |s| match s.anchor("wal", "wal.anchor.rate") {
            Ok(anchor) => {
                let ratio = s.median("wal.shared.rate") / anchor;
                [times(ratio), met(ratio >= at_least)]
            }
            Err(cell) => [cell, String::new()],
        }));
    }
    format!(
        "{}\n{}\n{}\n\n{}",
        table.render(),
        wal_table(report).render(),
        report.verdict(),
        target.render()
    )
}

/// `2,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The WAL anchor beside the shared mikobase doing the same work: the rates (ratio: ours
/// over the anchor's, above 1 ours is faster) and each process's latencies (ratio: ours
/// over the anchor's p50, above 1 ours is slower).
fn wal_table(report: &Report) -> Table {
    let Work {
        workers,
        creates,
        selects,
    } = WAL_WORK;
    let mut table = Table::by_mode(&format!(
        "the WAL anchor: {workers} processes, {} creates then {} selects by pk each",
        thousands(creates),
        thousands(selects)
    ));
    let anchor = "one SQLite file in WAL mode (rusqlite, `busy_timeout`)";
    table.row(report.row(&format!("{anchor}, {workers} processes, ops/s"), |s| {
        match s.anchor("wal", "wal.anchor.rate") {
            Ok(rate) => [per_s(rate), "1.00×".into()],
            Err(cell) => [cell, String::new()],
        }
    }));
    table.row(
        report.row(&format!("shared mikobase, {workers} workers, ops/s"), |s| {
            let rate = s.median("wal.shared.rate");
            let ratio = s
                .anchor("wal", "wal.anchor.rate")
                .map_or(String::new(), |anchor| format!("{} WAL", times(rate / anchor)));
            [per_s(rate), ratio]
        }),
    );
    for (op, name) in [("create", "create"), ("select", "select by pk")] {
        table.row(report.row(
            &format!("SQLite WAL {name}, each process (p50 / p99 / mean)"),
            |s| match s.anchor("wal", &format!("wal.anchor.{op}.p50")) {
                Ok(_) => {
                    let w = s.stats(&format!("wal.anchor.{op}"));
                    [
                        format!("{} / {} / {} µs", us(w.p50), us(w.p99), us(w.mean)),
                        "1.00×".into(),
                    ]
                }
                Err(cell) => [cell, String::new()],
            },
        ));
        table.row(report.row(
            &format!("shared mikobase {name}, each worker (p50 / p99 / mean)"),
            |s| {
                let ours = s.stats(&format!("wal.shared.{op}"));
                let ratio = s
                    .anchor("wal", &format!("wal.anchor.{op}.p50"))
                    .map_or(String::new(), |p50| format!("{} WAL p50", times(ours.p50 / p50)));
                [
                    format!("{} / {} / {} µs", us(ours.p50), us(ours.p99), us(ours.mean)),
                    ratio,
                ]
            },
        ));
    }
    table
}

fn main() {
    drive(round, render);
}
