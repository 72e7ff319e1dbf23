//! The method every benchmark follows. On a 2-vCPU machine a wake-up across CPUs costs tens
//! of microseconds and dominates any unpinned round trip, so each figure is measured both
//! with the whole benchmark process tree pinned to CPU 0 (`taskset -c 0`; forked workers
//! and spawned anchors inherit the affinity) and unpinned, in the same run, in interleaved
//! rounds (pinned, unpinned, unpinned, pinned, ...), and reported as the median over the
//! rounds of its mode.
//!
//! A bench binary run without `--round` is the driver: it re-runs itself once per round
//! and mode as `[taskset -c 0] <bench> --round --pinned|--unpinned [--quick]`, reads each
//! round's figures (JSON on stdout), and prints the bench's Markdown tables.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::Stats;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Pinned,
    Unpinned,
}

impl Mode {
    fn flag(self) -> &'static str {
        match self {
            Mode::Pinned => "--pinned",
            Mode::Unpinned => "--unpinned",
        }
    }
}

/// One round's figures (named numbers) and the anchors it had to skip, with why.
#[derive(Default)]
pub struct Round {
    figures: BTreeMap<String, f64>,
    skipped: BTreeMap<String, String>,
}

impl Round {
    pub fn put(&mut self, key: &str, value: f64) {
        self.figures.insert(key.to_owned(), value);
    }

    /// `key.p50`, `key.p99` and `key.mean`.
    pub fn stats(&mut self, key: &str, s: Stats) {
        self.put(&format!("{key}.p50"), s.p50);
        self.put(&format!("{key}.p99"), s.p99);
        self.put(&format!("{key}.mean"), s.mean);
    }

    /// Marks the anchor `group` as not measured in this round, and why.
    pub fn skip(&mut self, group: &str, reason: impl Into<String>) {
        self.skipped.insert(group.to_owned(), reason.into());
    }

    fn to_json(&self) -> Value {
        json!({"figures": self.figures, "skipped": self.skipped})
    }

    fn from_json(v: &Value) -> Round {
        let object = |k: &str| v[k].as_object().cloned().unwrap_or_else(Map::new);
        Round {
            figures: object("figures")
                .into_iter()
                .map(|(k, v)| (k, v.as_f64().unwrap_or(f64::NAN)))
                .collect(),
            skipped: object("skipped")
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or("skipped").to_owned()))
                .collect(),
        }
    }
}

/// The rounds of one mode.
pub struct Summary {
    pub mode: Mode,
    rounds: Vec<Round>,
    /// Figures of ours found faster than this mode's floor (a broken method).
    violations: RefCell<Vec<String>>,
    /// How many figures were checked against the floor.
    checked: std::cell::Cell<usize>,
}

impl Summary {
    fn values(&self, key: &str) -> Vec<f64> {
        self.rounds
            .iter()
            .filter_map(|r| r.figures.get(key).copied())
            .collect()
    }

    /// The median of `key` over this mode's rounds (NaN when never measured).
    pub fn median(&self, key: &str) -> f64 {
        super::median_of(self.values(key))
    }

    /// The sum of `key` over this mode's rounds (for counts that must stay 0).
    pub fn sum(&self, key: &str) -> f64 {
        self.values(key).iter().sum()
    }

    /// The medians of `key.p50`, `key.p99` and `key.mean`.
    pub fn stats(&self, key: &str) -> Stats {
        Stats {
            p50: self.median(&format!("{key}.p50")),
            p99: self.median(&format!("{key}.p99")),
            mean: self.median(&format!("{key}.mean")),
        }
    }

    /// Why the anchor `group` was not measured, if it was not (in any round).
    pub fn skipped(&self, group: &str) -> Option<&str> {
        self.rounds
            .iter()
            .find_map(|r| r.skipped.get(group).map(String::as_str))
    }

    /// The median of an anchor's figure, or the cell saying why it is missing.
    pub fn anchor(&self, group: &str, key: &str) -> Result<f64, String> {
        let value = self.median(key);
        if !value.is_nan() {
            return Ok(value);
        }
        Err(match self.skipped(group) {
            Some(reason) => format!("skipped ({reason})"),
            None => "not measured (see stderr)".to_owned(),
        })
    }

    /// Records a violation when a cross-process figure of ours (`ours`, a latency in µs)
    /// is below this mode's floor latency: nothing can be faster than the cheapest round
    /// trip, so the method would be wrong.
    pub fn check_floor(&self, what: &str, ours: f64, floor: f64) {
        self.checked.set(self.checked.get() + 1);
        if ours < floor {
            self.violations.borrow_mut().push(format!(
                "{what} {ours:.1} µs < floor {floor:.1} µs ({:?})",
                self.mode
            ));
        }
    }
}

/// Both modes' rounds of one benchmark run.
pub struct Report {
    pub pinned: Summary,
    pub unpinned: Summary,
    pub rounds: usize,
    pub quick: bool,
}

impl Report {
    pub fn modes(&self) -> [&Summary; 2] {
        [&self.pinned, &self.unpinned]
    }

    /// A table row: the name, then `cells` of the pinned and of the unpinned summary.
    pub fn row<const N: usize>(&self, name: &str, cells: impl Fn(&Summary) -> [String; N]) -> Vec<String> {
        let mut row = vec![name.to_owned()];
        for s in self.modes() {
            row.extend(cells(s));
        }
        row
    }

