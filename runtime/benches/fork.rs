//! The fork manager's cost per child, beside the cheapest fork the machine can do and
//! beside Python's multiprocessing (the anchor a `Pool` user compares with), in one run.
//!
//! `cargo bench -p caspian-ipc --bench fork` (add `-- --quick`), or `cargo xtask bench`.
//! Rounds pinned to one CPU and unpinned, interleaved, medians (see `common/driver.rs`).
//!
//! - floor: `fork`, the child `_exit(0)`s at once, the parent `waitpid`s: per process;
//! - `Manager::spawn` + `join` of a child returning a number: per child (the memory file
//!   for its value, the fork, its report written and read, the reap);
//! - `Manager::map` over N numbers at most 2 at once, each squared in its own process: per
//!   item; and `Manager::map` over 2 chunks of N/2 items, the batching D-F13 advises.

mod common;

use std::time::{Duration, Instant};

use caspian_ipc::fork::Manager;
use common::anchors;
use common::driver::{times, us};
use common::{drive, Report, Round, Table};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};

/// Mean µs per unit of `f`, which does `units` units.
fn per(units: usize, f: impl FnOnce()) -> f64 {
    let started = Instant::now();
    f();
    started.elapsed().as_secs_f64() * 1e6 / units as f64
}

fn round(quick: bool) -> Round {
    let (children, items) = if quick { (200, 400) } else { (1000, 2000) };
    let floor = per(children, || {
        for _ in 0..children {
            // SAFETY: the bench is single-threaded; the child only calls _exit.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => unsafe { libc::_exit(0) },
                Ok(ForkResult::Parent { child }) => {
                    waitpid(child, None).expect("reap");
                }
                Err(e) => panic!("fork: {e}"),
            }
        }
    });
    let manager = Manager::new();
    let spawn = per(children, || {
        for n in 0..children as u64 {
            let ended = manager
                .spawn(move || Ok::<_, String>(n))
                .expect("spawn")
                .join(Duration::from_secs(10));
            assert_eq!(ended.value, Ok(n));
        }
    });
    let pool = Manager::new().max(2);
    let map = per(items, || {
        let squares = pool
            .map(0..items as u64, |_, n| Ok::<_, String>(n * n))
            .expect("map")
            .values()
            .expect("values");
        assert_eq!(squares.len(), items);
    });
    let chunks: Vec<Vec<u64>> = (0..items as u64)
        .collect::<Vec<_>>()
        .chunks(items / 2)
        .map(<[u64]>::to_vec)
        .collect();
    let chunked = per(items, || {
        let squares = pool
            .map(chunks.clone(), |_, chunk| {
                Ok::<_, String>(chunk.iter().map(|n| n * n).collect::<Vec<_>>())
            })
            .expect("map")
            .values()
            .expect("values");
        assert_eq!(squares.concat().len(), items);
    });
    let mut round = Round::default();
    round.put("floor", floor);
    round.put("spawn", spawn);
    round.put("map", map);
    round.put("chunked", chunked);
    anchors::pool(&mut round, items);
    round
}

fn render(report: &Report) -> String {
    let mut table = Table::new(&[
        "per child or item",
        "pinned µs",
        "× floor",
        "unpinned µs",
        "× floor",
    ]);
    let row = |name: &str, key: &'static str| {
        report.row(name, move |s| {
            let (value, floor) = (s.median(key), s.median("floor"));
            [us(value), times(value / floor)]
        })
    };
    table.row(row("floor: fork + _exit + waitpid", "floor"));
    table.row(row("`Manager::spawn` + `join`, a value back", "spawn"));
    table.row(row("`Manager::map`, max 2, one process per item", "map"));
    table.row(row("`Manager::map`, max 2, items in 2 chunks", "chunked"));
    let mut python = Table::new(&["Python (fork), per process or item", "pinned µs", "unpinned µs"]);
    for (name, key) in [
        (
            "`Process` start + join, a value back over a queue",
            "pool.process_us",
        ),
        ("`Pool(2).map`, per item, default chunks", "pool.pool_item_us"),
        ("`Pool(2).map`, per item, `chunksize=1`", "pool.pool_chunk1_us"),
    ] {
        python.row(report.row(name, |s| match s.skipped("pool") {
            Some(reason) => [format!("skipped ({reason})")],
            None => [us(s.median(key))],
        }));
    }
    for summary in report.modes() {
        summary.check_floor("Manager::spawn", summary.median("spawn"), summary.median("floor"));
    }
    format!("{}\n{}\n\n{}", table.render(), report.verdict(), python.render())
}

fn main() {
    drive(round, render);
}
