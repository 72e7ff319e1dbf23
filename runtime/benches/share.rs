//! Shared-hash benchmark: every figure beside the floor and the anchors, measured in the
//! same run, pinned to one CPU and unpinned (see `common/driver.rs`).
//!
//! `cargo bench -p caspian-ipc --bench share` (add `-- --quick` for a short run), or
//! `cargo xtask bench`, which also writes the tables into docs/BENCHMARKS.md.
//!
//! The floor: a 1-byte socketpair ping-pong between two processes. The anchors, when
//! present in `runtime/benches/anchors/`: Python's multiprocessing Manager, Redis over a Unix
//! socket, a std-only Rust HTTP/UDS server.

mod common;

use caspian_ipc::{share, Error, SharedHash};
use common::anchors::{self, SHAPES};
use common::driver::{met, per_s, times, us};
use common::{
    drive, hash_barrier, now_ns, sample, stats_from, stats_json, window_rate, Floor, Report, Round, Summary,
    Table,
};
use serde_json::{json, Value};

/// One worker's get / set / incr round trips.
fn latencies(round: &mut Round, ops: usize) {
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
    for op in ["get", "set", "incr"] {
        round.stats(op, stats_from(&state["lat"][op]));
    }
}

/// The same `get` as [`latencies`], on the Unix socket and then over TCP+TLS on loopback
/// (a throwaway certificate), by one worker in one run: the price of a remote worker's
/// round trip as a ratio to the socket's (D-N5, docs/SCALING.md).
#[cfg(feature = "tls")]
fn tls_latencies(round: &mut Round, ops: usize) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("caspian-bench-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("bench dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("cert");
    let (ca_file, cert_file, key_file) = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&ca_file, ca.pem()).expect("write");
    std::fs::write(&cert_file, cert.pem()).expect("write");
    std::fs::write(&key_file, key.serialize_pem()).expect("write");
    let listen = caspian_ipc::uds::TcpListen::tls("127.0.0.1:0", &cert_file, &key_file).expect("listen");
    let url = listen.url().to_owned();
    let token = caspian_ipc::uds::Token::generate().expect("token");
    let state = caspian_ipc::Share::new(1)
        .listen(listen, token.clone())
        .run(|_, hash| {
            hash.set("k", &1)?;
            let uds = sample(ops, |_| hash.get_value("k").map(drop))?;
            let remote = SharedHash::join(
                &url,
                caspian_ipc::uds::Trust::CaFile(ca_file.clone()),
                token.clone(),
            )?;
            remote.get_value("k")?; // the connect and handshake, not measured
            let tls = sample(ops, |_| remote.get_value("k").map(drop))?;
            hash.set("lat", &json!({"uds": stats_json(uds), "tls": stats_json(tls)}))?;
            Ok::<_, Error>(())
        })
        .expect("TLS latency run");
    let _ = std::fs::remove_dir_all(&dir);
    round.stats("get.uds", stats_from(&state["lat"]["uds"]));
    round.stats("get.tls", stats_from(&state["lat"]["tls"]));
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
        .map(|w| (w[0].as_u64().unwrap_or(0), w[1].as_u64().unwrap_or(0)))
        .collect();
    (window_rate(&windows, workers * ops_per_worker), state)
}

/// One round: the floor, our figures, then the anchors, all in this process's pinning.
fn round(quick: bool) -> Round {
    let scale = if quick { 1 } else { 4 };
    let mut round = Round::default();
    let mut floor = Floor::new();
    floor.measure(2000 * scale);
    latencies(&mut round, 4000 * scale);
    #[cfg(feature = "tls")]
    tls_latencies(&mut round, 4000 * scale);
    floor.measure(2000 * scale);
    let per = 4000 * scale;
    let mut lost = 0i64;
    for workers in [1, 2, 4] {
        let (rate, state) = throughput(workers, per, |h| {
            for _ in 0..per {
                h.incr("n", 1)?;
            }
            Ok(())
        });
        lost += (workers * per) as i64 - state["n"].as_i64().unwrap_or(0);
        round.put(&format!("incr.w{workers}"), rate);
    }
    for size in [16, 64] {
        let batches = 25_600 * scale / size;
        let (rate, state) = throughput(1, batches * size, |h| {
            for _ in 0..batches {
                h.batch(|b| {
                    for i in 0..size {
                        b.incr(&format!("k{}", i % 8), 1);
                    }
                })?;
            }
            Ok(())
        });
        let kept: i64 = (0..8).map(|i| state[format!("k{i}")].as_i64().unwrap_or(0)).sum();
        lost += (batches * size) as i64 - kept;
        round.put(&format!("batch{size}"), rate);
    }
    round.put("lost", lost as f64);
    floor.measure(2000 * scale);
    round.stats("floor", floor.stats());
    anchors::measure(&mut round, quick);
    round
}

