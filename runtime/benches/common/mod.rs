//! What the benchmarks share: a monotonic clock, latency statistics, the transport floor
//! every round trip is compared with, and the driver that runs a benchmark's rounds
//! pinned to one CPU and unpinned, interleaved, and summarises them by medians.
#![allow(dead_code)] // each bench uses its own subset

pub mod anchors;
pub mod driver;
#[cfg(feature = "mikobase")]
pub mod wal;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use caspian_ipc::{Error, SharedHash};
use nix::time::{clock_gettime, ClockId};
use serde_json::{json, Value};

#[allow(unused_imports)] // each bench uses its own subset
pub use driver::{drive, Report, Round, Summary, Table};

pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("monotonic clock");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

#[derive(Clone, Copy)]
pub struct Stats {
    pub p50: f64,
    pub p99: f64,
    pub mean: f64,
}

pub fn stats(mut ns: Vec<u64>) -> Stats {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    Stats {
        p50: at(0.5),
        p99: at(0.99),
        mean: ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0,
    }
}

pub fn stats_json(s: Stats) -> Value {
    json!([s.p50, s.p99, s.mean])
}

pub fn stats_from(v: &Value) -> Stats {
    Stats {
        p50: v[0].as_f64().unwrap_or(f64::NAN),
        p99: v[1].as_f64().unwrap_or(f64::NAN),
        mean: v[2].as_f64().unwrap_or(f64::NAN),
    }
}

/// The floor: 1-byte ping-pong over a socketpair between this process and a forked child
/// (blocking reads, nothing else), the cheapest cross-process round trip. Measured in
/// parts spread over a round (`measure` at its start, middle and end), so that the load
/// the round's own figures met is in the floor too.
pub struct Floor {
    samples: Vec<u64>,
}

impl Floor {
    /// Starts with a warm-up of 1000 round trips (page faults, CPU wake-up), not kept.
    pub fn new() -> Floor {
        ping_pong(1000);
        Floor { samples: Vec::new() }
    }

    /// Adds `round_trips` round trips.
    pub fn measure(&mut self, round_trips: usize) {
        self.samples.extend(ping_pong(round_trips));
    }

    pub fn stats(self) -> Stats {
        stats(self.samples)
    }
}

fn ping_pong(round_trips: usize) -> Vec<u64> {
    let (mut parent, mut child) = UnixStream::pair().expect("socketpair");
    // SAFETY: the benchmark is single-threaded; the child only echoes and _exits.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            drop(parent);
            let mut byte = [0u8; 1];
            for _ in 0..round_trips {
                if child.read_exact(&mut byte).is_err() || child.write_all(b"y").is_err() {
                    break;
                }
            }
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child: pid } => {
            drop(child);
            let mut samples = Vec::with_capacity(round_trips);
            let mut byte = [0u8; 1];
            for _ in 0..round_trips {
                let t = now_ns();
                parent.write_all(b"x").unwrap();
                parent.read_exact(&mut byte).unwrap();
                samples.push(now_ns() - t);
            }
            nix::sys::wait::waitpid(pid, None).unwrap();
            samples
        }
    }
}

/// Latency of `n` calls of `call` (given the call's number), one sample per call.
pub fn sample<E>(n: usize, mut call: impl FnMut(usize) -> Result<(), E>) -> Result<Stats, E> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t = now_ns();
        call(i)?;
        samples.push(now_ns() - t);
    }
    Ok(stats(samples))
}

/// The median of some numbers (NaN for none).
pub fn median_of(mut values: Vec<f64>) -> f64 {
    values.retain(|v| !v.is_nan());
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Waits until `workers` workers have reached this point (counted in the shared hash's
/// `ready`), so their measured windows overlap; gives up after 10 s.
pub fn hash_barrier(hash: &SharedHash, workers: usize) -> Result<(), Error> {
    hash.incr("ready", 1)?;
    let waiting = std::time::Instant::now();
    while hash.get_as::<usize>("ready")?.unwrap_or(0) < workers {
        if waiting.elapsed().as_secs() > 10 {
            return Err(Error::Protocol("barrier timeout".into()));
        }
    }
    Ok(())
}

/// Operations per second over the union of the workers' windows (`[start_ns, end_ns]`).
pub fn window_rate(windows: &[(u64, u64)], total_ops: usize) -> f64 {
    let start = windows.iter().map(|w| w.0).min().unwrap_or(0);
    let end = windows.iter().map(|w| w.1).max().unwrap_or(0);
    total_ops as f64 / (end.saturating_sub(start).max(1) as f64 / 1e9)
}