    /// The closing line: how the figures were taken, and the floor check's outcome.
    pub fn verdict(&self) -> String {
        let mut violations: Vec<String> = Vec::new();
        for s in self.modes() {
            violations.extend(s.violations.borrow().iter().cloned());
        }
        let method = format!(
            "Medians of {} interleaved rounds per mode{}; pinned = the whole process tree under `taskset -c 0`.",
            self.rounds,
            if self.quick { " (quick run)" } else { "" }
        );
        if self.modes().iter().all(|s| s.checked.get() == 0) {
            method
        } else if violations.is_empty() {
            format!("{method} Floor check: no cross-process figure of ours is below its mode's floor.")
        } else {
            for v in &violations {
                eprintln!("METHOD CHECK FAILED: {v}");
            }
            format!(
                "{method} **Floor check failed** (the method is wrong): {}.",
                violations.join("; ")
            )
        }
    }
}

/// A Markdown table.
pub struct Table {
    text: String,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        let mut table = Table { text: String::new() };
        table.row(headers.iter().map(|h| h.to_string()).collect());
        table.row(headers.iter().map(|_| "---".to_owned()).collect());
        table
    }

    /// The usual header: a measurement, then value and ratio in each mode.
    pub fn by_mode(measurement: &str) -> Table {
        Table::new(&[measurement, "pinned (CPU 0)", "ratio", "unpinned", "ratio"])
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.text.push_str(&format!("| {} |\n", cells.join(" | ")));
    }

    pub fn render(&self) -> &str {
        &self.text
    }
}

/// How many CPUs this process may run on.
fn allowed_cpus() -> usize {
    // SAFETY: sched_getaffinity writes at most `size_of::<cpu_set_t>()` bytes into `set`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 0;
        }
        libc::CPU_COUNT(&set) as usize
    }
}

fn fail(message: String) -> ! {
    eprintln!("{message}");
    std::process::exit(1)
}

/// The bench's `main`: as a round (`--round --pinned|--unpinned`), runs `round` once and
/// prints its figures as JSON; as the driver, runs the interleaved rounds and prints
/// `render`'s tables. `--quick` asks for short rounds (and 3 rounds per mode, not 5);
/// `--rounds N` sets the rounds per mode.
pub fn drive(round: impl Fn(bool) -> Round, render: impl Fn(&Report) -> String) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--list") {
        return; // cargo test --benches asks for a list; nothing to list.
    }
    let quick = has("--quick");
    if has("--round") {
        let cpus = allowed_cpus();
        if has("--pinned") && cpus != 1 {
            fail(format!(
                "a pinned round runs on {cpus} CPUs: start it as `taskset -c 0 <bench> --round --pinned`"
            ));
        }
        let mut figures = round(quick);
        figures.put("cpus", cpus as f64);
        println!("{}", figures.to_json());
        return;
    }
    let rounds = match args.iter().position(|a| a == "--rounds") {
        Some(at) => match args.get(at + 1).and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n > 0 => n,
            _ => fail("--rounds needs a positive number".into()),
        },
        None if quick => 3,
        None => 5,
    };
    let exe =
        std::env::current_exe().unwrap_or_else(|e| fail(format!("cannot find this bench's binary: {e}")));
    let name = exe
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.split('-').next())
        .unwrap_or("bench")
        .to_owned();
    let mut by_mode: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for r in 0..rounds {
        // ABBA order: neither mode always runs first (after a build, or after the other).
        let order = if r % 2 == 0 {
            [Mode::Pinned, Mode::Unpinned]
        } else {
            [Mode::Unpinned, Mode::Pinned]
        };
        for mode in order {
            let mut command = match mode {
                Mode::Pinned => {
                    let mut c = Command::new("taskset");
                    c.args(["-c", "0"]).arg(&exe);
                    c
                }
                Mode::Unpinned => Command::new(&exe),
            };
            command.arg("--round").arg(mode.flag());
            if quick {
                command.arg("--quick");
            }
            let started = Instant::now();
            let output = command.stderr(Stdio::inherit()).output().unwrap_or_else(|e| {
                fail(format!(
                    "cannot run a {mode:?} round of {name} (is `taskset` installed? util-linux): {e}"
                ))
            });
            if !output.status.success() {
                fail(format!(
                    "{name}: the {mode:?} round {} failed: {}",
                    r + 1,
                    output.status
                ));
            }
            let text = String::from_utf8_lossy(&output.stdout);
            let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
            let parsed: Value = serde_json::from_str(last).unwrap_or_else(|e| {
                fail(format!(
                    "{name}: a {mode:?} round printed no figures ({e}): {text}"
                ))
            });
            eprintln!(
                "{name}: round {}/{rounds} {mode:?}: {:.1} s",
                r + 1,
                started.elapsed().as_secs_f64()
            );
            by_mode[(mode == Mode::Unpinned) as usize].push(Round::from_json(&parsed));
        }
    }
    let [pinned, unpinned] = by_mode;
    let summary = |mode, rounds| Summary {
        mode,
        rounds,
        violations: RefCell::new(Vec::new()),
        checked: std::cell::Cell::new(0),
    };
    let report = Report {
        pinned: summary(Mode::Pinned, pinned),
        unpinned: summary(Mode::Unpinned, unpinned),
        rounds,
        quick,
    };
    print!("{}", render(&report));
}

/// `12.3` (µs).
pub fn us(v: f64) -> String {
    format!("{v:.1}")
}

/// `25.6 k` or `1.23 M` (per second).
pub fn per_s(v: f64) -> String {
    if v.is_nan() {
        "—".to_owned()
    } else if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else {
        format!("{:.1} k", v / 1e3)
    }
}

/// `yes`, or a bold `no`.
pub fn met(ok: bool) -> String {
    if ok { "yes" } else { "**no**" }.to_owned()
}

/// `0.85×`.
pub fn times(v: f64) -> String {
    if v.is_nan() {
        "—".to_owned()
    } else if v >= 10.0 {
        format!("{v:.0}×")
    } else {
        format!("{v:.2}×")
    }
}