/// Cells: `p50 / p99 µs` and their ratios to the same mode's floor.
fn latency_cells(s: &Summary, key: &str) -> [String; 2] {
    let (ours, floor) = (s.stats(key), s.stats("floor"));
    [
        format!("{} / {} µs", us(ours.p50), us(ours.p99)),
        format!(
            "{} / {} floor",
            times(ours.p50 / floor.p50),
            times(ours.p99 / floor.p99)
        ),
    ]
}

/// The floor's rate: round trips per second of one conversation at the floor's median
/// (the mean carries other tenants' preemptions on this shared machine).
fn floor_rate(s: &Summary) -> f64 {
    1e6 / s.stats("floor").p50
}

/// Cells of an anchor: its value, and the speed of our `comparable` figure relative to it
/// (above 1: ours is faster).
fn anchor_cells(
    s: &Summary,
    group: &str,
    key: &str,
    unit: &str,
    comparable: Option<(&str, f64)>,
) -> [String; 2] {
    match s.anchor(group, key) {
        Err(cell) => [cell, String::new()],
        Ok(value) => {
            let shown = if unit == "µs" {
                format!("{} µs", us(value))
            } else if unit == "%" {
                format!("{value:.0} %")
            } else {
                format!("{}{unit}", per_s(value))
            };
            let speed = comparable.map_or(String::new(), |(name, ours)| {
                let speed = if unit == "µs" { value / ours } else { ours / value };
                format!("{} ({name})", times(speed))
            });
            [shown, speed]
        }
    }
}

/// `1 worker`, `4 workers`.
fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn render(report: &Report) -> String {
    for s in report.modes() {
        let floor = s.stats("floor").p50;
        for op in ["get", "set", "incr"] {
            s.check_floor(&format!("shared hash `{op}` p50"), s.stats(op).p50, floor);
        }
        // Rates are means: 1 / rate of one synchronous client is its mean round trip,
        // which is never below the median one.
        s.check_floor("1-worker incr (1/rate)", 1e6 / s.median("incr.w1"), floor);
        if let Ok(rate) = s.anchor("redis", "redis.c1.p1.get") {
            s.check_floor("anchor Redis 1-client GET (1/rate)", 1e6 / rate, floor);
        }
        if let Ok(rate) = s.anchor("http", "http.c1.p1") {
            s.check_floor("anchor std HTTP 1 client (1/rate)", 1e6 / rate, floor);
        }
    }

    let mut ours = Table::by_mode("measurement");
    ours.row(report.row("floor: 1-byte socketpair ping-pong, p50 / p99", |s| {
        let f = s.stats("floor");
        [format!("{} / {} µs", us(f.p50), us(f.p99)), "1.00×".into()]
    }));
    for op in ["get", "set", "incr"] {
        ours.row(
            report.row(&format!("`{op}` round trip, 1 worker, p50 / p99"), |s| {
                latency_cells(s, op)
            }),
        );
    }
    #[cfg(feature = "tls")]
    ours.row(report.row(
        "`get` over TCP+TLS on loopback, 1 worker, p50 / p99 (÷ the same run's UDS `get`)",
        |s| {
            let (tls, uds) = (s.stats("get.tls"), s.stats("get.uds"));
            [
                format!("{} / {} µs", us(tls.p50), us(tls.p99)),
                format!("{} / {} UDS", times(tls.p50 / uds.p50), times(tls.p99 / uds.p99)),
            ]
        },
    ));
    for workers in [1, 2, 4] {
        ours.row(report.row(
            &format!("`incr` throughput, {}, ops/s", plural(workers, "worker")),
            |s| {
                let rate = s.median(&format!("incr.w{workers}"));
                [per_s(rate), format!("{} floor rate", times(rate / floor_rate(s)))]
            },
        ));
    }
    for size in [16, 64] {
        ours.row(
            report.row(&format!("`batch({size})` throughput, 1 worker, ops/s"), |s| {
                let rate = s.median(&format!("batch{size}"));
                [
                    per_s(rate),
                    format!("{} 1-worker `incr`", times(rate / s.median("incr.w1"))),
                ]
            }),
        );
    }
    ours.row(report.row("lost updates (sum over the rounds)", |s| {
        [format!("{}", s.sum("lost")), String::new()]
    }));

    let mut theirs = Table::new(&[
        "anchor",
        "pinned (CPU 0)",
        "ours ÷ anchor, speed",
        "unpinned",
        "ours ÷ anchor, speed",
    ]);
    for (clients, pipeline) in SHAPES {
        for op in ["get", "incr"] {
            let name = format!(
                "Redis over UDS, {}, {}, {}",
                plural(clients, "client"),
                if pipeline == 1 {
                    "unpipelined".to_owned()
                } else {
                    format!("pipeline {pipeline}")
                },
                op.to_uppercase()
            );
            theirs.row(report.row(&name, |s| {
                let comparable = match (clients, pipeline, op) {
                    (1, 1, "get") => Some(("1-worker `get`", 1e6 / s.stats("get").mean)),
                    (1, 1, "incr") => Some(("1-worker `incr`", s.median("incr.w1"))),
                    (4, 1, "incr") => Some(("4-worker `incr`", s.median("incr.w4"))),
                    (1, 16, "incr") => Some(("`batch(16)`", s.median("batch16"))),
                    _ => None,
                };
                let key = format!("redis.c{clients}.p{pipeline}.{op}");
                anchor_cells(s, "redis", &key, " ops/s", comparable)
            }));
        }
    }
    theirs.row(report.row("Python Manager, one proxy call (mean)", |s| {
        let ours = ("1-worker `get` mean", s.stats("get").mean);
        anchor_cells(s, "manager", "manager.call_us", "µs", Some(ours))
    }));
    theirs.row(
        report.row("Python Manager, 4 workers, increments under a lock", |s| {
            let ours = ("4-worker `incr`", s.median("incr.w4"));
            anchor_cells(s, "manager", "manager.lock", " inc/s", Some(ours))
        }),
    );
    theirs.row(report.row("Python Manager, 4 workers, server-side `incr`", |s| {
        let ours = ("4-worker `incr`", s.median("incr.w4"));
        anchor_cells(s, "manager", "manager.atomic", " inc/s", Some(ours))
    }));
    theirs.row(report.row("Python Manager, increments kept without a lock", |s| {
        anchor_cells(s, "manager", "manager.kept_pct", "%", None)
    }));
    for (clients, pipeline) in SHAPES {
        let name = format!(
            "std-only Rust HTTP/UDS, {}, pipeline {pipeline}",
            plural(clients, "client")
        );
        theirs.row(report.row(&name, |s| {
            let comparable = match (clients, pipeline) {
                (1, 1) => Some(("1-worker `incr`", s.median("incr.w1"))),
                (4, 1) => Some(("4-worker `incr`", s.median("incr.w4"))),
                (1, 16) => Some(("`batch(16)`", s.median("batch16"))),
                _ => None,
            };
            anchor_cells(
                s,
                "http",
                &format!("http.c{clients}.p{pipeline}"),
                " req/s",
                comparable,
            )
        }));
    }
    format!(
        "{}\n{}\n{}\n\n{}",
        ours.render(),
        theirs.render(),
        report.verdict(),
        targets(report).render()
    )
}

/// The targets of issue 9, judged in each mode (each target names the mode it is set
/// for; the other mode is shown for comparison).
fn targets(report: &Report) -> Table {
    let mut table = Table::new(&["target of issue 9", "pinned (CPU 0)", "met", "unpinned", "met"]);
    table.row(
        report.row("pinned: one worker's `get` p50 within 2× the floor p50", |s| {
            let ratio = s.stats("get").p50 / s.stats("floor").p50;
            [times(ratio), met(ratio <= 2.0)]
        }),
    );
    // (target, the Redis anchor, our figure in the same unit, the ratio to reach)
    type Ours = fn(&Summary) -> f64;
    let against_redis: [(&str, &str, Ours, f64); 3] = [
        (
            "pinned: one worker's `get` rate ≥ Redis GET, 1 unpipelined client",
            "redis.c1.p1.get",
            |s| 1e6 / s.stats("get").mean,
            1.0,
        ),
        (
            "unpinned: 4-worker `incr` ≥ 2× Redis INCR, 4 unpipelined clients",
            "redis.c4.p1.incr",
            |s| s.median("incr.w4"),
            2.0,
        ),
        (
            "pinned: `batch(64)` ops/s ≥ Redis INCR, 1 client, pipeline 16",
            "redis.c1.p16.incr",
            |s| s.median("batch64"),
            1.0,
        ),
    ];
    for (target, key, ours, at_least) in against_redis {
        table.row(report.row(target, |s| match s.anchor("redis", key) {
            Ok(redis) => {
                let ratio = ours(s) / redis;
                [times(ratio), met(ratio >= at_least)]
            }
            Err(cell) => [cell, String::new()],
        }));
    }
    table.row(report.row("zero lost updates", |s| {
        let lost = s.sum("lost");
        [format!("{lost}"), met(lost == 0.0)]
    }));
    table
}

fn main() {
    drive(round, render);
}
